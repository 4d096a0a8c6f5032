"""A local MLflow tracking server for a small team: PostgreSQL behind it, proxied artifacts in front.

mlkit does not implement a server: it starts `mlflow server` with the right options, remembers it in
a pid file under `.mlkit/`, and stops it by that pid. Credentials never travel on a command line or
into a file: the backend URI reaches the child through MLflow's own environment variable, the database
password comes from ``PGPASSWORD`` (or a password inside ``MLKIT_SERVER_BACKEND_URI``), object-storage
keys from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``; the pid file and every message carry the
URI without its password.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from mlkit import constants as C
from mlkit.engines import mlflow
from mlkit.errors import OperationError, UsageError
from mlkit.progress import Progress
from mlkit.uris import redact

PID_FILE = "server.json"
LOG_FILE = "server.log"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000



@dataclass(frozen=True)
class ServerState:
    """What `mlkit server status` reports; the same object is what `--json` prints."""

    running: bool
    pid: int | None = None
    url: str | None = None
    backend: str | None = None
    artifacts_destination: str | None = None
    log: str | None = None
    started_at: float | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def backend_uri_from(option: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The backend store URI: the option (which must not carry a password) or the environment."""
    env = os.environ if environ is None else environ
    if option:
        if _has_password(option):
            raise UsageError(
                f"--backend-store-uri must not contain a password: {redact(option)}",
                hint=f"pass the password in PGPASSWORD, or put the whole URI in {C.ENV_SERVER_BACKEND_URI}",
            )
        uri = option
    else:
        uri = env.get(C.ENV_SERVER_BACKEND_URI, "")
    if not uri:
        raise UsageError("no backend store given",
                         hint=f"pass --backend-store-uri postgresql://USER@HOST:PORT/DB "
                              f"or set {C.ENV_SERVER_BACKEND_URI}")
    if not (mlflow.is_database(uri) or uri.startswith("sqlite:///")):
        raise UsageError(f"unsupported backend store {redact(uri)}",
                         hint="use a postgresql:// URI (or sqlite:///PATH for a quick local try)")
    return uri


def start(state_dir: Path, backend_uri: str, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          artifacts_destination: str | None = None, workers: int = 2, timeout: float = 60.0,
          environ: Mapping[str, str] | None = None, progress: Progress | None = None) -> ServerState:
    """Start `mlflow server` in the background and wait until it answers its health check."""

    mlflow.check_driver(backend_uri)
    current = status(state_dir)
    if current.running:
        raise UsageError(f"a tracking server is already running at {current.url} (pid {current.pid})",
                         hint="run `mlkit server stop` first, or `mlkit server status` to see it")
    if not 0 < port < 65536:
        raise UsageError(f"--port {port}: must be between 1 and 65535")
    state_dir.mkdir(parents=True, exist_ok=True)
    destination = artifacts_destination or (state_dir / "server-artifacts").resolve().as_uri()
    url = f"http://{_url_host(host)}:{port}"
    if _answers(url):
        raise OperationError(f"something else already answers on {url}",
                             hint="pick another port with --port")
    env = {**(os.environ if environ is None else environ)}
    env["MLFLOW_BACKEND_STORE_URI"] = backend_uri  # not on argv: `ps` would show a password
    env.pop("MLFLOW_TRACKING_URI", None)
    argv = [_mlflow_executable(), "server", "--host", host, "--port", str(port), "--workers", str(workers),
            "--serve-artifacts", "--artifacts-destination", destination]
    if host not in ("127.0.0.1", "localhost", "::1"):
        argv += ["--allowed-hosts", "*"]
    log_path = state_dir / LOG_FILE
    if progress:
        progress(f"starting mlflow server on {url} over {redact(backend_uri)}")
    with log_path.open("ab") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=env, start_new_session=True)  # own group: stop takes uvicorn too
    started = time.time()
    state = ServerState(running=True, pid=process.pid, url=url, backend=redact(backend_uri),
                        artifacts_destination=redact(destination), log=str(log_path), started_at=started)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise OperationError(f"mlflow server exited with code {process.returncode} while starting",
                                 hint=f"read the last lines of {log_path}")
        if _answers(url):
            _write_state(state_dir, state)
            return state
        time.sleep(0.25)
    _kill_group(process.pid, timeout=10)
    raise OperationError(f"mlflow server did not answer on {url} within {timeout:.0f}s",
                         hint=f"read {log_path}; raise --timeout on a slow machine")


def status(state_dir: Path) -> ServerState:
    """The server recorded in ``state_dir``, and whether it still runs and answers."""
    recorded = _read_state(state_dir)
    if recorded is None:
        return ServerState(running=False)
    alive = recorded.pid is not None and _pid_alive(recorded.pid)
    return dataclasses.replace(recorded, running=alive)


def stop(state_dir: Path, *, timeout: float = 20.0, progress: Progress | None = None) -> ServerState:
    """Stop the recorded server by its pid (the whole process group it leads) and forget it."""
    recorded = _read_state(state_dir)
    if recorded is None or recorded.pid is None:
        raise UsageError("no tracking server is recorded for this project",
                         hint="run `mlkit server start --backend-store-uri ...` first")
    if _pid_alive(recorded.pid):
        if progress:
            progress(f"stopping mlflow server (pid {recorded.pid})")
        _kill_group(recorded.pid, timeout=timeout)
    (state_dir / PID_FILE).unlink(missing_ok=True)
    return dataclasses.replace(recorded, running=False)


# --- helpers ----------------------------------------------------------------------------------------

def _has_password(uri: str) -> bool:
    from urllib.parse import urlsplit

    try:
        return bool(urlsplit(uri).password)
    except ValueError:
        return False


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _answers(url: str, timeout: float = 2.0) -> bool:
    """Whether an MLflow server answers its health check at ``url``."""
    return not mlflow.probe_http(url, timeout)


def _mlflow_executable() -> str:
    candidate = Path(sys.executable).with_name("mlflow")
    return str(candidate) if candidate.exists() else "mlflow"


def _write_state(state_dir: Path, state: ServerState) -> None:
    target = state_dir / PID_FILE
    partial = target.with_suffix(".tmp")
    partial.write_text(json.dumps(state.as_dict(), indent=2) + "\n", encoding="utf-8")
    partial.replace(target)


def _read_state(state_dir: Path) -> ServerState | None:
    try:
        data = json.loads((state_dir / PID_FILE).read_text(encoding="utf-8"))
        return ServerState(**data)
    except (FileNotFoundError, ValueError, TypeError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this very process counts as gone
        finished, _ = os.waitpid(pid, os.WNOHANG)
        return finished == 0
    except ChildProcessError:
        return True


def _kill_group(pid: int, *, timeout: float) -> None:
    """SIGTERM the process group ``pid`` leads (mlflow and its uvicorn workers), SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _pid_alive(pid)  # reaps it when it is our own child
            if not _group_alive(pid):
                return
            time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
