"""The installed `mlkit` command, run in a subprocess the way a user or a CI step runs it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mlkit
from mlkit import __version__

MLKIT = str(Path(sys.executable).with_name("mlkit"))
SLOW_TEMPLATE = Path(__file__).parents[1] / "data" / "slow-template"


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MLKIT, *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, env={**os.environ, **env}
    )


def test_console_script_is_installed_and_reports_version(tmp_path):
    result = run("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == f"mlkit {__version__}\n"


@pytest.mark.parametrize("template", ["classification", "regression"])
def test_init_then_config_show_from_a_subfolder(tmp_path, template):
    result = run(
        "init", "demo", "--template", template, "--data-remote", str(tmp_path / "remote"), cwd=tmp_path, CI="true"
    )
    assert result.returncode == 0, result.stderr
    result = run("config", "show", "--json", cwd=tmp_path / "demo" / "src")
    assert result.returncode == 0, result.stderr
    assert f'"task": "{template}"' in result.stdout
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=tmp_path / "demo", capture_output=True, text=True, check=True
    )
    assert status.stdout == ""


def _hook_started(group: int) -> bool:
    """Whether a process of the group runs a Python script (cookiecutter runs template hooks that way)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[2]) == group and int(stat.parent.name) != group and cmdline[1:2] and cmdline[1].endswith(b".py"):
            return True
    return False


def mlkit_traceback_frames(stderr: str) -> list[str]:
    """The traceback frames in ``stderr`` from mlkit's own code or an installed package: a traceback mlkit
    printed. Paths elsewhere (a template hook's own traceback, a checkout folder named mlkit in a warning)
    do not count."""
    package = Path(mlkit.__file__).resolve().parent
    frames = re.findall(r'^\s*File "([^"]+)", line \d+', stderr, flags=re.MULTILINE)
    return [f for f in frames if Path(f).resolve().is_relative_to(package) or "site-packages" in f]


def test_traceback_frames_are_mlkits_own_not_any_path_with_mlkit_in_it():
    package = Path(mlkit.__file__).resolve().parent
    hook = (
        # a checkout cloned into a folder named mlkit, as `git clone .../mlkit` does
        "warning: using template /home/u/mlkit/tests/data/slow-template: templates and their Jinja code can "
        "run arbitrary code\n"
        "Traceback (most recent call last):\n"
        '  File "/tmp/tmpab12/pre_gen_project.py", line 4, in <module>\n'
        "KeyboardInterrupt\n"
    )
    assert mlkit_traceback_frames(hook) == []
    ours = f'Traceback (most recent call last):\n  File "{package / "cli" / "__init__.py"}", line 3, in main\n'
    assert mlkit_traceback_frames(ours) == [str(package / "cli" / "__init__.py")]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the hook process through /proc")
def test_ctrl_c_during_init_exits_130_and_leaves_nothing(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    process = subprocess.Popen(
        [
            MLKIT,
            "init",
            "slow",
            "--template",
            str(SLOW_TEMPLATE),
            "--trust-template",
            "--data-remote",
            str(tmp_path / "remote"),
        ],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # generous limits: on a loaded machine startup alone can take tens of seconds; the template's hook
        # sleeps 60 s, so once it runs the interrupt lands inside it however slow the machine is
        deadline = time.monotonic() + 300
        while not (list(work.glob(".mlkit-init-*/.template")) and _hook_started(process.pid)):
            assert process.poll() is None and time.monotonic() < deadline, "init never reached the hook"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)  # as a terminal does: the whole foreground process group
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, stderr
    assert stderr.strip().endswith("error: interrupted")
    # the template's own hook process may print its traceback; mlkit prints none
    assert mlkit_traceback_frames(stderr) == [], stderr
    assert list(work.iterdir()) == []
    assert not (tmp_path / "remote").exists()
