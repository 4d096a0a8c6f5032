"""The installed `mlkit` command, run in a subprocess the way a user or a CI step runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlkit import __version__

MLKIT = str(Path(sys.executable).with_name("mlkit"))
SLOW_TEMPLATE = Path(__file__).parents[1] / "data" / "slow-template"


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([MLKIT, *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**os.environ, **env})


def test_console_script_is_installed_and_reports_version(tmp_path):
    result = run("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == f"mlkit {__version__}\n"


@pytest.mark.parametrize("template", ["classification", "regression"])
def test_init_then_config_show_from_a_subfolder(tmp_path, template):
    result = run("init", "demo", "--template", template, "--data-remote", str(tmp_path / "remote"), cwd=tmp_path,
                 CI="true")
    assert result.returncode == 0, result.stderr
    result = run("config", "show", "--json", cwd=tmp_path / "demo" / "src")
    assert result.returncode == 0, result.stderr
    assert f'"task": "{template}"' in result.stdout
    status = subprocess.run(["git", "status", "--porcelain"], cwd=tmp_path / "demo", capture_output=True,
                            text=True, check=True)
    assert status.stdout == ""


def test_ctrl_c_during_init_exits_130_and_leaves_nothing(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    process = subprocess.Popen(
        [MLKIT, "init", "slow", "--template", str(SLOW_TEMPLATE), "--trust-template", "--data-remote",
         str(tmp_path / "remote")], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not list(work.glob(".mlkit-init-*/.template")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let cookiecutter reach the template's hook
    os.killpg(process.pid, signal.SIGINT)  # as a terminal does: the whole foreground process group
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().endswith("error: interrupted")
    # the template's own hook process may print its traceback; mlkit prints none
    assert 'mlkit/' not in stderr and "site-packages" not in stderr
    assert list(work.iterdir()) == []
    assert not (tmp_path / "remote").exists()
