"""Integrity of what mlkit records and later trusts: the recorded diff, the `reproduced` verdict, the
files a run's lineage may hold. docs/errors.md ("Hostile input") lists every case."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlparse

import git
import pytest
from mlflow import MlflowClient

pytestmark = pytest.mark.slow


def client_for(root: Path) -> MlflowClient:
    uri = f"sqlite:///{root}/.mlkit/mlflow.db"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def train(cli, root: Path, *args: str) -> dict:
    result = cli("train", "--json", *args, cwd=root)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def artifact_folder(root: Path, run_id: str) -> Path:
    """The run's folder in the SQLite store's artifact root, where an attacker with disk access edits."""
    return Path(unquote(urlparse(client_for(root).get_run(run_id).info.artifact_uri).path))


def dirty_run(cli, root: Path) -> dict:
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("max_depth: 4", "max_depth: 2"))
    return train(cli, root, "--allow-dirty")


def malicious_diff(root: Path, marker: Path) -> str:
    """A diff that makes the project's feature hook write ``marker`` when it runs."""
    hook = root / "src" / "churn" / "features.py"
    original = hook.read_text()
    hook.write_text(f"import os\nos.system('touch {marker}')\n" + original)
    diff = git.Repo(root).git.diff("HEAD", "--", str(hook.relative_to(root))) + "\n"
    hook.write_text(original)
    return diff


def assert_no_worktree_left(root: Path) -> None:
    assert not list((root / ".mlkit" / "worktrees").glob("*"))


# --- the recorded diff is checked before it is applied, and applied only on request ---------------------


def test_tampered_diff_is_refused_and_its_code_never_runs(cli, make_project, tmp_path):
    root = make_project("churn")
    run = dirty_run(cli, root)
    marker = tmp_path / "pwned"
    (artifact_folder(root, run["run_id"]) / "lineage" / "uncommitted.diff").write_text(malicious_diff(root, marker))

    result = cli("reproduce", run["run_id"], "--apply-diff", cwd=root)
    assert result.exit_code == 1, result.output
    recorded = run["lineage"]["mlkit.git.diff_sha256"]
    lines = result.stderr.splitlines()
    assert lines[-2].startswith(f"error: the recorded diff of run {run['run_id']} has sha256 ")
    assert lines[-2].endswith(f", not {recorded} as recorded at train time: it was changed; nothing was applied")
    assert lines[-1] == "hint: reproduce from a store you trust, or train again"
    assert not marker.exists()
    run_tags = client_for(root).get_run(run["run_id"]).data.tags
    assert "mlkit.reproduced" not in run_tags
    assert "mlkit.reproduced" not in client_for(root).get_model_version("churn", "1").tags
    assert_no_worktree_left(root)


def test_diff_without_a_recorded_hash_is_refused(cli, make_project):
    root = make_project("churn")
    run = dirty_run(cli, root)
    client_for(root).delete_tag(run["run_id"], "mlkit.git.diff_sha256")

    result = cli("reproduce", run["run_id"], "--apply-diff", cwd=root)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-2:] == [
        f"error: run {run['run_id']} records no sha256 for its diff (mlkit.git.diff_sha256); "
        "an unverifiable diff is never applied",
        "hint: train again from this mlkit version to record one",
    ]
    assert "mlkit.reproduced" not in client_for(root).get_run(run["run_id"]).data.tags


def test_dirty_run_is_refused_without_apply_diff(cli, make_project):
    root = make_project("churn")
    run = dirty_run(cli, root)
    assert (
        run["lineage"]["mlkit.git.diff_sha256"]
        == __import__("hashlib")
        .sha256((artifact_folder(root, run["run_id"]) / "lineage" / "uncommitted.diff").read_bytes())
        .hexdigest()
    )

    result = cli("reproduce", "churn/1", cwd=root)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-2:] == [
        f"error: run {run['run_id']} was trained with uncommitted changes; their recorded diff is applied "
        "only when asked",
        "hint: run `mlkit reproduce churn/1 --apply-diff` to apply it (its files and sha256 are shown first)",
    ]
    assert "mlkit.reproduced" not in client_for(root).get_run(run["run_id"]).data.tags
    assert_no_worktree_left(root)


def test_apply_diff_shows_its_summary_first_and_matches(cli, make_project):
    root = make_project("churn")
    run = dirty_run(cli, root)
    result = cli("reproduce", "churn/1", "--apply-diff", cwd=root)
    assert result.exit_code == 0, result.output
    sha = run["lineage"]["mlkit.git.diff_sha256"]
    assert f"recorded diff: 1 file (params.yaml), +1 -1 lines, sha256 {sha}" in result.stderr
    assert result.stderr.index("recorded diff:") < result.stderr.index("training with the recorded params")


# --- the `reproduced` gate trusts evidence, not a flag -------------------------------------------------


@pytest.fixture
def gated(cli, make_project):
    root = make_project("churn")
    settings = root / "mlkit.yaml"
    settings.write_text(
        settings.read_text().replace("  staging:\n    thresholds:", "  staging:\n    reproduced: true\n    thresholds:")
    )
    git.Repo(root).git.commit("-am", "staging requires a reproduced model")
    return root, train(cli, root)


def reproduced_gate(stdout: str) -> tuple[bool, str]:
    gate = next(g for g in json.loads(stdout)["gates"] if g["gate"] == "reproduced")
    return gate["passed"], gate["detail"]


@pytest.mark.parametrize("by_run", [None, "own run", "unknown"])
def test_reproduced_flag_set_by_hand_fails_the_gate(cli, gated, by_run):
    root, run = gated
    client = client_for(root)
    client.set_model_version_tag("churn", "1", "mlkit.reproduced", "true")
    names = {None: "", "own run": run["run_id"], "unknown": "0" * 32}
    if by_run is not None:
        client.set_model_version_tag("churn", "1", "mlkit.reproduced_by_run", names[by_run])
    details = {
        None: "mlkit.reproduced is set but names no reproducing run",
        "own run": f"mlkit.reproduced is set but run {run['run_id']} does not reproduce run {run['run_id']}",
        "unknown": f"mlkit.reproduced is set but its reproducing run {'0' * 32} is not in the tracking store",
    }

    result = cli("promote", "churn", "1", "--to", "staging", "--json", cwd=root)
    assert result.exit_code == 3, result.output
    assert reproduced_gate(result.stdout) == (False, details[by_run])
    assert result.stderr.splitlines()[-2] == (
        "error: promotion of churn version 1 to staging refused: 1 of 2 gates failed (reproduced)"
    )
    assert client.get_registered_model("churn").aliases == {}


def test_reproducing_run_with_other_predictions_fails_the_gate(cli, gated):
    root, _ = gated
    assert cli("reproduce", "churn/1", cwd=root).exit_code == 0
    client = client_for(root)
    by = client.get_model_version("churn", "1").tags["mlkit.reproduced_by_run"]
    client.set_tag(by, "mlkit.predictions.sha256", "0" * 64)

    result = cli("promote", "churn", "1", "--to", "staging", "--json", cwd=root)
    assert result.exit_code == 3, result.output
    assert reproduced_gate(result.stdout) == (
        False,
        (f"mlkit.reproduced is set but run {by} predicted differently (its predictions sha256 is not the version's)"),
    )


def test_genuine_reproduction_passes_the_gate(cli, gated):
    root, _ = gated
    assert cli("reproduce", "churn/1", cwd=root).exit_code == 0
    by = client_for(root).get_model_version("churn", "1").tags["mlkit.reproduced_by_run"]
    result = cli("promote", "churn", "1", "--to", "staging", "--json", cwd=root)
    assert result.exit_code == 0, result.output
    passed, detail = reproduced_gate(result.stdout)
    assert passed and detail.startswith(f"reproduced by run {by} at ")


# --- what a dirty tree puts in the store: tracked changes, never untracked contents or secrets ----------


def test_secrets_and_large_untracked_files_never_reach_the_store(cli, make_project):
    import hashlib

    root = make_project("churn")
    secret = "AKIA-s3cr3t-value-9f8e7d"
    (root / ".env").write_text(f"AWS_SECRET_ACCESS_KEY={secret}\n")
    (root / "deploy.key").write_text("old\n")
    repo = git.Repo(root)
    repo.git.add("deploy.key")
    repo.git.commit("-m", "a tracked key file")
    (root / "deploy.key").write_text(f"{secret}\n")  # tracked and changed: still never recorded
    big = root / "dump.bin"
    with big.open("wb") as handle:
        for _ in range(50):
            handle.write(b"\x07" * (1024 * 1024))
    assert repo.git.check_ignore(".env", "dump.bin", with_exceptions=False) == ""

    run = train(cli, root, "--allow-dirty")
    store = root / ".mlkit"
    for path in store.rglob("*"):
        if path.is_file():
            assert path.stat().st_size < 20 * 1024 * 1024, path
            assert secret.encode() not in path.read_bytes(), path
    folder = artifact_folder(root, run["run_id"])
    listing = json.loads((folder / "lineage" / "untracked.json").read_text())
    assert listing["secret_files_not_recorded"] == [".env", "deploy.key"]
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    assert {"path": "dump.bin", "size": 50 * 1024 * 1024, "sha256": digest} in listing["untracked"]
    assert run["lineage"]["mlkit.git.untracked_artifact"] == "lineage/untracked.json"
    assert b"dump.bin" not in (folder / "lineage" / "uncommitted.diff").read_bytes()


# --- params.yaml and mlkit.yaml: refused before any work -----------------------------------------------


def assert_nothing_trained(root: Path) -> None:
    client = client_for(root)
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert (client.search_runs(experiments) if experiments else []) == []
    assert client.search_registered_models() == []


def test_duplicate_key_in_params_is_refused_before_training(cli, make_project):
    root = make_project("churn")
    params = root / "params.yaml"
    params.write_text(params.read_text() + "seed: 7\n")
    line = params.read_text().count("\n")
    first = (
        params.read_text().splitlines().index(next(x for x in params.read_text().splitlines() if x.startswith("seed:")))
        + 1
    )

    result = cli("train", cwd=root)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-2:] == [
        f"error: params.yaml: line {line}: duplicate key 'seed' (first at line {first})",
        "hint: keep one 'seed' in params.yaml",
    ]
    assert_nothing_trained(root)


def test_alias_bomb_in_params_is_refused_within_seconds(cli, make_project):
    import time

    root = make_project("churn")
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    params = root / "params.yaml"
    params.write_text(params.read_text() + "bomb:\n" + "".join("  " + line + "\n" for line in bomb.splitlines()))
    started = time.monotonic()
    result = cli("train", cwd=root)
    assert time.monotonic() - started < 30
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert lines[-2].startswith("error: params.yaml: line ")
    assert lines[-2].endswith(": YAML aliases (*a) are not allowed")
    assert lines[-1] == "hint: write the value out where it is used"
    assert_nothing_trained(root)


def test_non_utf8_settings_file_is_refused(cli, make_project):
    root = make_project("churn")
    settings = root / "mlkit.yaml"
    settings.write_bytes(settings.read_bytes() + "# caf\xe9\n".encode("latin-1"))
    result = cli("config", "show", cwd=root)
    assert result.exit_code == 2, result.output
    line = settings.read_bytes().count(b"\n")
    assert result.stderr.splitlines()[-2:] == [
        f"error: mlkit.yaml: not UTF-8 text (byte 0xe9 at line {line})",
        "hint: save mlkit.yaml as UTF-8",
    ]


# --- a SQLite tracking URI never creates folders outside the project's state folder -----------------


def test_sqlite_store_in_a_missing_folder_is_refused(cli, make_project, tmp_path, monkeypatch):
    root = make_project("churn")
    missing = tmp_path / "nowhere" / "deep"
    monkeypatch.setenv("MLKIT_TRACKING_URI", f"sqlite:///{missing}/mlflow.db")

    result = cli("runs", "list", cwd=root)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-2:] == [
        f"error: the SQLite tracking store {missing}/mlflow.db is in a folder that does not exist: {missing}",
        f"hint: create {missing} first if that is where the store belongs, or leave tracking.uri unset for the "
        "project's own store in .mlkit/",
    ]
    assert not (tmp_path / "nowhere").exists()


def test_sqlite_store_inside_the_state_folder_is_created(cli, make_project, monkeypatch):
    root = make_project("churn")
    monkeypatch.setenv("MLKIT_TRACKING_URI", f"sqlite:///{root}/.mlkit/stores/team.db")
    result = cli("runs", "list", cwd=root)
    assert result.exit_code == 0, result.output
    assert (root / ".mlkit" / "stores" / "team.db").is_file()


# --- SIGTERM is an interrupt on every command ----------------------------------------------------------


def catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (``SigCgt`` in /proc: bit 14 is signal 15)."""
    import signal

    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def test_sigterm_while_promote_waits_for_the_lock_exits_130(make_project):
    import signal
    import subprocess
    import sys
    import time

    from filelock import FileLock

    root = make_project("churn")
    lock_file = root / ".mlkit" / "mlflow.db.registry.lock"
    with FileLock(str(lock_file)):
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlkit")), "promote", "churn", "1", "--to", "staging"],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 100
        while time.monotonic() < deadline and process.poll() is None and not catches_sigterm(process.pid):
            time.sleep(0.05)
        time.sleep(3)  # on to the lock, which it waits for until the signal
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted"
