"""Pure logic of mlkit.data: path mapping and reading what a `.dvc` file records."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlkit.data import _record, recorded, relative_path
from mlkit.errors import ExitCode, UsageError
from mlkit.project import Project, load_project


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


def test_lock_timeout_setting() -> None:
    from mlkit.data import lock_timeout

    assert lock_timeout({}) == 60.0
    assert lock_timeout({"MLKIT_DATA_LOCK_TIMEOUT": "2.5"}) == 2.5
    assert lock_timeout({"MLKIT_DATA_LOCK_TIMEOUT": " "}) == 60.0
    for bad in ("-1", "soon"):
        with pytest.raises(UsageError) as caught:
            lock_timeout({"MLKIT_DATA_LOCK_TIMEOUT": bad})
        assert caught.value.message == f"MLKIT_DATA_LOCK_TIMEOUT={bad!r} must be a number of seconds >= 0"


def test_stat_token_follows_inode_mtime_size_and_names(tmp_path: Path) -> None:
    import os

    from mlkit.data import _stat_token

    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a").write_text("a")
    first = _stat_token(folder)
    assert first is not None and first.startswith("dir:1:")
    assert _stat_token(folder) == first
    (folder / "a").rename(folder / "b")  # same inode, mtime and size, another name
    assert _stat_token(folder) != first
    file_token = _stat_token(folder / "b")
    info = os.stat(folder / "b")
    assert file_token == f"{info.st_ino}:{info.st_mtime_ns}:{info.st_size}"
    os.utime(folder / "b", ns=(info.st_atime_ns, info.st_mtime_ns + 1))
    assert _stat_token(folder / "b") != file_token
    assert _stat_token(tmp_path / "missing") is None


def _project(root: Path) -> Project:
    (root / "mlkit.yaml").write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "project": {"name": "churn", "package": "churn"},
                "data": {"train": "data/train.csv", "target": "label"},
                "model": {"name": "churn", "task": "classification", "estimator": "xgboost.XGBClassifier"},
            }
        )
    )
    return load_project(root)


def test_message_needs_commit_and_paths_are_required(tmp_path: Path) -> None:
    from mlkit.data import add

    project = _project(tmp_path)
    with pytest.raises(UsageError, match=r"^no path given$"):
        add(project, [])
    with pytest.raises(UsageError, match=r"^-m/--message needs --commit$"):
        add(project, ["x"], message="msg")


def test_gc_needs_yes_unless_dry_run(tmp_path: Path) -> None:
    from mlkit.data import gc

    with pytest.raises(UsageError) as caught:
        gc(_project(tmp_path))
    assert caught.value.hint == "see what would go first: `mlkit data gc --dry-run`"


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("s3://ml-data/churn", "s3://ml-data/churn"),
        ("  gs://bucket/dvc\n", "gs://bucket/dvc"),
        ("shared/dvc", "{cwd}/shared/dvc"),
        ("~/dvc-store", "{home}/dvc-store"),
    ],
)
def test_the_environment_remote_keeps_urls_and_makes_paths_absolute(
    value: str, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlkit.engines.dvc import environment_remote

    monkeypatch.chdir(tmp_path)
    expected = url.format(cwd=tmp_path.resolve(), home=Path.home().resolve())
    assert environment_remote({"MLKIT_DATA_REMOTE": value}) == {
        "core": {"remote": "mlkit_data_remote"},
        "remote": {"mlkit_data_remote": {"url": expected}},
    }


@pytest.mark.parametrize("environ", [{}, {"MLKIT_DATA_REMOTE": ""}, {"MLKIT_DATA_REMOTE": "  "}])
def test_no_environment_remote_when_the_variable_is_empty(environ: dict[str, str]) -> None:
    from mlkit.engines.dvc import environment_remote

    assert environment_remote(environ) is None
