"""`mlkit server start|status|stop` over a real PostgreSQL, artifacts proxied to a real S3 server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import _services as S
import pytest

MLKIT = str(Path(sys.executable).with_name("mlkit"))


def mlkit(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([MLKIT, *args], cwd=cwd, env=env, text=True, capture_output=True, timeout=180)


@pytest.mark.slow
def test_start_status_stop_keeps_credentials_out_of_files(postgres: S.Postgres, s3: S.S3Server,
                                                         tmp_path: Path) -> None:
    backend = postgres.create_database("serverlifecycle")
    port = S.free_port()
    env = {**os.environ, **s3.env(), "PGPASSWORD": postgres.password}
    destination = f"s3://{s3.bucket('lifecycle')}/artifacts"

    started = mlkit("server", "start", "--backend-store-uri", backend, "--artifacts-destination", destination,
                    "--port", str(port), "--workers", "1", "--json", env=env, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    state = json.loads(started.stdout)
    try:
        assert state["running"] is True
        assert state["url"] == f"http://127.0.0.1:{port}"
        assert state["backend"] == backend
        assert S.http_ok(f"http://127.0.0.1:{port}/health")

        status = mlkit("server", "status", "--json", env=env, cwd=tmp_path)
        assert status.returncode == 0
        assert json.loads(status.stdout)["pid"] == state["pid"]
        assert json.loads(status.stdout)["running"] is True

        again = mlkit("server", "start", "--backend-store-uri", backend, "--port", str(port),
                      env=env, cwd=tmp_path)
        assert again.returncode == 2
        assert again.stderr.splitlines() == [
            f"error: a tracking server is already running at {state['url']} (pid {state['pid']})",
            "hint: run `mlkit server stop` first, or `mlkit server status` to see it",
        ]

        # an artifact logged through the server lands in the S3 bucket: proxied, the client holds no keys
        code = (f"import mlflow; mlflow.set_tracking_uri('{state['url']}'); mlflow.set_experiment('e');"
                "mlflow.start_run(); mlflow.log_text('hi', 'note.txt'); mlflow.end_run()")
        client_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_S3"))}
        subprocess.run([sys.executable, "-c", code], env=client_env, check=True, capture_output=True,
                       timeout=120)
        assert list((s3.root / "lifecycle" / "artifacts").rglob("note.txt"))

        for written in (tmp_path / ".mlkit").iterdir():
            assert postgres.password not in written.read_text(errors="replace"), written.name
            assert s3.secret_key not in written.read_text(errors="replace"), written.name
    finally:
        stopped = mlkit("server", "stop", "--json", env=env, cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["running"] is False
    assert not S.port_open(port)
    with pytest.raises(ProcessLookupError):
        os.kill(state["pid"], 0)
    status = mlkit("server", "status", "--json", env=env, cwd=tmp_path)
    assert json.loads(status.stdout) == {"running": False, "pid": None, "url": None, "backend": None,
                                         "artifacts_destination": None, "log": None, "started_at": None}


@pytest.mark.parametrize(("args", "error", "hint"), [
    (("start", "--backend-store-uri", "postgresql://u:hunter2@127.0.0.1:5432/db"),
     "error: --backend-store-uri must not contain a password: postgresql://u:***@127.0.0.1:5432/db",
     "hint: pass the password in PGPASSWORD, or put the whole URI in MLKIT_SERVER_BACKEND_URI"),
    (("start",),
     "error: no backend store given",
     "hint: pass --backend-store-uri postgresql://USER@HOST:PORT/DB or set MLKIT_SERVER_BACKEND_URI"),
    (("stop",),
     "error: no tracking server is recorded for this project",
     "hint: run `mlkit server start --backend-store-uri ...` first"),
], ids=["password-on-the-command-line", "no-backend-store", "stop-without-a-server"])
def test_refusals_are_usage_errors_and_write_nothing(tmp_path: Path, args: tuple[str, ...], error: str,
                                                     hint: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLKIT_SERVER_BACKEND_URI"}
    result = mlkit("server", *args, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [error, hint]
    assert "hunter2" not in result.stderr + result.stdout
    assert not (tmp_path / ".mlkit" / "server.json").exists()
