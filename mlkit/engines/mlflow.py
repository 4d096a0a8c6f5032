"""The one place mlkit talks to MLflow: the tracking store and registry of a project, and a run's logging.

Embedded default: SQLite at `.mlkit/mlflow.db` inside the project. A fresh SQLite store that several
processes open at the same time for the first time can be left half-migrated, so the first creation
happens once, serially, under an inter-process file lock; later opens skip the lock.

Every client is opened with explicit tracking and registry URIs: nothing here sets MLflow's process-wide
URIs for longer than one call. Where only MLflow's fluent API does the job (logging a model inside an
active run), :func:`fluent_store` points it at the store for that call and restores what was there before.
This module is also the only place that patches MLflow (see :func:`_skip_requirement_check`).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mlkit import constants as C
from mlkit import credentials, tags
from mlkit.engines import relocation
from mlkit.errors import OperationError, UsageError, first_line
from mlkit.project import Project
from mlkit.uris import redact

if TYPE_CHECKING:
    from mlflow import MlflowClient

T = TypeVar("T")

READY_MARKER = "mlflow.db.ready"
_LOCK_TIMEOUT_S = 120.0


def is_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:")


def sqlite_path(uri: str) -> Path:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else Path(uri.split(":", 1)[1])


def configure(project: Project) -> str:
    """Make the project's store ready (created once if needed, reachable) and return its URI.

    MLflow's process-wide tracking and registry URIs are left alone: clients get the URI explicitly.
    """
    _quiet_mlflow()
    uri = project.tracking_uri
    if is_sqlite(uri):
        ensure_sqlite_store(uri, project.state_dir)
    else:
        ensure_reachable(uri)
        if is_database(uri):
            ensure_database_store(uri)
    return uri


def ensure_sqlite_store(uri: str, state_dir: Path) -> None:
    """Create and migrate the SQLite store exactly once, under a file lock, before anyone uses it."""
    marker = state_dir / READY_MARKER
    db = sqlite_path(uri)
    if marker.exists() and db.exists() and not _moved(marker, uri, state_dir):
        return
    _require_sqlite_folder(db, state_dir)
    from filelock import FileLock, Timeout

    state_dir.mkdir(parents=True, exist_ok=True)
    db.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(state_dir / "mlflow.db.lock"))
    try:
        with lock.acquire(timeout=_LOCK_TIMEOUT_S):
            if marker.exists() and db.exists():
                old_root = _moved(marker, uri, state_dir)
                if old_root is not None:  # the project folder was moved or copied: its store follows it
                    relocation.relocate(db, old_root, state_dir.parent)
                    marker.write_text(uri + "\n")
                return
            _create_store(uri)
            marker.write_text(uri + "\n")
    except Timeout:
        raise OperationError(
            f"another mlkit process has been creating the tracking store for {_LOCK_TIMEOUT_S:.0f}s",
            hint=f"wait for it to finish, or remove {state_dir / 'mlflow.db.lock'} if no mlkit is running",
        ) from None


def _moved(marker: Path, uri: str, state_dir: Path) -> Path | None:
    try:
        return relocation.moved_from(marker.read_text().strip(), uri, state_dir)
    except OSError:
        return None


def _require_sqlite_folder(db: Path, state_dir: Path) -> None:
    """Only the project's own state folder is created for a SQLite store: a URI naming a folder that does not
    exist elsewhere is a typo far more often than a wish, and mlkit creates no folders out of sight."""
    folder = db.absolute().parent
    state = state_dir.absolute()
    if folder.is_dir() or folder == state or state in folder.parents:
        return
    raise UsageError(
        f"the SQLite tracking store {db} is in a folder that does not exist: {folder}",
        hint=f"create {folder} first if that is where the store belongs, or leave tracking.uri "
        f"unset for the project's own store in {state_dir.name}/",
    )


def _create_store(uri: str) -> None:
    """Open MLflow's tracking and registry stores once: MLflow creates or upgrades its tables then."""
    from mlflow import MlflowClient

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)


def client(project: Project) -> MlflowClient:
    """A client on the project's store (made ready first), with both URIs given explicitly."""
    return client_for(configure(project))


def client_for(uri: str) -> MlflowClient:
    """A client on the store at ``uri``, already made ready by :func:`configure`."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def artifact_location(project: Project) -> str | None:
    """Where new experiments keep artifacts: inside the project for a database store (SQLite, or
    PostgreSQL without a server), else wherever the tracking server proxies them to."""
    if is_sqlite(project.tracking_uri) or is_database(project.tracking_uri):
        return (project.state_dir / C.ARTIFACTS_DIR).resolve().as_uri()
    return None


def ensure_experiment(project: Project, name: str | None = None, *, opened: MlflowClient | None = None) -> str:
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


# --- a training run: logging, the model, registration, the end ------------------------------------------

# MLflow caps one log_batch call at 1000 metrics, 100 params and 100 tags
_BATCH_METRICS = 1000
_BATCH_PARAMS = 100
_PARAM_VALUE_LIMIT = 6000


def log_batch(
    mlflow_client: MlflowClient,
    run_id: str,
    *,
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    history: Mapping[str, Sequence[float]],
    run_tags: Mapping[str, str],
) -> None:
    """Params, metrics (``history``: one value per step) and tags in as few store round trips as possible.

    A NaN metric is not logged.
    """
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    metric_rows = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v == v]
    for key, values in history.items():
        metric_rows += [Metric(key, value, now, step) for step, value in enumerate(values)]
    param_rows = [Param(k, v[:_PARAM_VALUE_LIMIT]) for k, v in params.items()]
    tag_rows = [RunTag(k, v) for k, v in run_tags.items()]
    batches: list[tuple[list[Any], list[Any], list[Any]]] = [
        (metric_rows[i : i + _BATCH_METRICS], [], []) for i in range(0, len(metric_rows), _BATCH_METRICS)
    ] or [([], [], [])]
    batches[0] = (batches[0][0], param_rows[:_BATCH_PARAMS], tag_rows)
    batches += [
        ([], param_rows[i : i + _BATCH_PARAMS], []) for i in range(_BATCH_PARAMS, len(param_rows), _BATCH_PARAMS)
    ]
    for metric_batch, param_batch, tag_batch in batches:
        retry_locked(partial(mlflow_client.log_batch, run_id, metrics=metric_batch, params=param_batch, tags=tag_batch))


def log_artifacts(mlflow_client: MlflowClient, run_id: str, folder: Path) -> None:
    """Every file under ``folder`` as the run's artifacts (nothing when it is empty)."""
    if any(folder.iterdir()):
        mlflow_client.log_artifacts(run_id, str(folder))


@contextmanager
def logging_model(tracking_uri: str, run_id: str) -> Iterator[None]:
    """The context a model is logged in to run ``run_id``: MLflow's fluent API pointed at the project's
    store for the block only, the run active, MLflow's warnings about choices made on purpose (cloudpickle,
    pinned requirements) quiet, and its requirement check skipped (see :func:`_skip_requirement_check`).

    Explicit requirements (:func:`pinned_requirements`) also skip MLflow's requirement inference, which
    re-imports the model in a child process (about 10 s on two cores).
    """
    with (
        fluent_store(tracking_uri),
        _resumed(run_id),
        _quiet_loggers("mlflow.sklearn", "mlflow.utils.environment", "mlflow.models.model"),
        _skip_requirement_check(),
    ):
        yield


@contextmanager
def _resumed(run_id: str) -> Iterator[None]:
    """Run ``run_id`` active in MLflow's fluent API for the block, and still RUNNING after it.

    ``with mlflow.start_run(...)`` would end the run FINISHED when the block ends, before its version is
    registered: a run must be FINISHED only once its version exists. The run is taken off MLflow's stack of
    active runs instead, without a status change; where MLflow no longer has that stack, the run is ended
    and set RUNNING again.
    """
    import mlflow
    from mlflow.tracking import fluent

    mlflow.start_run(run_id=run_id, nested=False)
    finished = False
    try:
        yield
        finished = True
    finally:
        stack = getattr(fluent, "_active_run_stack", None)
        active = stack.get() if stack is not None and hasattr(stack, "get") else None
        if isinstance(active, list) and active and active[-1].info.run_id == run_id:
            active.pop()
            from mlflow.environment_variables import MLFLOW_RUN_ID

            MLFLOW_RUN_ID.unset()
        elif finished:  # else the run is still active: end_run ends it with the reason
            mlflow.end_run()
            client_for(mlflow.get_tracking_uri()).update_run(run_id, status="RUNNING")


def pinned_requirements(distributions: Sequence[str]) -> list[str]:
    """``name==version`` for each installed distribution (absent ones are left out)."""
    from importlib import metadata

    out = []
    for name in distributions:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def register_version(
    mlflow_client: MlflowClient, name: str, model_uri: str, run_id: str, version_tags: Mapping[str, str]
) -> str:
    """Register ``model_uri`` (logged by run ``run_id``) as a new version of ``name``, created on first use;
    return the version number.

    MLflow's SQL registry looks a ``models:/m-<id>`` source up through the process-wide tracking URI,
    whatever the client's: the lookup runs under :func:`fluent_store` with the client's own URI.
    """
    from mlflow.exceptions import MlflowException

    try:
        retry_locked(lambda: mlflow_client.create_registered_model(name))
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code) and "already exists" not in str(exc):
            raise
    # MLflow 3 logs models as `models:/m-<id>`; a tracking server only accepts that source with its model_id
    model_id = model_uri.split("/", 1)[1] if model_uri.startswith("models:/m-") else None
    with fluent_store(mlflow_client.tracking_uri):
        version = retry_locked(
            lambda: mlflow_client.create_model_version(
                name, model_uri, run_id=run_id, tags=dict(version_tags), model_id=model_id
            )
        )
    return str(version.version)


def finish_run(mlflow_client: MlflowClient, run_id: str) -> None:
    retry_locked(lambda: mlflow_client.set_terminated(run_id, "FINISHED"))


def end_run(mlflow_client: MlflowClient, tracking_uri: str, run_id: str, status: str, reason: str) -> None:
    """End a run that did not finish: ``status`` (FAILED, KILLED) with the reason in ``mlkit.failure``.

    Never raises: the store itself may be what failed, and the original error must not be hidden.
    """
    import mlflow

    try:
        mlflow_client.set_tag(run_id, tags.FAILURE, reason[:5000])
        mlflow_client.set_terminated(run_id, status)
    except Exception:
        pass
    finally:
        active = mlflow.active_run()  # left active when the model logging was cut short
        if active is not None and active.info.run_id == run_id:
            with fluent_store(tracking_uri), suppress(Exception):
                mlflow.end_run(status)


def warm_imports() -> None:
    """Import what logging a model needs ahead of time; failures surface later where it is used."""
    with suppress(Exception):
        import mlflow.models.signature
        import mlflow.sklearn  # noqa: F401


@contextmanager
def fluent_store(uri: str) -> Iterator[None]:
    """MLflow's fluent API (``mlflow.start_run``, ``mlflow.sklearn.log_model``) on the store at ``uri``
    for the duration of the block; the previous URIs, and their environment variables, are restored."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    # set_tracking_uri also writes MLFLOW_TRACKING_URI into os.environ (for subprocesses); so does the registry
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    environment = {name: os.environ.get(name) for name in names}
    tracking_before, registry_before = tracking_utils._tracking_uri, registry_utils._registry_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(tracking_before)  # type: ignore[arg-type]  # None: back to unset
        registry_utils._registry_uri = registry_before
        for name, value in environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _skip_requirement_check() -> Iterator[None]:
    """Skip MLflow's check that the running environment satisfies the model's requirements.

    mlkit pins every requirement to the version installed right now (:func:`pinned_requirements`), so
    the check cannot find a mismatch, yet it maps every installed distribution to its modules first:
    about 3 s of CPU, run twice per logged model (when saving it and when MLflow reloads it to validate
    the input example). Where MLflow no longer has the hook, nothing is patched and the check simply runs.
    """
    import importlib

    patched = []
    for name in ("mlflow.utils.environment", "mlflow.pyfunc"):
        module = importlib.import_module(name)
        original = getattr(module, "warn_dependency_requirement_mismatches", None)
        if callable(original):
            patched.append((module, original))
            module.warn_dependency_requirement_mismatches = _no_check  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module, original in patched:
            module.warn_dependency_requirement_mismatches = original  # type: ignore[attr-defined]


def _no_check(_requirements: Any) -> None:
    return None


@contextmanager
def _quiet_loggers(*names: str) -> Iterator[None]:
    """MLflow warns on stderr about choices made here on purpose (cloudpickle, no pip version)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=False):
            logger.setLevel(level)


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
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": 3,
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": 1,
    "MLFLOW_HTTP_REQUEST_TIMEOUT": 30,
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": True,
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
            raise UsageError(
                f"{redact(uri)} needs the psycopg2 driver, which is not installed",
                hint="pip install psycopg2-binary, or use postgresql:// with `pip install 'mlkit[team]'`",
            )
    elif uri.startswith(("postgresql://", "postgresql+psycopg://")) and importlib.util.find_spec("psycopg") is None:
        raise UsageError(
            f"{redact(uri)} needs the PostgreSQL driver psycopg, which is not installed",
            hint="pip install 'mlkit[team]'",
        )


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
    markers = (
        "Max retries exceeded",
        "Connection refused",
        "ConnectionError",
        "connection failed",
        "server closed the connection",
        "could not connect",
        "OperationalError",
    )
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
    # server authentication and TLS (mlkit.credentials): what MLflow's client sends and trusts
    elif header := credentials.from_environment().header():
        request.add_header("Authorization", header)
    context = credentials.ssl_context(uri)
    return answer_of(request, timeout=timeout, context=context)


def denied_status(exc: BaseException) -> int | None:
    """401 or 403 when ``exc`` is MLflow's client reporting the server refused the request."""
    code = getattr(exc, "error_code", None)
    if code == "PERMISSION_DENIED":
        return 403
    if code == "UNAUTHENTICATED":
        return 401
    text = str(exc)
    for status in (403, 401):
        if f"error code {status}" in text or f"status code {status}" in text:
            return status
    return None


def answer_of(request: Any, *, timeout: float, context: Any = None) -> str:
    """'' when a GET of ``request`` (a URL or a ``urllib`` request) answers 200, else why not, in a few words."""
    import urllib.error
    import urllib.request

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

    engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": 10}, poolclass=sqlalchemy.pool.NullPool)
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

    engine = sqlalchemy.create_engine(
        uri, connect_args={"connect_timeout": max(1, int(timeout))}, poolclass=sqlalchemy.pool.NullPool
    )
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
