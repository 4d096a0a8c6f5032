"""A moved or copied project keeps its embedded store working: artifact locations follow the folder, and
the old folder is never created again. docs/errors.md ("Hostile input") lists the case."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def train(cli, root: Path) -> dict:
    result = cli("train", "--json", "--allow-dirty", cwd=root)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def locations(root: Path) -> list[str]:
    """Every artifact location the project's store records."""
    with sqlite3.connect(root / ".mlkit" / "mlflow.db") as db:
        rows = db.execute(
            "SELECT artifact_location FROM experiments UNION ALL SELECT artifact_uri FROM runs "
            "UNION ALL SELECT storage_location FROM model_versions UNION ALL "
            "SELECT artifact_location FROM logged_models"
        ).fetchall()
    return [row[0] for row in rows]


def assert_all_under(root: Path, found: list[str]) -> None:
    assert found
    for location in found:
        assert location.startswith((f"{root.as_uri()}/", f"{root}/")), location


def load_version(root: Path, name: str, version: int):
    import mlflow

    uri = f"sqlite:///{root}/.mlkit/mlflow.db"
    mlflow.set_registry_uri(uri)
    try:
        return mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    finally:
        mlflow.set_registry_uri("")


def test_a_moved_then_copied_project_writes_into_its_own_folder(cli, make_project, tmp_path):
    first = make_project("churn")
    train(cli, first)
    moved = tmp_path / "moved"
    shutil.move(first, moved)

    assert train(cli, moved)["model_version"] == "2"
    assert not first.exists()  # never created again
    assert_all_under(moved, locations(moved))
    assert load_version(moved, "churn", 1) is not None  # trained before the move

    copied = tmp_path / "copied"
    shutil.copytree(moved, copied, symlinks=True)
    before = locations(moved)
    assert train(cli, copied)["model_version"] == "3"
    assert locations(moved) == before  # the original is untouched
    assert_all_under(copied, locations(copied))
    shutil.rmtree(moved)
    assert load_version(copied, "churn", 1) is not None  # the copy stands alone
    assert not moved.exists() and not first.exists()
