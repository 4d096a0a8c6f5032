"""`mlkit train` against a bare script training the same model on the same data, in the same run.

The bare script is what a user would write without mlkit: load the CSV, apply the same feature, split,
fit the same preprocessing + RandomForestRegressor, evaluate, save with joblib. Both run as fresh
processes (interpreter start and imports included). Two sizes: a small job (~2 s fit) and a larger one
(~20 s fit). Target: mlkit's overhead <= 2.5 s + 10% of the bare time.

Run alone: `python benchmarks/bench_train.py [--runs N]`, or `nox -s bench -- train`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _timing import clean_env, mlkit_executable, report

# (label, rows, trees): CPU time of the fit on this machine about 2 s and 20 s
BARE_NAME, MLKIT_NAME = "bare script (joblib)", "mlkit train (MLflow SQLite, registered)"
JOBS = (("small", 4000, 250), ("large", 12000, 700))

BARE = textwrap.dedent("""
    import sys
    import joblib
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    data, trees = sys.argv[1], int(sys.argv[2])
    frame = pd.read_csv(data)
    frame["bmi_x_bp"] = frame["bmi"] * frame["bp"]
    X, y = frame.drop(columns=["progression"]), frame["progression"]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    model = Pipeline([("preprocess", ColumnTransformer([("numeric", numeric, list(X.columns))])),
                      ("model", RandomForestRegressor(n_estimators=trees, max_depth=8, min_samples_leaf=2,
                                                      random_state=42))])
    model.fit(X_train, y_train)
    predicted = model.predict(X_test)
    print(root_mean_squared_error(y_test, predicted), mean_absolute_error(y_test, predicted),
          r2_score(y_test, predicted))
    joblib.dump(model, "model.joblib")
""")


def make_project(base: Path) -> Path:
    """A regression project with larger data files (diabetes rows resampled with noise), committed."""
    import numpy as np
    import pandas as pd

    mlkit, env = mlkit_executable(), clean_env(CI="true")
    subprocess.run(
        [mlkit, "init", "bench", "--template", "regression", "--data-remote", str(base / "remote")],
        cwd=base,
        env=env,
        check=True,
        capture_output=True,
    )
    root = base / "bench"
    source = pd.read_csv(root / "data" / "diabetes.csv")
    rng = np.random.default_rng(0)
    files = []
    for label, rows, _ in JOBS:
        frame = source.sample(rows, replace=True, random_state=rows).reset_index(drop=True)
        numeric = frame.columns.drop(["sex", "progression"])
        frame[numeric] = frame[numeric] * rng.normal(1.0, 0.05, size=(rows, len(numeric)))
        path = root / "data" / f"{label}.csv"
        frame.to_csv(path, index=False)
        files.append(str(path.relative_to(root)))
    dvc = str(Path(sys.executable).with_name("dvc"))
    subprocess.run([dvc, "add", "-q", *files], cwd=root, env=env, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "benchmark data"], cwd=root, check=True, env=env)
    (root / "bare.py").write_text(BARE)
    return root


def measure(
    commands: dict[str, list[str]], *, runs: int, warmup: int, cwd: Path, env: dict
) -> dict[str, tuple[float, float]]:
    """Median wall time and median CPU time (user + sys of the child) of each command over ``runs`` runs.

    The commands take turns run by run, so a change in the load of the shared machine hits all of them
    alike; CPU time is reported too because other work stretches wall times but not CPU seconds.
    """
    import resource
    import statistics
    import time

    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for index in range(warmup + runs):
        for name, argv in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(
                argv,
                cwd=cwd,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
            )
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
            if index >= warmup:
                walls[name].append(wall)
                cpus[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {name: (statistics.median(walls[name]), statistics.median(cpus[name])) for name in commands}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--job",
        choices=[label for label, _, _ in JOBS],
        action="append",
        help="only these jobs (default: all)",
    )
    args, _ = parser.parse_known_args()  # benchmarks/run.py passes its own arguments through
    mlkit = mlkit_executable()
    with tempfile.TemporaryDirectory(prefix="mlkit-bench-train-") as tmp:
        # Python's bytecode cache on, in a folder of its own, as after any normal install (pip compiles
        # at install time; a PYTHONDONTWRITEBYTECODE environment would compile every import on every
        # run, which costs both sides several seconds and mlkit's larger import set most)
        env = {k: v for k, v in clean_env().items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        root = make_project(Path(tmp))
        for label, _, trees in JOBS:
            if args.job and label not in args.job:
                continue
            data = f"data/{label}.csv"
            warmup = 1 if label == "small" else 0  # the small job's warm-up fills the bytecode cache
            medians = measure(
                {
                    BARE_NAME: [sys.executable, "bare.py", data, str(trees)],
                    MLKIT_NAME: [
                        mlkit,
                        "train",
                        "--set",
                        f"data.train={data}",
                        "--set",
                        f"params.estimator.n_estimators={trees}",
                    ],
                },
                runs=args.runs,
                warmup=warmup,
                cwd=root,
                env=env,
            )
            (bare, bare_cpu), (tracked, tracked_cpu) = medians[BARE_NAME], medians[MLKIT_NAME]
            budget = 2.5 + 0.1 * bare
            report(
                f"train, {label} job ({data}, {trees} trees): wall time",
                [(BARE_NAME, bare), (MLKIT_NAME, tracked)],
                baseline=BARE_NAME,
                target=f"overhead {tracked - bare:.2f} s vs budget {budget:.2f} s (2.5 s + 10% of bare): "
                + ("met" if tracked - bare <= budget else "NOT met"),
            )
            report(
                f"train, {label} job: CPU time (user + sys)",
                [(BARE_NAME, bare_cpu), (MLKIT_NAME, tracked_cpu)],
                baseline=BARE_NAME,
                target=f"CPU overhead {tracked_cpu - bare_cpu:.2f} s",
            )


if __name__ == "__main__":
    main()
