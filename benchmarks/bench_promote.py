"""`mlkit promote` on a registry of 1,000 versions against the same alias change made by a bare script
through `MlflowClient`. Target: `mlkit promote` within 1.5x of the bare script (median wall time).

Both sides are fresh processes, as a user or a CI step runs them, so both pay for importing MLflow.
In-process rows then show what mlkit's own work costs on top of the alias write: the gates (reading the
version, its run and the current holder) and the audit trail (write-ahead entry, stage tags, lock).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import replace
from itertools import count
from pathlib import Path

from _timing import clean_env, mlkit_executable, report, time_call, time_command

RUNS = int(os.environ.get("MLKIT_BENCH_RUNS", "5"))
VERSIONS = int(os.environ.get("MLKIT_BENCH_VERSIONS", "1000"))
MODEL = "bench"

BARE = """
import sys
from mlflow import MlflowClient
uri, name, version = sys.argv[1:]
MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(name, "staging", version)
"""


def build_registry(work: Path) -> Path:
    """A real project whose registry holds VERSIONS versions of one model, each with f1 logged."""
    from mlkit.engines import mlflow
    from mlkit.project import load_project
    from mlkit.scaffold import init_project

    root = Path(init_project("bench", directory=work / "bench", data_remote=work / "remote").root)
    project = load_project(root)
    client = mlflow.client(project)
    experiment = mlflow.ensure_experiment(project)
    client.create_registered_model(MODEL)
    runs = []
    for index in range(10):  # versions share a few runs, as retrained models of one sweep would
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "f1", 0.9 + index / 100)
        client.set_terminated(run.info.run_id)
        runs.append(run)
    tags = {"mlkit.git.commit": "0" * 40, "mlkit.git.dirty": "false"}
    for index in range(VERSIONS):
        run = runs[index % len(runs)]
        client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=tags)
    return root


def main() -> None:
    from mlflow import MlflowClient

    from mlkit import promotion
    from mlkit.project import load_project

    work = Path(tempfile.mkdtemp(prefix="mlkit-bench-promote-"))
    env = clean_env(CI="true", HOME=os.environ.get("HOME", str(work)))
    try:
        print(f"building a registry of {VERSIONS} versions ...", flush=True)
        root = build_registry(work)
        project = load_project(root)
        uri = project.tracking_uri
        versions = (str(v) for v in count(1))

        bare = [sys.executable, "-c", BARE, uri, MODEL, "1"]
        mlkit = [mlkit_executable(), "promote", MODEL, "1", "--to", "staging", "--reason", "bench"]

        def next_bare() -> None:
            bare[-1] = next(versions)

        def next_mlkit() -> None:
            mlkit[3] = next(versions)

        rows = [
            (
                "bare script: MlflowClient alias change",
                time_command(bare, runs=RUNS, cwd=root, env=env, setup=next_bare),
            ),
            (
                "mlkit promote (gates + audit trail)",
                time_command(mlkit, runs=RUNS, cwd=root, env=env, setup=next_mlkit),
            ),
        ]
        report(
            f"promotion on a registry of {VERSIONS} versions, fresh processes, median of {RUNS}",
            rows,
            baseline="bare script: MlflowClient alias change",
            target="mlkit promote within 1.5x of the bare script",
        )

        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        ungated = replace(project, config=project.config.model_copy(update={"promotion": {}}))
        state = {"version": "1"}

        def pick() -> None:
            state["version"] = next(versions)

        rows = [
            (
                "MlflowClient.set_registered_model_alias",
                time_call(
                    lambda: client.set_registered_model_alias(MODEL, "staging", state["version"]),
                    runs=RUNS * 2,
                    setup=pick,
                ),
            ),
            (
                "promotion.promote, no gates (audit trail only)",
                time_call(
                    lambda: promotion.promote(ungated, MODEL, state["version"], to="staging"), runs=RUNS * 2, setup=pick
                ),
            ),
            (
                "promotion.promote, staging gates",
                time_call(
                    lambda: promotion.promote(project, MODEL, state["version"], to="staging"), runs=RUNS * 2, setup=pick
                ),
            ),
            (
                "promotion.promote --dry-run (gates only)",
                time_call(
                    lambda: promotion.promote(project, MODEL, state["version"], to="staging", dry_run=True),
                    runs=RUNS * 2,
                    setup=pick,
                ),
            ),
        ]
        report(f"in process, median of {RUNS * 2}", rows, baseline="MlflowClient.set_registered_model_alias")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
