"""`input_md5s` against a real project: git, DVC with a local remote, DVC's state database."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from mlkit.data import input_md5s
from mlkit.engines import dvc
from mlkit.errors import ExitCode, OperationError, UsageError
from mlkit.project import load_project

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
    dvc.track(project, [folder])

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
    dvc.track(project, [folder])
    (folder / "new.txt").write_text("new\n")
    with pytest.raises(UsageError, match=r"^data/images was modified since it was added to DVC$"):
        input_md5s(project, ["data/images"])


@pytest.mark.slow  # starts a process
def test_verified_inputs_are_answered_without_importing_dvc(project: Path) -> None:
    assert input_md5s(project, [DATA]) == {DATA: _recorded_md5(project, DATA)}  # verifies, remembers
    code = (
        "import sys; from pathlib import Path; from mlkit.data import input_md5s; "
        f"print(input_md5s(Path({str(project)!r}), [{DATA!r}])[{DATA!r}], 'dvc' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [_recorded_md5(project, DATA), "False"]


def test_re_add_of_unchanged_data_does_not_touch_dvc(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zc.lockfile

    from mlkit import data

    folder = project / "data" / "images"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    data.add(load_project(project), ["data/images"], base=project)
    monkeypatch.setenv("MLKIT_DATA_LOCK_TIMEOUT", "0")
    holder = zc.lockfile.LockFile(str(project / ".dvc" / "tmp" / "lock"))
    try:
        # DVC's lock is taken: only an add that skips DVC can succeed
        again = data.add(load_project(project), ["data/images"], base=project)
        assert [d.md5 for d in again.added] == [_recorded_md5(project, "data/images")]
        (folder / "b.txt").write_text("b\n")
        with pytest.raises(OperationError, match=r"^another process holds DVC's lock on this project"):
            data.add(load_project(project), ["data/images"], base=project)
    finally:
        holder.close()
    # an object gone from the cache (gc, a fresh clone) sends the add back to DVC, which restores it
    shutil.rmtree(project / ".dvc" / "cache")
    (folder / "b.txt").unlink()
    data.add(load_project(project), ["data/images"], base=project)
    assert data.data_sets(load_project(project), check_remote=False)[-1].in_cache is True
