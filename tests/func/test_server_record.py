"""`mlkit server stop` and `status` trust the recorded pid only while it is still the server that was
started: a pid the system gave to another process is a stale record, and nothing is signalled."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlkit import tracking_server


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen]:
    """An unrelated process leading its own group, as a server started by mlkit would."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


def record(state_dir: Path, pid: int, **extra) -> None:
    data = {
        "running": True,
        "pid": pid,
        "url": "http://127.0.0.1:5999",
        "backend": "postgresql://u@db/m",
        "started_at": 1.0,
        **extra,
    }
    (state_dir / tracking_server.PID_FILE).write_text(json.dumps(data))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("error:", "warning:"))]


@pytest.mark.parametrize(
    "extra",
    [{"process_identity": "another-boot/12345"}, {}],  # recorded at another start time; an older record
    ids=["identity", "no-identity"],
)
def test_stop_leaves_a_process_that_took_the_recorded_pid_alone(cli, tmp_path, bystander, extra):
    record(tmp_path, bystander.pid, **extra)
    status = cli("server", "status", "--state-dir", str(tmp_path), "--json")
    assert status.exit_code == 0, status.output
    shown = json.loads(status.stdout)
    assert shown["running"] is False
    assert shown["stale"].startswith(f"pid {bystander.pid} now belongs to another process")
    assert (tmp_path / tracking_server.PID_FILE).exists()  # status only reads

    result = cli("server", "stop", "--state-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert error_lines(result.stderr) == [
        f"warning: {shown['stale']}; removed the stale record, stopped nothing",
    ]
    assert bystander.poll() is None  # still running: nothing was signalled
    assert not (tmp_path / tracking_server.PID_FILE).exists()


def test_stop_stops_the_process_it_recorded(cli, tmp_path, bystander):
    record(tmp_path, bystander.pid, process_identity=tracking_server._process_identity(bystander.pid))
    status = tracking_server.status(tmp_path, check=False)
    assert (status.running, status.stale) == (True, None)
    result = cli("server", "stop", "--state-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert bystander.wait(timeout=20) is not None
    assert not (tmp_path / tracking_server.PID_FILE).exists()


@pytest.mark.parametrize("pid", [0, -1, 1, True, "12"])
def test_a_record_naming_no_single_process_is_ignored(cli, tmp_path, pid):
    record(tmp_path, pid)
    assert tracking_server.status(tmp_path, check=False) == tracking_server.ServerState(running=False)
    if pid != "12":
        return  # were it signalled, 0 and -1 would reach this very process group, 1 init: never try
    result = cli("server", "stop", "--state-dir", str(tmp_path))
    assert result.exit_code == 2
    assert error_lines(result.stderr) == ["error: no tracking server is recorded for this project"]
