"""`input_md5s` against a real project: git, DVC with a local remote, DVC's state database."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from mlkit import dvcops
from mlkit.data import input_md5s
from mlkit.errors import ExitCode, UsageError

DATA = "data/breast_cancer.csv"


def _recorded_md5(root: Path, relative: str) -> str:
    return yaml.safe_load((root / f"{relative}.dvc").read_text())["outs"][0]["md5"]


def _replace(path: Path, content: bytes) -> None:
    # replace rather than write in place: the workspace copy may be a link into DVC's cache
    path.unlink()
    path.write_bytes(content)


@pytest.fixture
def project(make_project: Callable[..., Path]) -> Path:
    return make_project()


def test_file_and_directory_md5s(project: Path) -> None:
    folder = project / "data" / "images"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a\n")
    (folder / "sub" / "b.txt").write_text("b\n")
    dvcops.track(project, [folder])

    md5s = input_md5s(project, [DATA, "data/images"])

    assert md5s == {DATA: _recorded_md5(project, DATA), "data/images": _recorded_md5(project, "data/images")}
    assert md5s["data/images"].endswith(".dir")
    assert len(md5s[DATA]) == 32


def test_unchanged_data_is_not_read_again(project: Path) -> None:
    path = project / DATA
    expected = _recorded_md5(project, DATA)
    assert input_md5s(project, [DATA]) == {DATA: expected}
    # Same inode, size and mtime but other bytes: only a check that reads the data could notice, so
    # getting the recorded md5 back proves the answer came from DVC's state database.
    before = os.stat(path)
    original = path.read_bytes()
    os.chmod(path, 0o644)
    try:
        path.write_bytes(bytes(reversed(original)))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert os.stat(path).st_ino == before.st_ino
        assert input_md5s(project, [DATA]) == {DATA: expected}
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_not_tracked(project: Path) -> None:
    (project / "data" / "extra.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UsageError) as caught:
        input_md5s(project, ["data/extra.csv"])
    assert caught.value.exit_code == ExitCode.USAGE
    assert caught.value.message == "data/extra.csv is not tracked by DVC (no data/extra.csv.dvc)"
    assert caught.value.hint == "run `mlkit data add data/extra.csv` to track it"


def test_missing_from_workspace(project: Path) -> None:
    (project / DATA).unlink()
    with pytest.raises(UsageError) as caught:
        input_md5s(project, [DATA])
    assert caught.value.exit_code == ExitCode.USAGE
    assert caught.value.message == f"{DATA} is tracked by DVC but missing from the workspace"
    assert caught.value.hint == "run `mlkit data pull` to fetch it from the remote"


@pytest.mark.parametrize("same_size", [True, False], ids=["same-size", "other-size"])
def test_modified_since_added(project: Path, same_size: bool) -> None:
    path = project / DATA
    original = path.read_bytes()
    _replace(path, bytes(reversed(original)) if same_size else original + b"1,2,3\n")
    with pytest.raises(UsageError) as caught:
        input_md5s(project, [DATA])
    assert caught.value.exit_code == ExitCode.USAGE
    assert caught.value.message == f"{DATA} was modified since it was added to DVC"
    assert caught.value.hint == f"run `mlkit data add {DATA}` to record the new version"


def test_modified_directory(project: Path) -> None:
    folder = project / "data" / "images"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    dvcops.track(project, [folder])
    (folder / "new.txt").write_text("new\n")
    with pytest.raises(UsageError, match=r"^data/images was modified since it was added to DVC$"):
        input_md5s(project, ["data/images"])
