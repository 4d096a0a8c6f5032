"""mlkit.data and mlkit.engines.dvc from Python: progress forwarding, silence, all-or-nothing add."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mlkit import data
from mlkit.engines import dvc
from mlkit.errors import OperationError
from mlkit.project import load_project


@pytest.fixture
def project(make_project: Callable[..., Path]) -> Path:
    return make_project()


def test_progress_of_add_and_push_reaches_the_callback_and_every_bar_finishes(project: Path) -> None:
    import dvc.progress
    import dvc_data.callbacks

    originals = (dvc.progress.Tqdm, dvc_data.callbacks.Tqdm)
    (project / "data" / "big.bin").write_bytes(os.urandom(9 * 2**20))
    events: list[dvc.ProgressEvent] = []
    data.add(load_project(project), ["data/big.bin"], base=project, progress=events.append)
    data.push(load_project(project), progress=events.append)

    assert events
    keys = {e.key for e in events}
    assert keys == {e.key for e in events if e.finished}
    pushing = [e for e in events if e.description.startswith("Pushing to ")]
    assert pushing and pushing[-1].finished and pushing[-1].completed == pushing[-1].total == 2
    # small byte bars (under 8 MiB) are left out; the 9 MiB upload is reported in bytes
    assert all(e.total is None or e.total >= 8 * 2**20 for e in events if e.unit == "B")
    assert (dvc.progress.Tqdm, dvc_data.callbacks.Tqdm) == originals


def test_dvc_prints_nothing_even_when_it_fails(project: Path, capfd: pytest.CaptureFixture[str]) -> None:
    folder = project / "data" / "raw"
    folder.mkdir()
    (folder / "a.csv").write_text("a\n")
    (folder / ".dvcignore").write_text("*.tmp\n")  # DVC refuses a .dvcignore inside a folder it collects
    capfd.readouterr()
    with pytest.raises(OperationError) as caught:
        data.add(load_project(project), ["data/raw"], base=project)
    assert caught.value.message == (
        "adding data to DVC failed: IgnoreInCollectedDirError: .dvcignore file "
        f"should not be in collected dir path: '{folder}'"
    )
    assert capfd.readouterr() == ("", "")
    assert not (project / "data" / "raw.dvc").exists()


def test_outputs_lists_dvc_files_not_pipeline_outputs(project: Path) -> None:
    folder = project / "data" / "images"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    data.add(load_project(project), ["data/images"], base=project)
    found = {o.path: o for o in dvc.outputs(project)}
    assert set(found) == {"data/breast_cancer.csv", "data/images"}  # not metrics.json from dvc.lock
    assert found["data/images"].nfiles == 1 and found["data/images"].dvc_file == "data/images.dvc"
