"""`mlkit monitor`'s drift computation against Evidently's data drift preset, on the same data, in one run.

Data: a reference and a current Parquet file of N rows x 50 mixed columns (35 numeric: normal, skewed,
uniform, integers, one with four values; 15 categorical with 3 to 45 categories), the current one with
known shifts in some columns. Each contender runs in a fresh process; measured are the wall time of the
work after imports (the median of 3 runs at 100k rows, one run at 1M) and the peak resident memory of the
whole process (VmHWM):

- mlkit: reads the current file in chunks into the reference profile's summaries and runs its tests
  (the profile was computed at train time; building it is shown on its own row, a one-off cost);
- Evidently: reads both files and runs ``Report([DataDriftPreset()])`` (it needs the reference data);
- scipy on the raw data: the same statistics as Evidently computed on every row, in memory, the stand-in
  when Evidently is not installed and the exact value mlkit's summaries approximate.

Per-feature verdicts are compared wherever both sides apply the same test (Evidently uses Jensen–Shannon
for numeric columns with at most 5 values, mlkit the Wasserstein distance: those are left out).
Targets: >= 20x faster than Evidently, peak memory <= 1/4.

Run alone: `python benchmarks/bench_monitor.py [--sizes 100000,1000000]`, or `nox -s bench -- monitor`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _timing import clean_env

SIZES = (100_000, 1_000_000)
N_NUMERIC, N_CATEGORICAL = 35, 15
SHIFTED = {"num_00": 0.5, "num_01": 0.2, "num_02": 0.05, "num_05": 0.3}  # mean shift in standard deviations
SCALED = {"num_03": 1.5}  # standard deviation times this
REWEIGHTED = {"cat_00": 1.0, "cat_01": 0.3}  # share of rows redrawn from another category distribution

MLKIT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import mlkit.config, pyarrow.parquet, scipy.special  # imported on first use: not timed, like Evidently's
    from mlkit.monitoring.monitor import compare_file
    from mlkit.monitoring.profile import ReferenceProfile
    started = time.perf_counter()
    profile = ReferenceProfile.from_json(Path(sys.argv[1]).read_text())
    result = compare_file(profile, Path(sys.argv[2]))
    seconds = time.perf_counter() - started
    verdicts = {f.name: [f.test, float(f.value), bool(f.drifted)] for f in result.features}
    result = {"seconds": seconds, "verdicts": verdicts}
""")

PROFILE = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import pandas as pd
    from mlkit.monitoring.profile import build_profile
    started = time.perf_counter()
    frame = pd.read_parquet(sys.argv[1])
    numeric = [c for c in frame.columns if c.startswith("num_")]
    categorical = [c for c in frame.columns if c.startswith("cat_")]
    profile = build_profile(frame, numeric=numeric, categorical=categorical, task="regression")
    Path(sys.argv[2]).write_text(profile.to_json())
    result = {"seconds": time.perf_counter() - started, "bytes": len(profile.to_json())}
""")

EVIDENTLY = textwrap.dedent("""
    import json, sys, time
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset
    started = time.perf_counter()
    reference, current = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
    definition = DataDefinition(numerical_columns=[c for c in reference.columns if c.startswith("num_")],
                                categorical_columns=[c for c in reference.columns if c.startswith("cat_")])
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition))
    metrics = snapshot.dict()["metrics"]
    seconds = time.perf_counter() - started
    names = {"Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "jensenshannon"}
    verdicts = {}
    for metric in metrics:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            test = names.get(config["method"], config["method"])
            verdicts[config["column"]] = [test, float(metric["value"]), bool(metric["value"] >= config["threshold"])]
    result = {"seconds": seconds, "verdicts": verdicts}
""")

SCIPY = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import pandas as pd
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import wasserstein_distance
    started = time.perf_counter()
    reference, current = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
    verdicts = {}
    for name in reference.columns:
        ref, cur = reference[name].dropna(), current[name].dropna()
        if name.startswith("num_"):
            value = float(wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001))
            verdicts[name] = ["wasserstein", value, bool(value > 0.1)]
        else:
            keys = sorted(set(ref.unique()) | set(cur.unique()))
            p = ref.value_counts(normalize=True).reindex(keys, fill_value=0).to_numpy()
            q = cur.value_counts(normalize=True).reindex(keys, fill_value=0).to_numpy()
            value = float(jensenshannon(p, q))
            verdicts[name] = ["jensenshannon", value, bool(value > 0.1)]
    result = {"seconds": time.perf_counter() - started, "verdicts": verdicts}
""")


# The peak resident memory of this process image: VmHWM, not getrusage's maxrss, which on Linux keeps the
# high-water mark of the process before exec (the forking benchmark, holding the generated data).
EPILOGUE = textwrap.dedent("""
    try:
        with open("/proc/self/status") as status:
            result["peak_mb"] = next(int(l.split()[1]) / 1024 for l in status if l.startswith("VmHWM:"))
    except OSError:
        import resource
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
""")


def make_data(rows: int, folder: Path) -> tuple[Path, Path]:
    """Reference and current Parquet files with the shifts above; seeded by the size."""
    import numpy as np
    import pandas as pd

    def draw(rng: np.random.Generator, current: bool) -> pd.DataFrame:
        columns: dict[str, object] = {}
        for i in range(N_NUMERIC):
            name = f"num_{i:02d}"
            shift, scale = (SHIFTED.get(name, 0.0), SCALED.get(name, 1.0)) if current else (0.0, 1.0)
            kind = i % 5
            if kind == 0:
                values = rng.normal(10 * i + shift * 3.0, 3.0 * scale, rows)
            elif kind == 1:
                values = np.exp(rng.normal(0.0 + shift * 0.6, 0.6 * scale, rows))
            elif kind == 2:
                values = rng.uniform(-1.0, 1.0, rows) * scale + shift * 0.577
            elif kind == 3:
                values = np.round(rng.normal(50 + shift * 15, 15 * scale, rows))
            else:
                values = rng.integers(0, 4, rows).astype(float)
            columns[name] = values
        for j in range(N_CATEGORICAL):
            name = f"cat_{j:02d}"
            k = 3 + 3 * j
            weights = np.random.default_rng(j).dirichlet(np.ones(k) * 2)
            values = rng.choice(k, rows, p=weights)
            share = REWEIGHTED.get(name, 0.0) if current else 0.0
            if share:
                redrawn = rng.random(rows) < share
                other = np.random.default_rng(100 + j).dirichlet(np.ones(k))
                values[redrawn] = rng.choice(k, int(redrawn.sum()), p=other)
            columns[name] = np.asarray([f"c{j}_{v}" for v in range(k)], dtype=object)[values]
        frame = pd.DataFrame(columns)
        frame.loc[rng.random(rows) < 0.02, "num_04"] = np.nan  # some missing values
        return frame

    rng = np.random.default_rng(rows)
    reference, current = folder / f"reference-{rows}.parquet", folder / f"current-{rows}.parquet"
    draw(rng, current=False).to_parquet(reference, index=False)
    draw(rng, current=True).to_parquet(current, index=False)
    return reference, current


def measure(script: str, *args: str, runs: int = 1) -> dict:
    """Run ``script`` in a fresh interpreter ``runs`` times: its JSON result, the median seconds and the
    largest peak resident memory in MB."""
    import statistics

    results = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", script + EPILOGUE, *args],
            capture_output=True,
            text=True,
            env=clean_env(PYTHONWARNINGS="ignore"),
        )
        if done.returncode != 0:
            raise RuntimeError(f"benchmark child failed ({done.returncode}):\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    result = results[0]
    result["seconds"] = statistics.median(r["seconds"] for r in results)
    result["peak_mb"] = max(r["peak_mb"] for r in results)
    return result


def agreement(ours: dict, theirs: dict) -> tuple[int, int, list[str]]:
    """(verdicts that agree, verdicts compared, columns that disagree) where both applied the same test."""
    same = [name for name, (test, _, _) in theirs.items() if name in ours and ours[name][0] == test]
    differ = [name for name in same if ours[name][2] != theirs[name][2]]
    return len(same) - len(differ), len(same), differ


def _row(shape: str, base: dict, name: str, result: dict, compare: bool, verdicts: dict | None) -> str:
    """One table row; speed and memory relative to ``base``, verdicts compared with its own."""
    speed = f"{base['seconds'] / result['seconds']:.1f}x" if compare else ""
    memory = f"{result['peak_mb'] / base['peak_mb']:.2f}" if compare else ""
    agree = ""
    if verdicts is not None:
        same, total, differ = agreement(verdicts, base["verdicts"])
        agree = f"{same}/{total}" + (f" (differ: {', '.join(differ)})" if differ else "")
    return f"| {shape} | {name} | {result['seconds']:.2f} | {result['peak_mb']:.0f} | {speed} | {memory} | {agree} |"


def evidently_available() -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", "import evidently.presets"], capture_output=True, env=clean_env(PYTHONWARNINGS="ignore")
    )
    return probe.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    args, _ = parser.parse_known_args()  # benchmarks/run.py passes the benchmark names through
    sizes = [int(s) for s in args.sizes.split(",")]
    with_evidently = evidently_available()
    if not with_evidently:
        print(
            "Evidently is not installed in this environment: comparing with scipy on the raw data instead "
            "(`nox -s bench -- monitor` installs it)"
        )
    lines = [
        "| rows x columns | contender | seconds | peak MB | vs Evidently: speed | memory | verdicts agree |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory(prefix="mlkit-bench-monitor-") as scratch:
        folder = Path(scratch)
        for rows in sizes:
            reference, current = make_data(rows, folder)
            profile_path = folder / f"profile-{rows}.json"
            runs = 3 if rows <= 200_000 else 1  # Evidently takes minutes at a million rows
            built = measure(PROFILE, str(reference), str(profile_path), runs=runs)
            ours = measure(MLKIT, str(profile_path), str(current), runs=runs)
            exact = measure(SCIPY, str(reference), str(current), runs=runs)
            theirs = measure(EVIDENTLY, str(reference), str(current), runs=runs) if with_evidently else None
            shape = f"{rows:,} x {N_NUMERIC + N_CATEGORICAL}"
            base = theirs or exact
            base_name = "Evidently" if theirs else "scipy (raw)"

            def row(name: str, result: dict, compare: bool = True, verdicts: dict | None = None) -> str:
                return _row(shape, base, name, result, compare, verdicts)  # noqa: B023 (used at once)

            lines.append(row("mlkit monitor (profile + chunked read)", ours, verdicts=ours["verdicts"]))
            lines.append(
                row(f"mlkit profile at train time, once ({built['bytes'] / 1024:.0f} KB)", built, compare=False)
            )
            if theirs is not None:
                lines.append(row("Evidently DataDriftPreset", theirs, compare=False))
            lines.append(
                row(
                    "scipy on the raw data (exact statistics)",
                    exact,
                    compare=theirs is not None,
                    verdicts=exact["verdicts"] if theirs is not None else None,
                )
            )
            drifted = sorted(name for name, (_, _, flag) in ours["verdicts"].items() if flag)
            lines.append(f"| {shape} | columns mlkit flags | {', '.join(drifted)} | | | | |")
            print(f"{shape} done (vs {base_name})", file=sys.stderr)
    print("\n## mlkit monitor vs " + ("Evidently's data drift preset" if with_evidently else "scipy on raw data"))
    print("\n".join(lines))
    print("  target: >= 20x faster than Evidently, peak memory <= 1/4, verdicts agree where the test is the same")
    sys.stdout.flush()


if __name__ in ("__main__",):
    main()
