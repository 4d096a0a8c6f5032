"""A run always ends in an honest state: `mlkit train` interrupted at many moments, killed outright, and the
liveness rules that tell a lost run from one that is alive."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlkit import runs, tags

pytestmark = pytest.mark.slow

MLKIT = str(Path(sys.executable).with_name("mlkit"))
SLOW_FIT = ["--set", "params.estimator.n_estimators=100000", "--set", "params.estimator.max_depth=8"]
INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLKIT_", "MLFLOW_", "DVC_")) and k != "CI"}
    return {**env, "MLKIT_HEARTBEAT_SECONDS": "0.5", **extra}


def _client(root: Path) -> MlflowClient:
    uri = f"sqlite:///{root / '.mlkit' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _runs(root: Path) -> list:
    if not (root / ".mlkit" / "mlflow.db").exists():
        return []
    client = _client(root)
    experiment = client.get_experiment_by_name(root.name)
    if experiment is None:
        return []
    return list(client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"]))


def _versions_of(root: Path, run_id: str) -> list:
    return list(_client(root).search_model_versions(f"run_id = '{run_id}'"))


def _start(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [MLKIT, "train", *args],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        start_new_session=True,
    )


@pytest.fixture
def project(make_project: Callable[..., Path]) -> Path:
    root = make_project("lifecycle")
    done = subprocess.run(
        [MLKIT, "train", "--set", "params.estimator.n_estimators=5"],
        cwd=root,
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr  # the store, the experiment and version 1 exist from here on
    return root


# --- interrupts at many moments --------------------------------------------------------------------------

# the status lines `mlkit train` prints on stderr as it reaches each step, and how long after each one the
# signal may come (seconds): reading and fitting, logging the artifacts and the model, registering the
# version, and what follows it (the FINISHED run, metrics.json, dvc.lock)
MOMENTS = [
    ("loading ", 2.5),
    ("logging to run ", 2.0),
    ("registering a new version", 0.6),
    ("recording the train stage", 0.4),
]


def _interrupt_once(root: Path, signum: int, marker: str, delay: float, *, twice: bool) -> tuple[str, str]:
    """Train, send ``signum`` ``delay`` seconds after the stderr line starting with ``marker`` (and again
    soon after when ``twice``); check the invariant; return (the outcome, stderr)."""
    sentinel = json.dumps({"sentinel": random.random()}) + "\n"
    (root / "metrics.json").write_text(sentinel)
    before = {run.info.run_id for run in _runs(root)}
    process = _start(root, "--set", f"params.estimator.n_estimators={random.randint(5, 40)}")
    assert process.stderr is not None
    seen: list[str] = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith(marker):
            break
    time.sleep(delay)
    process.send_signal(signum)
    if twice:
        time.sleep(random.uniform(0.02, 0.3))
        if process.poll() is None:
            process.send_signal(signum)
    _, rest = process.communicate(timeout=180)
    stderr = "".join(seen) + rest
    where = f"{signal.Signals(signum).name} {delay:.2f} s after {marker!r}{' twice' if twice else ''}:\n{stderr}"

    if process.returncode == 0:
        return "done before the signal", stderr  # the signal came after the command had ended
    assert process.returncode == 130, where
    assert "Traceback" not in stderr, where
    assert stderr.rstrip().endswith("error: interrupted"), where
    new = [run for run in _runs(root) if run.info.run_id not in before]
    assert len(new) <= 1, where
    if not new:  # interrupted before the run was created
        assert (root / "metrics.json").read_text() == sentinel, where
        return "no run", stderr
    run = new[0]
    versions = _versions_of(root, run.info.run_id)
    if run.info.status == "KILLED":
        assert versions == [], where
        assert run.data.tags[tags.FAILURE] == INTERRUPTED, where
        assert (root / "metrics.json").read_text() == sentinel, where
        return "KILLED", stderr
    assert run.info.status == "FINISHED", where
    assert len(versions) == 1, where
    written = json.loads((root / "metrics.json").read_text())
    assert {k: v for k, v in written.items() if k != "cv"} == {
        k: round(run.data.metrics[k], 6) for k in written if k != "cv"
    }, where
    assert f"run {run.info.run_id} is FINISHED with version {versions[0].version}" in stderr, where
    return "FINISHED", stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_at_any_moment_leaves_killed_without_a_version_or_finished_with_it(project, signum):
    """Many moments, each at a random offset: the run is KILLED with no version (metrics.json untouched),
    or FINISHED with exactly one version (metrics.json its metrics), never RUNNING; exit 130, no traceback."""
    seed = int(os.environ.get("MLKIT_TEST_SEED", str(random.randrange(1 << 30))))
    random.seed(seed)
    outcomes = []
    for index, (marker, spread) in enumerate([*MOMENTS, random.choice(MOMENTS)]):
        twice = index >= len(MOMENTS) - 1
        # the second comes while the run logs its artifacts and model, whatever the machine's speed: a quiet
        # machine logs and registers the small model within the wider spread
        delay = random.uniform(0, 0.2) if index == 1 else random.uniform(0, spread)
        outcome, _ = _interrupt_once(project, signum, marker, delay, twice=twice)
        outcomes.append((marker, outcome))
    assert all(run.info.status != "RUNNING" for run in _runs(project)), f"seed {seed}"
    reached = {outcome for _, outcome in outcomes}
    assert "KILLED" in reached, (seed, outcomes)  # an interrupt while fitting always kills the run


def test_an_interrupt_during_registration_finishes_the_run_then_exits_130(project):
    """Registration begun: the interrupt waits for the version, the FINISHED run and the outputs."""
    for _attempt in range(5):
        outcome, stderr = _interrupt_once(project, signal.SIGINT, "registering a new version", 0.0, twice=True)
        if outcome == "FINISHED":
            break
    assert outcome == "FINISHED", stderr
    assert "interrupted after the run had begun to finish" in stderr


# --- killed outright: lost, then ended FAILED ------------------------------------------------------------


def _wait_for_running_run(root: Path, process: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [run for run in _runs(root) if run.info.status == "RUNNING"]
        if running:
            return str(running[0].info.run_id)
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.3)
    raise AssertionError("no RUNNING run appeared")


def _kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)


def _mlkit(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MLKIT, *args], cwd=root, capture_output=True, text=True, env=_env(), timeout=300)


def test_a_killed_training_is_lost_and_end_lost_ends_it_failed(project):
    process = _start(project, *SLOW_FIT)
    run_id = _wait_for_running_run(project, process)
    # alive: its heartbeat moves, and it is RUNNING, not lost, for every reader
    first = _client(project).get_run(run_id).data.tags[tags.HEARTBEAT]
    deadline = time.monotonic() + 30
    while _client(project).get_run(run_id).data.tags[tags.HEARTBEAT] == first and time.monotonic() < deadline:
        time.sleep(0.3)
    assert _client(project).get_run(run_id).data.tags[tags.HEARTBEAT] != first
    listed = {run["run_id"]: run for run in json.loads(_mlkit(project, "runs", "list", "--json").stdout)}
    assert listed[run_id]["status"] == "RUNNING" and listed[run_id]["lost"] == ""
    nothing = _mlkit(project, "runs", "end-lost", "--json")
    assert nothing.returncode == 0 and json.loads(nothing.stdout) == []
    assert _client(project).get_run(run_id).info.status == "RUNNING"

    _kill(process)
    listed = {run["run_id"]: run for run in json.loads(_mlkit(project, "runs", "list", "--json").stdout)}
    pid = _client(project).get_run(run_id).data.tags[tags.PID]
    reason = f"its process {pid} on {socket.gethostname()} is gone"
    assert listed[run_id]["status"] == "lost"
    assert listed[run_id]["lost"] == reason
    table = _mlkit(project, "runs", "list")
    assert f"lost: {reason}" in table.stdout

    ended = _mlkit(project, "runs", "end-lost", "--json")
    assert ended.returncode == 0, ended.stderr
    assert [(run["run_id"], run["reason"]) for run in json.loads(ended.stdout)] == [(run_id, reason)]
    run = _client(project).get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags[tags.FAILURE].startswith(f"lost: {reason}; ended by mlkit on {socket.gethostname()} at ")
    assert run.info.end_time is not None
    assert _versions_of(project, run_id) == []
    again = _mlkit(project, "runs", "end-lost")
    assert again.returncode == 0 and "no lost runs" in again.stderr


def test_the_next_train_ends_a_lost_run_and_says_so(project):
    process = _start(project, *SLOW_FIT)
    run_id = _wait_for_running_run(project, process)
    _kill(process)
    done = _mlkit(project, "train", "--set", "params.estimator.n_estimators=5")
    assert done.returncode == 0, done.stderr
    pid = _client(project).get_run(run_id).data.tags[tags.PID]
    line = f"ended lost run {run_id} as FAILED (its process {pid} on {socket.gethostname()} is gone)"
    assert [row for row in done.stderr.splitlines() if row.startswith("ended lost run")] == [line]
    assert _client(project).get_run(run_id).info.status == "FAILED"


def test_a_bad_heartbeat_setting_is_refused_before_any_work(project):
    done = subprocess.run(
        [MLKIT, "train"], cwd=project, capture_output=True, text=True, env=_env(MLKIT_HEARTBEAT_SECONDS="soon")
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == (
        "error: MLKIT_HEARTBEAT_SECONDS='soon': must be a number of seconds between 0 and 3600"
    )


# --- who is lost: the rules ------------------------------------------------------------------------------


def _process_tags(**changes: str) -> dict[str, str]:
    values = runs.process_tags(10.0)
    values.update(changes)
    return values


def _old(seconds: float) -> str:
    from mlkit.clock import utc_iso

    return utc_iso((time.time() - seconds) * 1000)


def test_a_live_process_on_this_host_is_alive_whatever_its_heartbeat():
    assert runs.lost_reason(_process_tags(**{tags.HEARTBEAT: _old(3600)}), "RUNNING") == ""


def test_a_reused_pid_on_this_host_is_not_the_run_s_process():
    values = _process_tags(**{tags.PROCESS_START: "1"})  # this pid, another start time
    assert runs.lost_reason(values, "RUNNING") == f"its process {os.getpid()} on {socket.gethostname()} is gone"


def test_from_another_host_only_the_heartbeat_counts():
    other = {tags.HOST: "elsewhere", tags.PID: str(os.getpid())}
    fresh = _process_tags(**other, **{tags.HEARTBEAT: _old(35)})  # 3.5 intervals: alive
    assert runs.lost_reason(fresh, "RUNNING") == ""
    stale = _process_tags(**other, **{tags.HEARTBEAT: _old(45)})
    assert runs.lost_reason(stale, "RUNNING").startswith(f"no heartbeat from process {os.getpid()} on elsewhere for 4")
    assert runs.lost_reason(stale, "RUNNING").endswith("s (it beats every 10 s)")


def test_finished_runs_and_runs_without_a_heartbeat_are_never_lost():
    stale = _process_tags(**{tags.HOST: "elsewhere", tags.HEARTBEAT: _old(3600)})
    for status in ("FINISHED", "FAILED", "KILLED"):
        assert runs.lost_reason(stale, status) == ""
    assert runs.lost_reason({tags.HOST: "elsewhere", tags.PID: "1"}, "RUNNING") == ""


# --- the signal handling itself ---------------------------------------------------------------------------


def test_deferred_holds_signals_until_its_block_ends():
    from mlkit.training import interrupts

    previous = signal.getsignal(signal.SIGTERM)
    with interrupts.deferred() as held:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs between bytecodes: it would raise here if it could
    assert held.signalled
    assert signal.getsignal(signal.SIGTERM) is previous


def test_after_the_first_signal_the_clean_up_is_not_cut_short():
    from mlkit.training import interrupts

    cleaned = False
    with pytest.raises(KeyboardInterrupt), interrupts.handle_signals():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C while cleaning up
            time.sleep(0.05)
            cleaned = True
            raise
    assert cleaned
