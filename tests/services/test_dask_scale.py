"""The Dask backend at scale and under faults: the workers read the data (the client never holds the
table), the cluster's shape is in the lineage and `mlkit reproduce` replays it, a lost worker is one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import _services as S
import pytest
from mlflow import MlflowClient

from mlkit import tags

FAST = ["--set", "params.estimator.n_estimators=30"]
# runs argv[2:] as its child and writes the child's peak resident memory (kB) to argv[1]
_LAUNCHER = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(code)"
)
MLKIT = str(S.BIN / "mlkit")


def _client(root: Path) -> MlflowClient:
    uri = f"sqlite:///{root / '.mlkit' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _train(cli: Callable, root: Path, *extra: str) -> dict:
    result = cli("train", "--json", *FAST, *extra, cwd=root)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _commit_all(root: Path, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=root, check=True)


@pytest.mark.slow
def test_backend_and_cluster_shape_are_recorded_and_reproduce_replays_them(
    dask_cluster: S.DaskCluster, make_project: Callable[..., Path], cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project("replay")
    assert cli("data", "push", cwd=root).exit_code == 0
    local = _train(cli, root)
    _commit_all(root, "outputs of the first run")
    monkeypatch.setenv("MLKIT_DASK_SCHEDULER", dask_cluster.address)
    on_dask = _train(cli, root)
    _commit_all(root, "outputs of the second run")

    client = _client(root)
    local_tags = client.get_model_version("replay", local["model_version"]).tags
    assert (local_tags[tags.BACKEND], local_tags[tags.BACKEND_SOURCE]) == ("local", "mlkit.yaml")
    assert tags.DASK_WORKERS not in local_tags
    dask_tags = client.get_model_version("replay", on_dask["model_version"]).tags
    host_port = dask_cluster.address.removeprefix("tcp://")
    assert dask_tags[tags.BACKEND] == "dask"
    assert dask_tags[tags.BACKEND_SOURCE] == "MLKIT_DASK_SCHEDULER"  # the variable chose it, and says so
    assert dask_tags[tags.DASK_SCHEDULER] == host_port
    assert (dask_tags[tags.DASK_WORKERS], dask_tags[tags.DASK_THREADS]) == ("2", "1")
    assert int(dask_tags[tags.DASK_MEMORY]) > 0
    import dask
    import distributed

    versions = json.loads(dask_tags[tags.DASK_VERSIONS])
    assert versions["dask"] == dask.__version__ and versions["workers.distributed"] == distributed.__version__
    read = json.loads(dask_tags[tags.DASK_DATA_READ])
    assert list(read) == ["data/breast_cancer.csv"]
    assert read["data/breast_cancer.csv"].startswith("DVC remote 'local' (")

    # a locally trained version is rebuilt locally, whatever MLKIT_DASK_SCHEDULER says, and matches
    result = cli("reproduce", "replay/1", "--json", cwd=root)
    assert result.exit_code == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert (verdict["matched"], verdict["reproduced_backend"]) == (True, "local")
    rebuilt = client.get_run(verdict["reproduced_run_id"]).data.tags
    assert (rebuilt[tags.BACKEND], rebuilt[tags.BACKEND_SOURCE]) == ("local", "mlkit reproduce")

    # the dask version is rebuilt on the cluster and matches
    result = cli("reproduce", "replay/2", "--json", cwd=root)
    assert result.exit_code == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert (verdict["matched"], verdict["reproduced_backend"]) == (True, "dask with 2 workers x 1 thread")
    assert client.get_model_version("replay", "2").tags[tags.REPRODUCED] == "true"

    # without a scheduler it is refused with the reason, and the verdict stays
    monkeypatch.delenv("MLKIT_DASK_SCHEDULER")
    result = cli("reproduce", "replay/2", cwd=root)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-2:] == [
        "error: recorded backend dask with 2 workers x 1 thread; set MLKIT_DASK_SCHEDULER or training.scheduler "
        "to reproduce it",
        "hint: a reproduction in process would not be evidence either way: the model was fitted on a cluster",
    ]
    assert client.get_model_version("replay", "2").tags[tags.REPRODUCED] == "true"


@pytest.mark.slow
def test_a_mismatch_on_another_cluster_shape_names_it_first_and_leaves_the_verdict(
    dask_cluster: S.DaskCluster, make_project: Callable[..., Path], cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project("shape")
    monkeypatch.setenv("MLKIT_DASK_SCHEDULER", dask_cluster.address)
    trained = _train(cli, root)
    _commit_all(root, "outputs of the run")
    client = _client(root)
    client.set_model_version_tag("shape", trained["model_version"], tags.REPRODUCED, "true")  # an earlier verdict

    smaller = S.start_dask(workers=1)
    try:
        monkeypatch.setenv("MLKIT_DASK_SCHEDULER", smaller.address)
        result = cli("reproduce", "shape/1", "--json", cwd=root)
    finally:
        S.stop_dask(smaller)
    verdict = json.loads(result.stdout)
    assert verdict["backend_differences"] == ["Dask workers: 2 then, 1 now"]
    if verdict["matched"]:  # identical on one worker: that is evidence, and recorded as such
        assert result.exit_code == 0
        assert client.get_model_version("shape", "1").tags[tags.REPRODUCED] == "true"
        return
    assert result.exit_code == 4
    assert verdict["likely_causes"][0] == "Dask workers: 2 then, 1 now"
    assert not any("unseeded randomness" in cause for cause in verdict["likely_causes"])
    assert verdict["verdict_recorded"] is False
    version_tags = client.get_model_version("shape", "1").tags
    assert version_tags[tags.REPRODUCED] == "true"  # not overwritten by a run on another shape
    assert version_tags[tags.REPRODUCTION_INCONCLUSIVE] == (
        f"run {verdict['reproduced_run_id']} did not match on another backend: Dask workers: 2 then, 1 now"
    )


@pytest.mark.slow
def test_the_workers_read_the_data_and_the_client_never_holds_the_table(
    dask_cluster: S.DaskCluster, make_project: Callable[..., Path], cli: Callable, tmp_path: Path
) -> None:
    import numpy as np
    import pandas as pd

    root = make_project("big")
    rows, columns = 4_800_000, 40
    generator = np.random.default_rng(7)
    frame = pd.DataFrame(generator.standard_normal((rows, columns)), columns=[f"x{i}" for i in range(columns)])
    frame["label"] = (frame["x0"] + frame["x1"] > 0).astype("int64")
    table_bytes = int(frame.memory_usage(deep=True).sum())  # about 1.6 GB
    frame.to_parquet(root / "data" / "big.parquet", row_group_size=200_000)
    del frame
    assert cli("data", "add", "data/big.parquet", cwd=root).exit_code == 0
    assert cli("data", "push", cwd=root).exit_code == 0
    _commit_all(root, "a table larger than the client may hold")

    env = {**os.environ, "MLKIT_DASK_SCHEDULER": dask_cluster.address}
    argv = [MLKIT, "train", "--json", "--set", "data.train=data/big.parquet", "--set", "data.target=label"]
    argv += ["--set", "data.hook=null", "--set", "params.test_size=0.02", "--set", "params.estimator.n_estimators=10"]
    # a small launcher runs the client and reports its peak: measured on the train process itself, the
    # peak would include the pages it shared with this (large) test process between fork and exec
    peak_file = tmp_path / "peak_kb"
    with (tmp_path / "out.json").open("wb") as out, (tmp_path / "err.txt").open("wb") as err:
        process = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, str(peak_file), *argv], cwd=root, env=env, stdout=out, stderr=err
        )
    assert process.returncode == 0, (tmp_path / "err.txt").read_text()
    peak = int(peak_file.read_text()) * 1024  # Linux reports kilobytes
    trained = json.loads((tmp_path / "out.json").read_text())

    # every row was trained on or tested, and the workers read the table from the DVC remote
    client = _client(root)
    metrics = client.get_run(trained["run_id"]).data.metrics
    assert metrics["train_rows"] + metrics["test_rows"] == rows
    assert metrics["test_rows"] < 0.03 * rows
    assert trained["metrics"]["accuracy"] > 0.95
    read = json.loads(client.get_run(trained["run_id"]).data.tags[tags.DASK_DATA_READ])
    assert read["data/big.parquet"].startswith("DVC remote 'local' (")
    # the client's peak is well below the table: reading it whole (let alone transforming it) could not fit
    assert peak < 0.5 * table_bytes, f"client peak RSS {peak / 1e6:.0f} MB, table {table_bytes / 1e6:.0f} MB"
    S.FIGURES["dask: client peak RSS vs table"] = f"{peak / 1e6:.0f} MB for a {table_bytes / 1e6:.0f} MB table"


@pytest.mark.slow
def test_a_lost_worker_is_one_line_and_the_run_ends_failed(
    make_project: Callable[..., Path], cli: Callable, tmp_path: Path
) -> None:
    root = make_project("lost")
    cluster = S.start_dask(workers=2)
    process = None
    try:
        env = {**os.environ, "MLKIT_DASK_SCHEDULER": cluster.address}
        argv = [MLKIT, "train", "--set", "params.estimator.n_estimators=50000", "--set", "params.estimator.max_depth=8"]
        process = subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(line)
            if line.startswith("fitting "):
                break
        time.sleep(3)
        os.killpg(cluster.pids[-1], signal.SIGKILL)  # the last worker, mid-training
        _, tail = process.communicate(timeout=300)
        stderr = "".join(lines) + tail
    finally:
        if (
            process is not None and process.poll() is None
        ):  # hung: fail below with what it printed, never leave it running
            process.kill()
            process.wait()
        S.stop_dask(cluster)
    assert process is not None and process.returncode == 1, stderr
    assert "Traceback" not in stderr and "FutureCancelledError" not in stderr
    error, hint = stderr.splitlines()[-2:]
    assert error.startswith("error: a Dask worker was lost during the run (tcp://127.0.0.1:")
    assert error.endswith("; 1 of 2 workers left")
    assert hint.startswith("hint: run it again; check the workers' memory limits and logs")
    [run] = _client(root).search_runs([_client(root).get_experiment_by_name("lost").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags[tags.FAILURE] == error.removeprefix("error: ")
