"""Ctrl-C during `mlkit reproduce`: exit 130 and the temporary worktree is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

MLKIT = str(Path(sys.executable).with_name("mlkit"))

pytestmark = pytest.mark.slow


def test_interrupted_reproduction_removes_its_worktree(tmp_path):
    env = {**os.environ, "CI": "true"}
    subprocess.run(
        [MLKIT, "init", "churn", "--data-remote", str(tmp_path / "remote")],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    project = tmp_path / "churn"
    subprocess.run([MLKIT, "train"], cwd=project, env=env, check=True, capture_output=True)

    process = subprocess.Popen(
        [MLKIT, "reproduce", "churn/1"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    worktrees = project / ".mlkit" / "worktrees"
    deadline = time.monotonic() + 120
    while not list(worktrees.glob("*/mlkit.yaml")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(worktrees.glob("*/mlkit.yaml")), "the reproduction never created its worktree"
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted"
    assert list(worktrees.iterdir()) == []
    listed = subprocess.run(["git", "worktree", "list"], cwd=project, capture_output=True, text=True, check=True)
    assert len(listed.stdout.splitlines()) == 1
    status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True, check=True)
    assert status.stdout.split() == ["M", "dvc.lock", "M", "metrics.json"]
