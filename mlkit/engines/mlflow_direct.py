"""MLflow's embedded SQLite registry and mlkit's own models, read without importing MLflow: the start-up
path of `mlkit serve` and `mlkit predict`.

Importing MLflow and opening its SQLAlchemy store costs about as much CPU as loading the model itself
(pandas, scikit-learn, XGBoost and the unpickling), so for the common case both are skipped:

* **The registry**: the project's embedded SQLite store is read with the standard library, read-only,
  three tables (aliases, versions, version tags), and only when the store's schema revision is one
  this module was checked against (:data:`KNOWN_REVISIONS`, asserted against the installed MLflow by
  the tests). Any other store (a tracking server, PostgreSQL), an unknown revision, MLflow workspaces,
  or any surprise returns ``None`` and the caller asks MLflow as before.
* **The model**: a version whose artifacts are a local folder and whose ``python_function`` flavor is
  mlkit's own loader is loaded the way MLflow's pyfunc loader does it (its ``code/`` folder put on
  ``sys.path``, then the loader's ``_load_pyfunc`` on the flavor's ``data``), with the model's own copy
  of the loader module, so the predictions are those of ``mlflow.pyfunc.load_model``. Any other model
  returns ``None`` and goes through MLflow.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mlkit import tags

# MLflow schema revisions (alembic) whose aliases, model_versions and model_version_tags tables this
# module reads. A revision not listed here means MLflow changed its schema since: the slow path runs.
KNOWN_REVISIONS = frozenset({"dc11669786a5"})
LOADER_MODULE = "mlkit_model"  # the python_function loader that mlkit writes (mlkit.serving.model)
DEFAULT_WORKSPACE = "default"
_DELETED = "Deleted_Internal"  # MLflow's marker of a version being deleted
_NEEDED = {
    "registered_model_aliases": {"name", "alias", "version"},
    "model_versions": {"name", "version", "run_id", "storage_location", "current_stage"},
    "model_version_tags": {"name", "version", "key", "value"},
}


@dataclass(frozen=True)
class VersionRecord:
    name: str
    version: str
    run_id: str
    storage_location: str
    commit: str


class SqliteRegistry:
    """Read-only lookups in the project's SQLite store; every method returns ``None`` when unsure."""

    def __init__(self, path: Path, workspace: str | None) -> None:
        self.path = path
        self._workspace = workspace  # None: the store has no workspace column

    def alias_version(self, name: str, alias: str) -> str | None:
        rows = self._query(
            "SELECT a.version FROM registered_model_aliases a JOIN model_versions v "
            "ON v.name = a.name AND v.version = a.version"
            + self._same_workspace("a", "v")
            + " WHERE a.name = ? AND a.alias = ? AND v.current_stage != ?"
            + self._in_workspace("a"),
            (name, alias, _DELETED),
        )
        return str(rows[0][0]) if rows and len(rows) == 1 else None

    def version(self, name: str, version: str) -> VersionRecord | None:
        try:
            number = int(version)
        except ValueError:
            return None
        rows = self._query(
            "SELECT run_id, storage_location FROM model_versions v WHERE name = ? AND version = ? "
            "AND current_stage != ?" + self._in_workspace("v"),
            (name, number, _DELETED),
        )
        if rows is None or len(rows) != 1 or not rows[0][1]:
            return None
        commit = self._query(
            "SELECT value FROM model_version_tags t WHERE name = ? AND version = ? AND key = ?"
            + self._in_workspace("t"),
            (name, number, tags.GIT_COMMIT),
        )
        if commit is None:
            return None
        return VersionRecord(
            name, str(number), str(rows[0][0] or ""), str(rows[0][1]), str(commit[0][0]) if commit else ""
        )

    def _same_workspace(self, left: str, right: str) -> str:
        return f" AND {left}.workspace = {right}.workspace" if self._workspace is not None else ""

    def _in_workspace(self, alias: str) -> str:
        return f" AND {alias}.workspace = '{DEFAULT_WORKSPACE}'" if self._workspace is not None else ""

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        try:
            with _connect(self.path) as connection:
                return list(connection.execute(sql, args).fetchall())
        except sqlite3.Error:
            return None


def sqlite_registry(tracking_uri: str, ready_marker: Path) -> SqliteRegistry | None:
    """A reader of the SQLite store at ``tracking_uri``, or ``None`` when MLflow must be asked.

    ``ready_marker`` is the file mlkit writes once it has created and migrated the store: before that,
    MLflow has to create it.
    """
    if not tracking_uri.startswith("sqlite:///") or not ready_marker.is_file():
        return None
    if os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").lower() in ("1", "true") or os.environ.get("MLFLOW_WORKSPACE"):
        return None
    path = Path(tracking_uri[len("sqlite:///") :].split("?", 1)[0])
    if not path.is_file():
        return None
    try:
        with _connect(path) as connection:
            revisions = {row[0] for row in connection.execute("SELECT version_num FROM alembic_version")}
            if len(revisions) != 1 or not revisions <= KNOWN_REVISIONS:
                return None
            workspace: str | None = None
            for table, needed in _NEEDED.items():
                columns = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
                if not needed <= columns:
                    return None
                if "workspace" in columns:
                    workspace = DEFAULT_WORKSPACE
    except sqlite3.Error:
        return None
    return SqliteRegistry(path, workspace)


def _connect(path: Path) -> sqlite3.Connection:
    # read-only: this path never writes to (or creates, or migrates) the store
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=10)


def local_folder(storage_location: str) -> Path | None:
    """The folder of a ``file://`` artifact location (or a plain path), if it exists on this machine."""
    parsed = urlparse(storage_location)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        folder = Path(unquote(parsed.path))
    elif parsed.scheme == "" and storage_location.startswith("/"):
        folder = Path(storage_location)
    else:
        return None
    return folder if folder.is_dir() else None


def mlkit_flavor(folder: Path) -> dict[str, Any] | None:
    """The ``python_function`` flavor of the model in ``folder`` if mlkit's loader reads it, else ``None``."""
    import yaml

    try:
        mlmodel = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))
        flavor = mlmodel["flavors"]["python_function"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    if not isinstance(flavor, dict) or flavor.get("loader_module") != LOADER_MODULE or not flavor.get("data"):
        return None
    return flavor


def load_mlkit_model(folder: Path) -> Any | None:
    """The ``python_function`` implementation of the mlkit-format model in ``folder``, or ``None`` when
    the folder holds another kind of model (which MLflow's own loader must then load).

    What MLflow's pyfunc loader does for this flavor, minus MLflow: put the flavor's ``code`` folder at
    the front of ``sys.path``, import the loader module (here: this version's own file, under a name of
    its own, so two versions in one process each run their own), and call its ``_load_pyfunc`` on the
    flavor's ``data`` file.
    """
    flavor = mlkit_flavor(folder)
    if flavor is None:
        return None
    code = folder / str(flavor.get("code") or "code")
    loader_file = code / f"{LOADER_MODULE}.py"
    if not loader_file.is_file():
        return None
    if str(code) not in sys.path:
        sys.path.insert(0, str(code))
    spec = importlib.util.spec_from_file_location(f"_mlkit_model_{uuid.uuid4().hex}", loader_file)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look a module up by its name
    spec.loader.exec_module(module)
    return module._load_pyfunc(str(folder / str(flavor["data"])))
