"""Team tracking against real PostgreSQL and a real `mlflow server` over it: direct database URIs,
a server that goes away in the middle of a run, and eight people training at the same time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import _services as S
import pytest
from mlflow import MlflowClient

MLKIT = str(Path(sys.executable).with_name("mlkit"))
FAST = ["--set", "params.estimator.n_estimators=20"]


def mlkit(*args: str, cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([MLKIT, *args], cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)


def _registry(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.mark.slow
def test_postgresql_uri_with_the_password_from_the_environment(
    postgres: S.Postgres, pg_password: str, make_project: Callable[..., Path], cli: Callable
) -> None:
    uri = postgres.create_database("direct")  # no password in it: libpq reads PGPASSWORD
    root = make_project("direct")
    config = root / "mlkit.yaml"
    config.write_text(config.read_text().replace("  # uri: http://127.0.0.1:5000", f"  uri: {uri}"))
    subprocess.run(["git", "commit", "-qam", "track runs in the team database"], cwd=root, check=True)

    result = cli("train", "--json", *FAST, cwd=root)
    assert result.exit_code == 0, result.stderr
    trained = json.loads(result.stdout)
    assert trained["model_version"] == "1"
    versions = _registry(uri).search_model_versions(f"name='{trained['model_name']}'")
    assert [str(v.version) for v in versions] == ["1"]
    assert versions[0].tags["mlkit.run_id"] == trained["run_id"]
    assert not (root / ".mlkit" / "mlflow.db").exists()
    assert pg_password not in config.read_text()

    shown = cli("config", "show", "--json", cwd=root)
    assert json.loads(shown.stdout)["tracking_uri"] == uri


def test_password_in_the_environment_uri_is_never_shown(
    postgres: S.Postgres, make_project: Callable[..., Path], cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project("redacted")
    monkeypatch.setenv("MLKIT_TRACKING_URI", postgres.uri_with_password)
    shown = cli("config", "show", "--json", cwd=root)
    assert json.loads(shown.stdout)["tracking_uri"] == postgres.uri.replace(
        f"{postgres.user}@", f"{postgres.user}:***@"
    )
    assert postgres.password not in shown.stdout + shown.stderr


KILLER_HOOK = """
import os, signal, time


def build_features(frame):
    # the tracking server goes away after the run was created, before anything is registered
    pgid = int(os.environ["KILL_SERVER_PGID"])
    os.killpg(pgid, signal.SIGTERM)
    for _ in range(200):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    return frame
"""


@pytest.mark.slow
def test_server_down_mid_run_fails_in_one_line_and_registers_nothing(
    postgres: S.Postgres, s3: S.S3Server, make_project: Callable[..., Path], tmp_path: Path
) -> None:
    server = S.start_tracking_server(
        postgres,
        database="downmidway",
        extra_env=s3.env(),
        artifacts_destination=f"s3://{s3.bucket('downmidway')}/artifacts",
    )
    restarted = None
    try:
        root = make_project("downmidway")
        features = next((root / "src").glob("*/features.py"))
        features.write_text(KILLER_HOOK)
        env = {**os.environ, "MLKIT_TRACKING_URI": server.url, "KILL_SERVER_PGID": str(server.pid)}
        result = mlkit("train", "--allow-dirty", *FAST, cwd=root, env=env)

        assert result.returncode == 1, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1
        # the run is opened in a background thread while the data load: the server may be gone before
        # the run exists (caught by the reachability check) or after (caught when logging)
        assert errors[0] in (
            f"error: tracking server {server.url} is unreachable after 4 attempts: [Errno 111] Connection refused",
            f"error: tracking server {server.url} became unreachable during the run (connection refused); "
            "nothing was registered",
        )
        assert "Traceback" not in result.stderr
        assert not (root / ".mlkit" / "mlflow.db").exists()  # nothing fell back to a local store

        # the same database behind a new server: the run is there, no model version is
        restarted = S.start_tracking_server(
            postgres,
            extra_env=s3.env(),
            artifacts_destination=f"s3://{s3.bucket('downmidway')}/artifacts",
            backend_uri=server.backend_uri,
        )
        assert _registry(restarted.url).search_model_versions() == []
        runs = _registry(restarted.url).search_runs(
            [e.experiment_id for e in _registry(restarted.url).search_experiments()]
        )
        assert len(runs) <= 1
        assert all(run.info.status != "FINISHED" for run in runs)
    finally:
        S.stop_tracking_server(server)
        if restarted is not None:
            S.stop_tracking_server(restarted)


@pytest.mark.slow
def test_eight_concurrent_trains_against_the_server_are_all_registered(
    tracking_server: S.TrackingServer, s3: S.S3Server, make_project: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_project("octet")
    clones = []
    for index in range(8):  # eight people, each with their own checkout of the project
        clone = tmp_path / f"member-{index}"
        shutil.copytree(root, clone, symlinks=True)
        clones.append(clone)
    env = {**os.environ, **s3.env(), "MLKIT_TRACKING_URI": tracking_server.url}  # signed in as the admin
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [MLKIT, "train", "--json", *FAST, "--set", "model.name=concurrent"],
            cwd=clone,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for clone in clones
    ]
    outputs = [process.communicate(timeout=900) for process in processes]
    elapsed = time.perf_counter() - started
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    results = [json.loads(stdout) for stdout, _ in outputs]
    assert sorted(int(r["model_version"]) for r in results) == list(range(1, 9))
    S.FIGURES["8 concurrent trains (authenticated)" if tracking_server.auth else "8 concurrent trains"] = (
        f"{elapsed:.1f} s wall, 8 of 8 registered, 0 errors"
    )

    registry = _registry(tracking_server.url)
    versions = registry.search_model_versions("name='concurrent'")
    assert sorted(int(v.version) for v in versions) == list(range(1, 9))
    assert {v.run_id for v in versions} == {r["run_id"] for r in results}
    # artifacts went through the server into object storage
    assert len(list((s3.root / "mlflow" / "artifacts").rglob("MLmodel"))) >= 8


@pytest.mark.slow
def test_processes_opening_a_fresh_database_at_once_all_succeed(
    postgres: S.Postgres, pg_password: str, make_project: Callable[..., Path]
) -> None:
    # MLflow creates its tables on first use; without a lock all but one of several first users fail
    uri = postgres.create_database("fresh", migrated=False)
    root = make_project("fresh")
    env = {**os.environ, "MLKIT_TRACKING_URI": uri}
    processes = [
        subprocess.Popen(
            [MLKIT, "runs", "list", "--json"],
            cwd=root,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [(process.returncode, stderr) for process, (_, stderr) in zip(processes, outputs, strict=True)] == [
        (0, "")
    ] * 4
    assert [json.loads(stdout) for stdout, _ in outputs] == [[]] * 4
    assert [e.name for e in _registry(uri).search_experiments()] == ["Default"]
