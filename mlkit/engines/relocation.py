"""The project's own SQLite store follows the project when its folder is moved or copied.

MLflow records absolute artifact locations: each experiment's ``artifact_location``, each run's
``artifact_uri``, each model's ``storage_location``. After ``mv project elsewhere`` (or ``cp -r``), a run
in the new folder would write its artifacts to the old path, creating that folder again, or into the
original project for a copy. The store's ready marker records the URI the store was created for; when it
differs from the project's URI now, the locations under the old project folder are rewritten to the new
one, once, before MLflow opens the store. Locations outside the old project folder are left alone.
"""

from __future__ import annotations

from pathlib import Path

from mlkit import constants as C

# (table, column) holding artifact locations in MLflow's schema; tables a schema lacks are skipped
_LOCATIONS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
)


def moved_from(recorded_uri: str, uri: str, state_dir: Path) -> Path | None:
    """The project folder the store at ``uri`` was created in, when that is not where it is now; None
    when nothing moved or the store is not the project's own (``.mlkit/mlflow.db``) both times."""
    if recorded_uri == uri or not recorded_uri.startswith("sqlite:///") or not uri.startswith("sqlite:///"):
        return None
    old_db, new_db = Path(recorded_uri[len("sqlite:///") :]), Path(uri[len("sqlite:///") :])
    own = (C.STATE_DIR, C.STORE_FILE)
    if (old_db.parent.name, old_db.name) != own or new_db != state_dir / C.STORE_FILE:
        return None
    old_root = old_db.parent.parent
    return old_root if old_root.is_absolute() and old_root != state_dir.parent else None


def relocate(db: Path, old_root: Path, new_root: Path) -> int:
    """Rewrite every artifact location under ``old_root`` to the same place under ``new_root``, in one
    transaction; returns how many rows changed."""
    import sqlite3

    prefixes = [
        (old_root.as_uri() + "/", new_root.as_uri() + "/"),
        (f"{old_root}/", f"{new_root}/"),  # MLflow's Default experiment records a plain path
    ]
    changed = 0
    connection = sqlite3.connect(db, timeout=30)
    try:
        with connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            for table, column in _LOCATIONS:
                if table not in tables:
                    continue
                if column not in {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}:
                    continue
                for old, new in prefixes:
                    cursor = connection.execute(
                        f"UPDATE {table} SET {column} = ? || substr({column}, ?) WHERE substr({column}, 1, ?) = ?",
                        (new, len(old) + 1, len(old), old),
                    )
                    changed += cursor.rowcount
    finally:
        connection.close()
    return changed
