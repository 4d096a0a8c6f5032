"""`mlkit train`, `mlkit ui` and `dvc repro` as installed commands in subprocesses, as a user or CI runs them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlkit import tags

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
MLKIT = str(BIN / "mlkit")


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLKIT_", "MLFLOW_", "DVC_")) and k != "CI"
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # `dvc repro` runs `mlkit train` from PATH
    env.update(extra)
    return env


def _client(root: Path) -> MlflowClient:
    uri = f"sqlite:///{root / '.mlkit' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _version_count(root: Path) -> int:
    if not (root / ".mlkit" / "mlflow.db").exists():
        return 0
    return len(_client(root).search_model_versions("name = 'e2e'"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("e2e-train")
    home = base / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = T\n\temail = t@example.com\n")
    done = subprocess.run(
        [MLKIT, "init", "e2e", "--data-remote", str(base / "remote")],
        cwd=base,
        capture_output=True,
        text=True,
        env=_env(HOME=str(home), CI="true"),
    )
    assert done.returncode == 0, done.stderr
    yield base / "e2e"


def test_train_in_github_actions_writes_outputs_and_summary(project, tmp_path):
    outputs, summary = tmp_path / "out", tmp_path / "summary.md"
    env = _env(CI="true", GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(outputs), GITHUB_STEP_SUMMARY=str(summary))
    done = subprocess.run([MLKIT, "train", "--json"], cwd=project, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert values["run_id"] == result["run_id"]
    assert values["model_version"] == "1"
    assert float(values["f1"]) == result["metrics"]["f1"]
    assert summary.read_text().startswith("### mlkit train")
    tag_values = _client(project).get_run(result["run_id"]).data.tags
    assert tag_values[tags.COMMAND] == "mlkit train --json"
    assert tag_values[tags.GIT_DIRTY] == "false"
    # training rewrote metrics.json and dvc.lock; that alone does not make the next CI run dirty
    again = subprocess.run(
        [MLKIT, "train", "--no-register", "--set", "params.estimator.n_estimators=5"],
        cwd=project,
        capture_output=True,
        text=True,
        env=_env(CI="true"),
    )
    assert again.returncode == 0, again.stderr


def test_dvc_repro_runs_mlkit_train_and_leaves_status_clean(project):
    before = _version_count(project)
    done = subprocess.run(
        [str(BIN / "dvc"), "repro", "--force", "train"], cwd=project, capture_output=True, text=True, env=_env()
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert _version_count(project) == before + 1
    status = subprocess.run(
        [str(BIN / "dvc"), "status", "--json"], cwd=project, capture_output=True, text=True, env=_env(), check=True
    )
    assert json.loads(status.stdout) == {}
    shown = subprocess.run(
        [str(BIN / "dvc"), "metrics", "show", "--json"],
        cwd=project,
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
    )
    assert "f1" in shown.stdout


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_fit_kills_the_run_and_registers_nothing(project, signum):
    before = _version_count(project)
    process = subprocess.Popen(
        [MLKIT, "train", "--set", "params.estimator.n_estimators=100000", "--set", "params.estimator.max_depth=8"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        start_new_session=True,
    )
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.startswith("fitting "):
            break
    time.sleep(1.0)
    process.send_signal(signum)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, "".join(lines) + rest
    assert "error: interrupted\n" in rest
    client = _client(project)
    experiment = client.get_experiment_by_name("e2e")
    run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0]
    assert run.info.status == "KILLED"
    assert run.data.tags[tags.FAILURE] == "interrupted (Ctrl-C or SIGTERM)"
    assert _version_count(project) == before


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ui_serves_the_project_store_on_loopback_and_stops_on_ctrl_c(project, signum):
    port = _free_port()
    process = subprocess.Popen(
        [MLKIT, "ui", "--port", str(port)],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        body = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search?max_results=10", timeout=5
                ) as response:
                    body = response.read().decode()
                break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                time.sleep(1)
        assert '"name": "e2e"' in body or '"name":"e2e"' in body
        # the store's URI (a database URI may hold a password) is on no command line
        store = str(project / ".mlkit" / "mlflow.db")
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                assert store not in cmdline.read_bytes().decode(errors="replace"), cmdline
            except OSError:
                continue  # a process that ended meanwhile
    finally:
        process.send_signal(signum)  # to mlkit alone: it must stop the UI's workers itself
        process.wait(timeout=60)
    assert process.returncode == 130
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the workers may take a moment to close their socket
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                break
        time.sleep(0.5)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # nothing left listening
