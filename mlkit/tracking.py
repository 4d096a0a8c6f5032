"""The MLflow tracking store and registry a project talks to.

Embedded default: SQLite at `.mlkit/mlflow.db` inside the project. A fresh SQLite store that several
processes open at the same time for the first time can be left half-migrated, so the first creation
happens once, serially, under an inter-process file lock; later opens skip the lock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from mlkit import constants as C
from mlkit import credentials  # server authentication for probe_http
from mlkit.errors import OperationError, UsageError, first_line
from mlkit.uris import redact

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlkit.project import Project

T = TypeVar("T")

_READY_MARKER = "mlflow.db.ready"
_LOCK_TIMEOUT_S = 120.0


def is_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:")


def sqlite_path(uri: str) -> Path:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else Path(uri.split(":", 1)[1])


def configure(project: Project) -> str:
    """Point MLflow at the project's store (creating it once if needed) and return the tracking URI."""
    import mlflow

    _quiet_mlflow()
    uri = project.tracking_uri
    if is_sqlite(uri):
        ensure_sqlite_store(uri, project.state_dir)
    else:
        ensure_reachable(uri)
        if is_database(uri):
            ensure_database_store(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def ensure_sqlite_store(uri: str, state_dir: Path) -> None:
    """Create and migrate the SQLite store exactly once, under a file lock, before anyone uses it."""
    marker = state_dir / _READY_MARKER
    db = sqlite_path(uri)
    if marker.exists() and db.exists():
        return
    from filelock import FileLock, Timeout

    state_dir.mkdir(parents=True, exist_ok=True)
    db.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(state_dir / "mlflow.db.lock"))
    try:
        with lock.acquire(timeout=_LOCK_TIMEOUT_S):
            if marker.exists() and db.exists():
                return
            _create_store(uri)
            marker.write_text(uri + "\n")
    except Timeout:
        raise OperationError(
            f"another mlkit process has been creating the tracking store for {_LOCK_TIMEOUT_S:.0f}s",
            hint=f"wait for it to finish, or remove {state_dir / 'mlflow.db.lock'} if no mlkit is running",
        ) from None


def _create_store(uri: str) -> None:
    """Open MLflow's tracking and registry stores once: MLflow creates or upgrades its tables then."""
    import logging

    from mlflow import MlflowClient

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)


def client(project: Project) -> MlflowClient:
    from mlflow import MlflowClient

    uri = configure(project)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def artifact_location(project: Project) -> str | None:
    """Where new experiments keep artifacts: inside the project for a database store (SQLite, or
    PostgreSQL without a server), else wherever the tracking server proxies them to."""
    if is_sqlite(project.tracking_uri) or is_database(project.tracking_uri):
        return (project.state_dir / C.ARTIFACTS_DIR).resolve().as_uri()
    return None


def ensure_experiment(project: Project, name: str | None = None, *,
                      opened: MlflowClient | None = None) -> str:
    """The id of the named experiment (default: the project's), created on first use; ``opened`` is a
    client already opened on the project's store."""
    mlflow_client = opened or client(project)
    name = name or project.experiment
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(mlflow_client.create_experiment(name, artifact_location=artifact_location(project)))
    except Exception:
        found = mlflow_client.get_experiment_by_name(name)  # created concurrently by another process
        if found is None:
            raise
        return str(found.experiment_id)


def retry_locked(fn: Callable[[], T], *, attempts: int = 12, base_delay: float = 0.05) -> T:
    """Run ``fn``, retrying with jittered exponential backoff while SQLite reports `database is locked`."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if "database is locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(base_delay * (2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


# --- team tracking: an MLflow server over http(s), or PostgreSQL directly ------------------------------

_POSTGRES_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgresql+psycopg2://")
_REACHABLE: set[str] = set()  # URIs already checked by this process
# MLflow's own HTTP retries default to 7 attempts with a backoff factor of 2 and a 120 s timeout: minutes
# of silence when the server goes away mid-run. Bounded defaults, unless the user chose otherwise.
# And MLflow prints "View run ... at: URL" on stdout for http(s) servers: the library stays silent, and
# stdout belongs to the command's result (`--json`).
# Both are MLflow's defaults changed in this process only: a variable the user sets still wins, and
# os.environ is left alone (the store is opened in a thread while the main thread may be reading it).
_HTTP_DEFAULTS: dict[str, object] = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": 3, "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": 1,
    "MLFLOW_HTTP_REQUEST_TIMEOUT": 30, "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": True,
}


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def is_database(uri: str) -> bool:
    return uri.startswith(_POSTGRES_SCHEMES)


def check_driver(uri: str) -> None:
    """Fail with an install hint when the database driver a URI needs is missing.

    SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3 (shipped in the ``team`` extra);
    ``postgresql+psycopg2://`` keeps working for those who have psycopg2.
    """
    import importlib.util

    if uri.startswith("postgresql+psycopg2://"):
        if importlib.util.find_spec("psycopg2") is None:
            raise UsageError(f"{redact(uri)} needs the psycopg2 driver, which is not installed",
                             hint="pip install psycopg2-binary, or use postgresql:// with "
                                  "`pip install 'mlkit[team]'`")
    elif uri.startswith(("postgresql://", "postgresql+psycopg://")) \
            and importlib.util.find_spec("psycopg") is None:
        raise UsageError(f"{redact(uri)} needs the PostgreSQL driver psycopg, which is not installed",
                         hint="pip install 'mlkit[team]'")


def ensure_reachable(uri: str, *, attempts: int = 4, base_delay: float = 0.5, timeout: float = 5.0) -> None:
    """Make sure a remote tracking store answers before anything is logged or registered.

    Retries with exponential backoff (0.5, 1, 2 s by default), then raises one line naming the URI
    without its password. Nothing falls back to a local store.
    """
    if not (is_http(uri) or is_database(uri)):
        return
    _bound_mlflow_http()
    if uri in _REACHABLE:
        return
    check_driver(uri)
    probe = probe_http if is_http(uri) else _probe_database
    reason = ""
    for attempt in range(attempts):
        reason = probe(uri, timeout)
        if not reason:
            _REACHABLE.add(uri)
            return
        if attempt < attempts - 1:
            time.sleep(base_delay * (2**attempt))
    raise OperationError(
        f"tracking server {redact(uri)} is unreachable after {attempts} attempts: {_scrub(reason, uri)}",
        hint="start it (`mlkit server start`), check tracking.uri in mlkit.yaml or "
             f"{C.ENV_TRACKING_URI}, then run the command again",
    )


def _quiet_mlflow() -> None:
    """The library is silent: no progress bars from artifact transfers, no INFO lines while a model
    version is created. MLflow's defaults are changed in this process only (see _HTTP_DEFAULTS)."""
    import logging

    from mlflow import environment_variables

    environment_variables.MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.default = False
    logging.getLogger("mlflow.store.model_registry.abstract_store").setLevel(logging.WARNING)


def _bound_mlflow_http() -> None:
    from mlflow import environment_variables

    for name, value in _HTTP_DEFAULTS.items():
        variable = getattr(environment_variables, name, None)
        if variable is not None:
            variable.default = value


def lost_connection(exc: BaseException, uri: str) -> OperationError | None:
    """The one-line error for a remote tracking store that went away during an operation, or None
    when ``exc`` is something else."""
    if not (is_http(uri) or is_database(uri)):
        return None
    text = " ".join(str(exc).split())
    markers = ("Max retries exceeded", "Connection refused", "ConnectionError", "connection failed",
               "server closed the connection", "could not connect", "OperationalError")
    if not any(marker in text for marker in markers) and not isinstance(exc, ConnectionError):
        return None
    reason = "connection refused" if "refused" in text.lower() else "connection lost"
    return OperationError(
        f"tracking server {redact(uri)} became unreachable during the run ({reason}); nothing was registered",
        hint="start the server again (`mlkit server status`), then rerun the command",
    )


def probe_http(uri: str, timeout: float) -> str:
    """'' when the server's health endpoint answers 200, else why not."""
    import base64
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    health = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", ""))
    request = urllib.request.Request(health)
    if parts.username:  # urllib does not take user:password@ from the URL; requests (MLflow) does
        token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    # --- server authentication and TLS (mlkit.credentials): what MLflow's client sends and trusts ---
    elif header := credentials.from_environment().header():
        request.add_header("Authorization", header)
    context = credentials.ssl_context(uri)
    # --- end of server authentication and TLS ---
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return "" if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        return str(exc.reason)
    except (OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__


# The key of the PostgreSQL advisory lock held while MLflow sets up its schema ("mlkit" in ASCII).
_SCHEMA_LOCK_KEY = 0x6D6C6B6974
_READY_DATABASES: set[str] = set()  # URIs whose schema this process has already checked


def ensure_database_store(uri: str) -> None:
    """Let MLflow create or upgrade its schema in a PostgreSQL database one process at a time.

    Every process that opens a fresh database runs MLflow's table creation. PostgreSQL's transactional
    DDL keeps the schema whole, but when several start at once (parallel CI jobs, a team's first runs),
    all but one fail on duplicate keys. A session-level advisory lock makes the first opening serial;
    later processes wait a moment, find the tables and go on.
    """
    if uri in _READY_DATABASES:
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": 10},
                                      poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f"SET lock_timeout = '{int(_LOCK_TIMEOUT_S)}s'"))
            try:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
            except sqlalchemy.exc.OperationalError:
                raise OperationError(
                    f"another process has been setting up the tracking schema in {redact(uri)} "
                    f"for {_LOCK_TIMEOUT_S:.0f}s",
                    hint="wait for it to finish (a first MLflow migration can take minutes on a large "
                         "database), then run the command again",
                ) from None
            try:
                _create_store(uri)
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": _SCHEMA_LOCK_KEY})
    finally:
        engine.dispose()
    _READY_DATABASES.add(uri)


def _probe_database(uri: str, timeout: float) -> str:
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": max(1, int(timeout))},
                                      poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
        return ""
    except Exception as exc:
        return first_line(getattr(exc, "orig", None) or exc)
    finally:
        engine.dispose()


def _scrub(text: str, uri: str) -> str:
    from urllib.parse import urlsplit

    try:
        password = urlsplit(uri).password
    except ValueError:
        password = None
    return text.replace(password, "***") if password else text
