"""The installed `mlkit data` commands in subprocesses, as a user or a CI step runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

MLKIT = str(Path(sys.executable).with_name("mlkit"))


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MLKIT, *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, env={**os.environ, **env}
    )


@pytest.mark.slow
def test_two_adds_at_the_same_time_both_succeed(make_project: Callable[..., Path]) -> None:
    root = make_project()
    raw = root / "data" / "raw"
    raw.mkdir()
    for name in ("a.bin", "b.bin"):
        (raw / name).write_bytes(os.urandom(2 * 2**20))
    processes = [
        subprocess.Popen(
            [MLKIT, "data", "add", f"data/raw/{name}"],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        for name in ("a.bin", "b.bin")
    ]
    results = [(p.wait(timeout=180), *p.communicate()) for p in processes]
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    assert (raw / "a.bin.dvc").is_file() and (raw / "b.bin.dvc").is_file()
    assert sorted((raw / ".gitignore").read_text().split()) == ["/a.bin", "/b.bin"]
    staged = subprocess.run(
        ["git", "diff", "--cached", "--name-only"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    assert staged == ["data/raw/.gitignore", "data/raw/a.bin.dvc", "data/raw/b.bin.dvc"]
    status = run("data", "status", "--json", cwd=root)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == [
        {"path": "data/breast_cancer.csv", "state": "unchanged"},
        {"path": "data/raw/a.bin", "state": "unchanged"},
        {"path": "data/raw/b.bin", "state": "unchanged"},
    ]


@pytest.mark.slow
def test_add_and_push_from_a_subfolder_print_no_progress_when_not_a_terminal(make_project: Callable[..., Path]) -> None:
    root = make_project()
    (root / "data" / "big.bin").write_bytes(os.urandom(12 * 2**20))
    result = run("data", "add", "big.bin", cwd=root / "data")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "staged in git: data/.gitignore data/big.bin.dvc\n"
    assert "data/big.bin" in result.stdout
    result = run("data", "push", cwd=root / "src")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "pushed 2 files (local)\n"


@pytest.mark.slow
def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    result = run("data", "ls", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: not inside an mlkit project (no mlkit.yaml in {tmp_path.resolve()} or any parent)",
        "hint: run `mlkit init NAME` to create one, or cd into a project",
    ]
    assert result.stdout == ""
