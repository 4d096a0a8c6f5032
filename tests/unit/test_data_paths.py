"""Pure logic of mlkit.data: path mapping and reading what a `.dvc` file records."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlkit.data import _record, recorded, relative_path
from mlkit.errors import ExitCode, UsageError


def test_relative_path_accepts_relative_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path / "data")
    assert relative_path(tmp_path, "raw/x.csv") == "data/raw/x.csv"
    assert relative_path(tmp_path, tmp_path / "data" / "y.csv") == "data/y.csv"
    assert relative_path(tmp_path, "../data/./z.csv") == "data/z.csv"


def test_relative_path_outside_project(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    with pytest.raises(UsageError) as caught:
        relative_path(root, tmp_path / "elsewhere.csv")
    assert caught.value.exit_code == ExitCode.USAGE
    assert caught.value.message == f"{tmp_path / 'elsewhere.csv'} is outside the project ({root})"
    assert caught.value.hint == "copy the data into the project, e.g. under data/, then add it"


def test_relative_path_root_itself(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^the project root itself cannot be a data set$"):
        relative_path(tmp_path, tmp_path)


def test_record_hash_names() -> None:
    out = {"md5": "ab" * 16, "size": 3, "hash": "md5", "path": "a.csv"}
    dvc3 = _record("data/a.csv", "data/a.csv.dvc", out)
    assert (dvc3.hash_name, dvc3.size, dvc3.is_dir) == ("md5", 3, False)
    dvc2 = _record("data/d", "data/d.dvc", {"md5": "cd" * 16 + ".dir", "nfiles": 2, "path": "d"})
    assert (dvc2.hash_name, dvc2.nfiles, dvc2.is_dir) == ("md5-dos2unix", 2, True)


def test_recorded_untracked_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        recorded(tmp_path, str(tmp_path / "data" / "a.csv"))
    assert caught.value.message == "data/a.csv is not tracked by DVC (no data/a.csv.dvc)"
    assert caught.value.hint == "run `mlkit data add data/a.csv` to track it"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv.dvc").write_text("outs:\n- path: other.csv\n  md5: x\n")
    with pytest.raises(UsageError, match=r"^data/a.csv.dvc does not record an output for data/a.csv$"):
        recorded(tmp_path, str(tmp_path / "data" / "a.csv"))
    (tmp_path / "data" / "a.csv.dvc").write_text("outs: [\n")
    with pytest.raises(UsageError, match=r"^a.csv.dvc cannot be read: "):
        recorded(tmp_path, str(tmp_path / "data" / "a.csv"))
