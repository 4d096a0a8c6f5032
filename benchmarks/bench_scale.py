"""Scale-out costs, each against its baseline measured in the same run.

1. `mlkit train` of a 500,000-row x 20-feature XGBoost model in process (baseline) vs on a local Dask
   cluster of two single-threaded workers started with the `dask` CLI. On a 2-core machine the cluster is
   expected to be slower: client and workers share the same two cores, the preprocessed rows are
   serialised to the workers, and in-process `hist` already uses every core. It wins when workers have
   cores (and memory) of their own.
2. Per-run tracking overhead: the calls one `mlkit train` makes to the store (create a run, log params,
   metrics and tags in a batch, upload a small artifact, end the run) against the embedded SQLite store
   (baseline) vs an `mlflow server` over PostgreSQL on loopback.

Run alone: `python benchmarks/bench_scale.py [--runs N] [--rows N]`, or `nox -s bench -- scale`.
Needs the `team`, `s3` and `dask` extras and PostgreSQL's binaries (see docs/team.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import _services as S  # noqa: E402
from _timing import clean_env, mlkit_executable, report  # noqa: E402

FEATURES = 20
TREES = 50


def make_project(base: Path, rows: int) -> Path:
    """A classification project whose training data are `rows` x 20 synthetic features, committed."""
    import numpy as np
    import pandas as pd
    import yaml
    from sklearn.datasets import make_classification

    mlkit, env = mlkit_executable(), clean_env(CI="true")
    subprocess.run(
        [mlkit, "init", "scale", "--data-remote", str(base / "remote")],
        cwd=base,
        env=env,
        check=True,
        capture_output=True,
    )
    root = base / "scale"
    X, y = make_classification(n_samples=rows, n_features=FEATURES, n_informative=12, random_state=0)
    frame = pd.DataFrame(X.astype(np.float32), columns=[f"f{i}" for i in range(FEATURES)])
    frame["label"] = y
    frame.to_parquet(root / "data" / "big.parquet", index=False)
    settings = yaml.safe_load((root / "mlkit.yaml").read_text())
    settings["data"].update({"train": "data/big.parquet", "target": "label", "hook": None})
    (root / "mlkit.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["estimator"].update({"n_estimators": TREES, "max_depth": 6})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc = str(Path(sys.executable).with_name("dvc"))
    subprocess.run([dvc, "add", "-q", "data/big.parquet"], cwd=root, env=env, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "benchmark data"], cwd=root, check=True, env=env)
    return root


def median_wall(argv: list[str], *, runs: int, warmup: int, cwd: Path, env: dict) -> float:
    samples = []
    for index in range(warmup + runs):
        started = time.perf_counter()
        subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        if index >= warmup:
            samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def bench_training(runs: int, rows: int) -> None:
    mlkit = mlkit_executable()
    with tempfile.TemporaryDirectory(prefix="mlkit-bench-scale-") as tmp:
        env = {k: v for k, v in clean_env().items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        root = make_project(Path(tmp), rows)
        argv = [mlkit, "train", "--no-register"]
        local = median_wall(argv, runs=runs, warmup=1, cwd=root, env=env)
        cluster = S.start_dask(workers=2)
        try:
            dask = median_wall(
                argv, runs=runs, warmup=1, cwd=root, env={**env, "MLKIT_DASK_SCHEDULER": cluster.address}
            )
        finally:
            S.stop_dask(cluster)
    report(
        f"mlkit train, XGBoost {TREES} trees on {rows} x {FEATURES} (medians of {runs})",
        [("in process", local), ("dask, 2 local workers x 1 thread", dask)],
        baseline="in process",
        target="report only: on 2 shared cores Dask is expected to be slower",
    )
    print(f"  dask cluster start-up: {S.STARTUP_SECONDS.get('dask scheduler + 2 workers', 0):.2f} s")


def _one_run(client, experiment_id: str, scratch: Path) -> None:
    from mlflow.entities import Metric, Param, RunTag

    run = client.create_run(experiment_id)
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        params=[Param(f"p{i}", str(i)) for i in range(20)],
        metrics=[Metric(f"m{i}", float(i), now, 0) for i in range(10)],
        tags=[RunTag(f"mlkit.t{i}", "x" * 40) for i in range(15)],
    )
    client.log_artifact(run.info.run_id, str(scratch))
    client.set_terminated(run.info.run_id, "FINISHED")


def bench_tracking(runs: int) -> None:
    from mlflow import MlflowClient

    repeats = max(runs, 20)
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # MLflow's run links, not results
    postgres = S.start_postgres()
    s3 = S.start_s3()
    os.environ["PGPASSWORD"] = postgres.password
    server = None
    try:
        server = S.start_tracking_server(
            postgres, database="bench", extra_env=s3.env(), artifacts_destination=f"s3://{s3.bucket('bench')}/artifacts"
        )
        with tempfile.TemporaryDirectory(prefix="mlkit-bench-tracking-") as tmp:
            scratch = Path(tmp) / "lineage.txt"
            scratch.write_text("x" * 4096)
            rows = []
            for label, uri in (
                ("sqlite (embedded)", f"sqlite:///{tmp}/mlflow.db"),
                ("mlflow server over postgresql", server.url),
                ("postgresql directly", postgres.create_database("benchdirect")),
            ):
                client = MlflowClient(tracking_uri=uri, registry_uri=uri)
                artifact_location = (Path(tmp) / "artifacts").as_uri() if not uri.startswith("http") else None
                experiment_id = client.create_experiment(f"bench-{len(rows)}", artifact_location=artifact_location)
                _one_run(client, experiment_id, scratch)  # warm-up: connections, schema
                samples = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    _one_run(client, experiment_id, scratch)
                    samples.append(time.perf_counter() - started)
                rows.append((label, statistics.median(samples)))
        report(
            f"per-run tracking calls (create, log_batch, 4 KB artifact, end; medians of {repeats})",
            rows,
            baseline="sqlite (embedded)",
            target="report only",
        )
    finally:
        if server is not None:
            S.stop_tracking_server(server)
        S.stop_s3(s3)
        S.stop_postgres(postgres)
    startups = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in S.STARTUP_SECONDS.items())
    print(f"  start-up: {startups}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--only", choices=("training", "tracking"))
    args, _ = parser.parse_known_args()
    if args.only != "tracking":
        bench_training(args.runs, args.rows)
    if args.only != "training":
        bench_tracking(args.runs)


if __name__ == "__main__":
    main()
