"""When the project's own store has moved with its folder, and only then."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mlkit.engines import relocation


def test_moved_from_names_the_old_project_folder_only_for_the_projects_own_store():
    state = Path("/new/churn/.mlkit")
    uri = "sqlite:////new/churn/.mlkit/mlflow.db"
    assert relocation.moved_from("sqlite:////old/churn/.mlkit/mlflow.db", uri, state) == Path("/old/churn")
    assert relocation.moved_from(uri, uri, state) is None
    assert relocation.moved_from("sqlite:////old/shared/team.db", uri, state) is None  # not the project's own
    assert relocation.moved_from("", uri, state) is None  # a marker from before URIs were recorded
    assert relocation.moved_from("sqlite:////old/churn/.mlkit/mlflow.db", "sqlite:////x/y.db", state) is None


def test_relocate_rewrites_locations_under_the_old_folder_only(tmp_path):
    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE experiments (artifact_location TEXT)")
        connection.executemany(
            "INSERT INTO experiments VALUES (?)",
            [
                ("file:///old/churn/.mlkit/artifacts",),
                ("/old/churn/mlruns/0",),
                ("file:///old/churn-other/.mlkit/artifacts",),  # a sibling sharing the prefix
                ("s3://bucket/old/churn/x",),
            ],
        )
    assert relocation.relocate(db, Path("/old/churn"), Path("/new/place")) == 2
    with sqlite3.connect(db) as connection:
        assert [row[0] for row in connection.execute("SELECT artifact_location FROM experiments")] == [
            "file:///new/place/.mlkit/artifacts",
            "/new/place/mlruns/0",
            "file:///old/churn-other/.mlkit/artifacts",
            "s3://bucket/old/churn/x",
        ]
