"""The MLflow tracking store and registry a project talks to.

Embedded default: SQLite at `.mlkit/mlflow.db` inside the project. A fresh SQLite store that several
processes open at the same time for the first time can be left half-migrated, so the first creation
happens once, serially, under an inter-process file lock; later opens skip the lock.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mlkit import constants as C
from mlkit.errors import OperationError
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

    uri = project.tracking_uri
    if is_sqlite(uri):
        ensure_sqlite_store(uri, project.state_dir)
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
    """Where new experiments keep artifacts: inside the project for the embedded store, else the server's."""
    if is_sqlite(project.tracking_uri):
        return (project.state_dir / C.ARTIFACTS_DIR).resolve().as_uri()
    return None


def ensure_experiment(project: Project, name: str | None = None) -> str:
    """The id of the named experiment (default: the project's), created on first use."""
    mlflow_client = client(project)
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


def describe_uri(uri: str) -> str:
    """A URI fit for messages and logs: no password."""
    return redact(uri)


def env_for_subprocess(project: Project) -> dict[str, Any]:
    """Environment for a child process that must use the same store (e.g. `mlflow ui`)."""
    return {**os.environ, C.ENV_MLFLOW_TRACKING_URI: project.tracking_uri}
