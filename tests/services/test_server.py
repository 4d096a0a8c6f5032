"""`mlkit server start|status|stop` over a real PostgreSQL, artifacts proxied to a real S3 server."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import _services as S
import pytest

MLKIT = str(Path(sys.executable).with_name("mlkit"))


def mlkit(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([MLKIT, *args], cwd=cwd, env=env, text=True, capture_output=True, timeout=180)


@pytest.mark.slow
def test_start_status_stop_keeps_credentials_out_of_files(postgres: S.Postgres, s3: S.S3Server, tmp_path: Path) -> None:
    backend = postgres.create_database("serverlifecycle")
    port = S.free_port()
    # no MLFLOW_AUTH_ADMIN_*: mlkit generates the admin account
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")},
        **s3.env(),
        "PGPASSWORD": postgres.password,
    }
    destination = f"s3://{s3.bucket('lifecycle')}/artifacts"

    started = mlkit(
        "server",
        "start",
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        destination,
        "--port",
        str(port),
        "--workers",
        "1",
        "--json",
        env=env,
        cwd=tmp_path,
    )
    assert started.returncode == 0, started.stderr
    state = json.loads(started.stdout)
    auth_dir = tmp_path / ".mlkit" / "server-auth"
    try:
        assert state["running"] is True
        assert state["auth"] is True
        assert state["url"] == f"http://127.0.0.1:{port}"
        assert state["backend"] == backend
        assert S.http_ok(f"http://127.0.0.1:{port}/health")  # the health endpoint needs nobody signed in

        # the generated admin account: owner-only files, and on no process's command line
        assert stat.S_IMODE(auth_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((auth_dir / "admin.json").stat().st_mode) == 0o600
        assert stat.S_IMODE((auth_dir / "basic_auth.ini").stat().st_mode) == 0o600
        admin = json.loads((auth_dir / "admin.json").read_text())
        assert admin["username"] == "admin" and len(admin["password"]) >= 24
        group = [
            int(p)
            for p in subprocess.run(["pgrep", "-g", str(state["pid"])], capture_output=True, text=True).stdout.split()
        ]
        assert state["pid"] in group and len(group) == 2  # mlflow and one uvicorn worker: no job runner
        for pid in group:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            assert admin["password"] not in cmdline and postgres.password not in cmdline, cmdline
            assert "basic-auth" in cmdline or "uvicorn" in cmdline

        # nobody signed in, or a wrong password: refused; the admin: served
        search = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
        assert _http_status(search) == 401
        assert _http_status(search, ("admin", "not-the-password")) == 401
        assert _http_status(search, ("admin", admin["password"])) == 200

        status = mlkit("server", "status", "--json", env=env, cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["pid"] == state["pid"]
        assert json.loads(status.stdout)["running"] is True
        assert json.loads(status.stdout)["health"] == {"server": "ok", "database": "ok", "artifacts": "ok"}

        again = mlkit("server", "start", "--backend-store-uri", backend, "--port", str(port), env=env, cwd=tmp_path)
        assert again.returncode == 2
        assert again.stderr.splitlines() == [
            f"error: a tracking server is already running at {state['url']} (pid {state['pid']})",
            "hint: run `mlkit server stop` first, or `mlkit server status` to see it",
        ]

        # an artifact logged through the server lands in the S3 bucket: proxied, the client holds no keys
        code = (
            f"import mlflow; mlflow.set_tracking_uri('{state['url']}'); mlflow.set_experiment('e');"
            "mlflow.start_run(); mlflow.log_text('hi', 'note.txt'); mlflow.end_run()"
        )
        client_env = {k: v for k, v in env.items() if not k.startswith(("AWS_", "MLFLOW_S3"))}
        client_env |= {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": admin["password"]}
        subprocess.run([sys.executable, "-c", code], env=client_env, check=True, capture_output=True, timeout=120)
        assert list((s3.root / "lifecycle" / "artifacts").rglob("note.txt"))

        for written in (tmp_path / ".mlkit").rglob("*"):
            if not written.is_file():
                continue
            text = written.read_text(errors="replace")
            assert postgres.password not in text, written.name
            assert s3.secret_key not in text, written.name
            if written.name != "admin.json":  # the one place the generated password is kept
                assert admin["password"] not in text, written.name
    finally:
        stopped = mlkit("server", "stop", "--json", env=env, cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["running"] is False
    assert not S.port_open(port)
    with pytest.raises(ProcessLookupError):
        os.kill(state["pid"], 0)
    status = mlkit("server", "status", "--json", env=env, cwd=tmp_path)
    assert json.loads(status.stdout) == {
        "running": False,
        "pid": None,
        "url": None,
        "backend": None,
        "artifacts_destination": None,
        "log": None,
        "started_at": None,
        "auth": None,
        "certificate": None,
        "health": {},
        "stale": None,
    }


def _http_status(url: str, basic: tuple[str, str] | None = None) -> int:
    import base64
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url)
    if basic is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(basic).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.slow
def test_no_auth_is_loopback_only_and_says_so(postgres: S.Postgres, tmp_path: Path) -> None:
    backend = postgres.create_database("noauth")
    env = {**os.environ, "PGPASSWORD": postgres.password}
    refused = mlkit("server", "start", "-b", backend, "--no-auth", "--host", "0.0.0.0", env=env, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "error: --no-auth is only allowed on loopback, not on --host 0.0.0.0",
        "hint: drop --no-auth (users then sign in), or bind 127.0.0.1",
    ]
    port = S.free_port()
    started = mlkit(
        "server", "start", "-b", backend, "--no-auth", "--port", str(port), "--workers", "1", env=env, cwd=tmp_path
    )
    try:
        assert started.returncode == 0, started.stderr
        assert (
            f"warning: authentication is off: anyone who reaches http://127.0.0.1:{port} can change runs, "
            "stages and the audit trail; use --no-auth only on a trusted machine"
        ) in started.stderr
        assert _http_status(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1") == 200
        assert not (tmp_path / ".mlkit" / "server-auth").exists()
    finally:
        stopped = mlkit("server", "stop", env=env, cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr


@pytest.mark.parametrize(
    ("args", "error", "hint"),
    [
        (
            ("start", "--backend-store-uri", "postgresql://u:hunter2@127.0.0.1:5432/db"),
            "error: --backend-store-uri must not contain a password: postgresql://u:***@127.0.0.1:5432/db",
            "hint: pass the password in PGPASSWORD, or put the whole URI in MLKIT_SERVER_BACKEND_URI",
        ),
        (
            ("start",),
            "error: no backend store given",
            "hint: pass --backend-store-uri postgresql://USER@HOST:PORT/DB or set MLKIT_SERVER_BACKEND_URI",
        ),
        (
            ("stop",),
            "error: no tracking server is recorded for this project",
            "hint: run `mlkit server start --backend-store-uri ...` first",
        ),
    ],
    ids=["password-on-the-command-line", "no-backend-store", "stop-without-a-server"],
)
def test_refusals_are_usage_errors_and_write_nothing(
    tmp_path: Path, args: tuple[str, ...], error: str, hint: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLKIT_SERVER_BACKEND_URI"}
    result = mlkit("server", *args, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [error, hint]
    assert "hunter2" not in result.stderr + result.stdout
    assert not (tmp_path / ".mlkit" / "server.json").exists()
