"""docs/api.md runs as written: its example script, in a subprocess, prints what the page says it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PAGE = Path(__file__).resolve().parents[2] / "docs" / "api.md"
RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")
F1 = re.compile(r"f1 (\d\.\d{3})")


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", PAGE.read_text(encoding="utf-8"), flags=re.M | re.S)


def normalized(text: str) -> str:
    """Run ids as RUN1, RUN2... in order of appearance (the same run keeps its name), f1 values as F1."""
    names: dict[str, str] = {}
    text = RUN_ID.sub(lambda m: names.setdefault(m.group(), f"RUN{len(names) + 1}"), text)
    return F1.sub("f1 F1", text)


def test_the_page_has_one_script_and_its_output() -> None:
    assert len(blocks("python")) == 1
    printed = [block for block in blocks("text") if block.startswith("trained ")]
    assert len(printed) == 1


def test_the_example_runs_and_prints_what_the_page_shows(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(blocks("python")[0], encoding="utf-8")
    # os.environ is the isolated one of tests/conftest.py: a HOME of the test's own, no CI or MLKIT_* variables
    scratch = tmp_path / "tmp"  # where the script's temporary folder goes
    scratch.mkdir()
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]

    expected = next(block for block in blocks("text") if block.startswith("trained "))
    assert normalized(done.stdout) == normalized(expected)
    lines = done.stdout.splitlines()
    assert lines[-2] == "rolled back churn@production: version 2 -> 1"
    first_run = RUN_ID.findall(lines[0])
    assert RUN_ID.findall(lines[-1]) == first_run  # production is version 1's run again, read from MLflow
    f1_first, f1_second = F1.findall(lines[0]) + F1.findall(lines[3])
    assert f1_first == f1_second and float(f1_first) >= 0.9  # a tie passes beat_current at margin 0
    # the project, its data remote and the store lived in the temporary folder, and went with it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["example.py", "tmp"]
    assert list(scratch.iterdir()) == []
