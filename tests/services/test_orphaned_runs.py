"""No orphaned runs on a team server: the tracking server or its PostgreSQL database goes away while
`mlkit train` fits; the training fails in one line within a bounded time, and once the service is back
the run shows as lost and `mlkit runs end-lost` ends it FAILED."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import _services as S
import pytest
from mlflow import MlflowClient

from mlkit import tags

pytestmark = pytest.mark.slow

MLKIT = str(Path(sys.executable).with_name("mlkit"))
SLOW_FIT = ["--set", "params.estimator.n_estimators=100000", "--set", "params.estimator.max_depth=8"]
HEARTBEAT_SECONDS = 1
# two beats refused (2 s), MLflow's bounded retries on the refused beat, the interpreter's exit: well
# under this; the issue measured 77 s before the heartbeat existed
BOUND_SECONDS = 45


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "MLKIT_TRACKING_URI": url, "MLKIT_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS)}


def _running_run(url: str, experiment: str, process: subprocess.Popen, timeout: float = 180) -> str:
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            running = client.search_runs([found.experiment_id], filter_string="attributes.status = 'RUNNING'")
            if running and tags.HEARTBEAT in running[0].data.tags:
                return str(running[0].info.run_id)
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.5)
    raise AssertionError("no RUNNING run appeared")


def _wait_fitting(process: subprocess.Popen) -> list[str]:
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith("fitting "):
            return seen
    raise AssertionError("".join(seen))


def _fails_in_one_line(process: subprocess.Popen, seen: list[str], since: float, url: str) -> float:
    """The training's exit: code 1, one error line naming the tracking server, no traceback; its delay."""
    _, rest = process.communicate(timeout=300)
    elapsed = time.monotonic() - since
    stderr = "".join(seen) + rest
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert errors[0].startswith(f"error: tracking server {url} "), stderr
    assert errors[0].endswith("nothing was registered"), stderr
    return elapsed


def _lost_then_ended(root: Path, url: str, run_id: str) -> None:
    env = _env(url)
    listed = subprocess.run(
        [MLKIT, "runs", "list", "--json"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    row = next(run for run in json.loads(listed.stdout) if run["run_id"] == run_id)
    assert row["status"] == "lost"
    assert row["lost"].endswith(f"on {socket.gethostname()} is gone")
    ended = subprocess.run(
        [MLKIT, "runs", "end-lost", "--json"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert ended.returncode == 0, ended.stderr
    assert [run["run_id"] for run in json.loads(ended.stdout)] == [run_id]
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    run = client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags[tags.FAILURE].startswith("lost: its process ")
    assert client.search_model_versions(f"run_id = '{run_id}'") == []


@contextmanager
def _training(root: Path, url: str, experiment: str) -> Iterator[tuple[subprocess.Popen[str], list[str], str]]:
    """A slow `mlkit train` against the server at ``url``, once it fits: the process, the status lines it
    printed so far and its RUNNING run's id; killed on the way out if it is still alive."""
    process = subprocess.Popen(
        [MLKIT, "train", *SLOW_FIT],
        cwd=root,
        env=_env(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        seen = _wait_fitting(process)
        yield process, seen, _running_run(url, experiment, process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_server_killed_mid_fit_fails_within_bounds_then_the_run_is_lost_and_ended(
    postgres: S.Postgres, s3: S.S3Server, make_project: Callable[..., Path]
) -> None:
    artifacts = f"s3://{s3.bucket('orphans')}/artifacts"
    server = S.start_tracking_server(postgres, database="orphans", extra_env=s3.env(), artifacts_destination=artifacts)
    restarted = None
    try:
        root = make_project("orphans")
        with _training(root, server.url, "orphans") as (process, seen, run_id):
            os.killpg(server.pid, signal.SIGKILL)
            killed = time.monotonic()
            elapsed = _fails_in_one_line(process, seen, killed, server.url)
        S.FIGURES["train failed after the tracking server died"] = f"{elapsed:.1f} s (heartbeat {HEARTBEAT_SECONDS} s)"
        assert elapsed < BOUND_SECONDS

        restarted = S.start_tracking_server(
            postgres, backend_uri=server.backend_uri, extra_env=s3.env(), artifacts_destination=artifacts
        )
        _lost_then_ended(root, restarted.url, run_id)
    finally:
        for each in (server, restarted):
            if each is not None:
                S.stop_tracking_server(each)


def test_database_stopped_mid_fit_fails_within_bounds_then_the_run_is_lost_and_ended(
    postgres: S.Postgres, s3: S.S3Server, make_project: Callable[..., Path]
) -> None:
    artifacts = f"s3://{s3.bucket('dbdown')}/artifacts"
    server = S.start_tracking_server(postgres, database="dbdown", extra_env=s3.env(), artifacts_destination=artifacts)
    paused = False
    try:
        root = make_project("dbdown")
        with _training(root, server.url, "dbdown") as (process, seen, run_id):
            S.pause_postgres(postgres)
            paused = True
            stopped = time.monotonic()
            elapsed = _fails_in_one_line(process, seen, stopped, server.url)
        S.FIGURES["train failed after PostgreSQL stopped"] = f"{elapsed:.1f} s (heartbeat {HEARTBEAT_SECONDS} s)"
        assert elapsed < BOUND_SECONDS

        S.resume_postgres(postgres)
        paused = False
        _lost_then_ended(root, server.url, run_id)
    finally:
        if paused:
            S.resume_postgres(postgres)
        S.stop_tracking_server(server)
