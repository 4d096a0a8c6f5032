"""What a training run leaves in the project for DVC: `metrics.json` and the `train` stage in dvc.lock."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlkit import constants as C
from mlkit.engines import dvc, git
from mlkit.progress import Progress

# DVC sets this for every stage command it runs (dvc/stage/run.py); it also holds dvc.lock's lock then.
ENV_DVC_STAGE = "DVC_STAGE"


def write_metrics(root: Path, metrics: Mapping[str, float], cv: Mapping[str, float]) -> None:
    """metrics.json for `dvc metrics show`: test metrics at the top level, CV under ``cv``; replaced
    atomically, and NaN written as null."""
    data: dict[str, Any] = {k: _json_number(v) for k, v in metrics.items()}
    if cv:
        data["cv"] = {k: _json_number(v) for k, v in cv.items()}
    target = root / C.METRICS_FILE
    handle, temporary = tempfile.mkstemp(prefix=".metrics-", suffix=".json", dir=root)
    with os.fdopen(handle, "w") as stream:
        stream.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, target)


def record_stage(root: Path, say: Progress) -> bool:
    """Re-record the `train` stage in dvc.lock so `dvc status` stays clean; not inside `dvc repro`.

    Returns whether the stage was recorded.
    """
    if os.environ.get(ENV_DVC_STAGE):
        return False  # dvc repro is running us and holds the repository lock; it records the stage itself
    if not (root / "dvc.yaml").is_file() or not (root / ".dvc").is_dir():
        return False
    say("recording the train stage in dvc.lock")
    dvc.commit_stage(root, "train")
    return True


def uncommitted(root: Path) -> list[str]:
    """Which of the files a run rewrites (dvc.lock, metrics.json) differ from git's HEAD: to be committed
    with the code, or the next checkout trains against stale records."""
    names = ["dvc.lock", C.METRICS_FILE]
    if not git.is_repo(root):
        return []
    changed = git.run(
        root, "status", "--porcelain", "--untracked-files=all", "--", *names, check=False, strip=False, read_only=True
    )
    paths = {line[3:].strip() for line in changed.splitlines() if len(line) > 3}
    return [name for name in names if name in paths]


def _json_number(value: float) -> float | None:
    return None if value != value else round(float(value), 6)
