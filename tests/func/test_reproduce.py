"""`mlkit reproduce` against real git worktrees, DVC with a local remote and an MLflow SQLite store."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

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


def assert_no_worktree_left(root: Path) -> None:
    assert not list((root / ".mlkit" / "worktrees").glob("*"))
    assert len(git.Repo(root).git.worktree("list").splitlines()) == 1


def assert_user_tree_untouched(root: Path, before: str) -> None:
    assert git.Repo(root).git.status("--porcelain") == before


@pytest.mark.parametrize(
    ("template", "estimator", "target"),
    [
        ("classification", "xgboost.XGBClassifier", "churn/1"),
        ("regression", "sklearn.ensemble.RandomForestRegressor", "churn/v1"),
    ],  # as `mlkit models show` reads it
)
def test_reproduce_matches_and_records_the_verdict(cli, make_project, template, estimator, target):
    root = make_project("churn", template=template)
    run = train(cli, root)
    assert run["model_version"] == "1"
    status_before = git.Repo(root).git.status("--porcelain")

    result = cli("reproduce", target, "--json", cwd=root)
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout)
    assert verdict["matched"] is True and verdict["mismatches"] == []
    assert verdict["run_id"] == run["run_id"]
    names = {check["name"] for check in verdict["checks"]}
    assert {
        "predictions sha256",
        "data " + ("data/breast_cancer.csv" if template == "classification" else "data/diabetes.csv"),
    } <= names
    assert set(run["metrics"]) <= names

    client = client_for(root)
    tags = client.get_run(run["run_id"]).data.tags
    assert tags["mlkit.reproduced"] == "true"
    assert tags["mlkit.reproduced_by_run"] == verdict["reproduced_run_id"]
    version_tags = client.get_model_version("churn", "1").tags
    assert version_tags["mlkit.reproduced"] == "true"
    assert version_tags["mlkit.reproduced_by_run"] == verdict["reproduced_run_id"]
    rebuilt = client.get_run(verdict["reproduced_run_id"])
    assert rebuilt.data.tags["mlkit.reproduces"] == run["run_id"]
    assert rebuilt.data.tags["mlkit.git.commit"] == git.Repo(root).head.commit.hexsha
    # a reproduction never registers a model
    assert [str(v.version) for v in client.search_model_versions("name='churn'")] == ["1"]
    assert_no_worktree_left(root)
    assert_user_tree_untouched(root, status_before)


def test_run_from_a_dirty_tree_matches_through_the_recorded_diff(cli, make_project):
    root = make_project("churn")
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("max_depth: 4", "max_depth: 2"))
    run = train(cli, root, "--allow-dirty")
    baseline = train(cli, root, "--allow-dirty", "--no-register", "--set", "params.estimator.max_depth=4")
    assert run["metrics"] != baseline["metrics"], "the uncommitted change must matter for this test"

    result = cli("reproduce", run["run_id"], "--apply-diff", cwd=root)
    assert result.exit_code == 0, result.output
    assert "+ recorded diff matches" in " ".join(result.stdout.split())
    assert params.read_text().count("max_depth: 2") == 1  # the user's uncommitted change is still there
    assert_no_worktree_left(root)


def test_command_line_overrides_are_reproduced(cli, make_project):
    root = make_project("churn")
    run = train(cli, root, "--set", "params.estimator.n_estimators=40", "--set", "params.seed=7")
    result = cli("reproduce", run["run_id"], "--json", cwd=root)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["matched"] is True


def test_tampered_data_in_the_remote_is_a_mismatch_with_the_numbers(cli, make_project, tmp_path):
    root = make_project("churn")
    train(cli, root)
    subprocess.run([str(Path(sys.executable).with_name("dvc")), "push", "-q"], cwd=root, check=True)
    remote_file = next(p for p in (tmp_path / "remote-churn").rglob("*") if p.is_file())
    remote_file.chmod(0o644)
    lines = remote_file.read_text().splitlines()
    # swap the diagnosis of a block of rows: same size, different content
    swapped = [
        line.replace(",malignant", ",TMP").replace(",benign", ",malignant").replace(",TMP", ",benign")
        if 1 <= index <= 120
        else line
        for index, line in enumerate(lines)
    ]
    remote_file.write_text("\n".join(swapped) + "\n")
    shutil.rmtree(root / ".dvc" / "cache")

    result = cli("reproduce", "churn/1", cwd=root)
    assert result.exit_code == 4, result.output
    assert result.stderr.splitlines()[-2:] == [
        "error: reproduction of churn/1 does not match: data data/breast_cancer.csv, accuracy, f1, log_loss, "
        "precision, recall, roc_auc, xgb.test.logloss, xgb.train.logloss, predictions sha256",
        "hint: see the table above for the numbers and the likely causes",
    ]
    table = " ".join(result.stdout.split())
    assert "does NOT match" in table
    assert "Likely causes:" in result.stdout
    client = client_for(root)
    assert client.get_model_version("churn", "1").tags["mlkit.reproduced"] == "false"
    assert_no_worktree_left(root)


def test_code_that_depends_on_something_outside_git_is_a_mismatch(cli, make_project, tmp_path):
    root = make_project("churn")
    knob = tmp_path / "scale.txt"
    knob.write_text("1.0")
    hook = root / "src" / "churn" / "features.py"
    hook.write_text(
        hook.read_text().replace(
            "    frame = frame.copy()\n",
            f'    frame = frame.copy()\n    frame["mean_radius"] *= float(open({str(knob)!r}).read())\n'
            '    frame.loc[frame.index[:200], "worst_area"] *= float(open(' + repr(str(knob)) + ").read())\n",
            1,
        )
    )
    repo = git.Repo(root)
    repo.git.add(A=True)
    repo.git.commit("-m", "hook reads a file outside the repository")
    train(cli, root)
    knob.write_text("-50.0")

    result = cli("reproduce", "churn/1", "--json", cwd=root)
    assert result.exit_code == 4, result.output
    verdict = json.loads(result.stdout)
    assert verdict["matched"] is False
    assert "predictions sha256" in verdict["mismatches"]
    assert verdict["likely_causes"] == [
        "the environment is the same: look for unseeded randomness or inputs outside git and DVC"
    ]


def test_tolerance_relaxes_metric_comparison(cli, make_project):
    # the --tolerance option end to end; what it accepts and rejects: tests/unit/test_reproduce_compare.py
    root = make_project("churn", template="regression")
    train(cli, root)
    result = cli("reproduce", "churn/1", "--tolerance", "1e-9", "--json", cwd=root)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tolerance"] == 1e-9


def test_promotion_gate_reads_the_reproduced_tag(cli, make_project):
    root = make_project("churn")
    settings = root / "mlkit.yaml"
    text = settings.read_text().replace(
        "  staging:\n    thresholds:", "  staging:\n    reproduced: true\n    thresholds:"
    )
    settings.write_text(text)
    repo = git.Repo(root)
    repo.git.commit("-am", "staging requires a reproduced model")
    train(cli, root)
    refused = cli("promote", "churn", "1", "--to", "staging", cwd=root)
    assert refused.exit_code == 3, refused.output
    assert "not reproduced" in refused.stdout
    assert refused.stderr.splitlines()[-2:] == [
        "error: promotion of churn version 1 to staging refused: 1 of 2 gates failed (reproduced)",
        "hint: the gates are `promotion.staging` in mlkit.yaml; `mlkit models show churn/1` shows the version",
    ]
    assert cli("reproduce", "churn/1", cwd=root).exit_code == 0
    promoted = cli("promote", "churn", "1", "--to", "staging", cwd=root)
    assert promoted.exit_code == 0, promoted.output
    assert str(client_for(root).get_model_version_by_alias("churn", "staging").version) == "1"


def test_missing_commit_says_so(cli, make_project):
    root = make_project("churn")
    repo = git.Repo(root)
    (root / "NOTES.md").write_text("later\n")
    repo.git.add("NOTES.md")
    repo.git.commit("-m", "a commit that will disappear")
    run = train(cli, root)
    repo.git.reset("--hard", "HEAD~1")
    repo.git.reflog("expire", "--expire=now", "--all")
    repo.git.gc("--prune=now", "--quiet")

    result = cli("reproduce", run["run_id"], cwd=root)
    assert result.exit_code == 1
    commit = run["lineage"]["mlkit.git.commit"]
    assert result.stderr.splitlines()[-2:] == [
        f"error: commit {commit} is not in this repository",
        "hint: fetch the branch that has it, e.g. `git fetch origin`",
    ]


def test_shallow_clone_is_told_to_fetch_full_history(cli, make_project, tmp_path, monkeypatch):
    root = make_project("churn")
    run = train(cli, root)
    repo = git.Repo(root)
    repo.git.add(A=True)
    repo.git.commit("-m", "record the first run")
    (root / "NOTES.md").write_text("later\n")
    repo.git.add("NOTES.md")
    repo.git.commit("-m", "later work")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", f"file://{root}", str(clone)], check=True)
    monkeypatch.setenv("MLKIT_TRACKING_URI", f"sqlite:///{root}/.mlkit/mlflow.db")

    result = cli("reproduce", run["run_id"], cwd=clone)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-2:] == [
        f"error: commit {run['lineage']['mlkit.git.commit']} is not in this repository",
        "hint: this clone is shallow: fetch the full history with `git fetch --unshallow`",
    ]


def test_data_in_neither_cache_nor_remote(cli, make_project):
    root = make_project("churn")
    train(cli, root)
    shutil.rmtree(root / ".dvc" / "cache")
    result = cli("reproduce", "churn/1", cwd=root)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-2:] == [
        "error: data data/breast_cancer.csv (md5 e6529e621f438c3873f9c263ee667ef5) is in neither the DVC "
        "cache nor the remote",
        "hint: push it from a machine that has it: `mlkit data push`",
    ]
    assert_no_worktree_left(root)


def test_data_from_the_remote_in_mlkit_data_remote(cli, make_project, tmp_path, monkeypatch):
    root = make_project("churn")
    train(cli, root)
    (tmp_path / "secret-remote").mkdir()
    monkeypatch.setenv("MLKIT_DATA_REMOTE", str(tmp_path / "secret-remote"))
    assert cli("data", "push", cwd=root).exit_code == 0
    assert not any(p.is_file() for p in (tmp_path / "remote-churn").rglob("*"))  # the configured one
    shutil.rmtree(root / ".dvc" / "cache")

    result = cli("reproduce", "churn/1", "--json", cwd=root)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["matched"] is True
    assert_no_worktree_left(root)


def test_run_not_made_by_mlkit(cli, make_project):
    root = make_project("churn")
    client = client_for(root)
    from mlkit.engines.mlflow import ensure_experiment
    from mlkit.project import load_project

    experiment = ensure_experiment(load_project(root))
    run = client.create_run(experiment)
    client.set_terminated(run.info.run_id)
    result = cli("reproduce", run.info.run_id, cwd=root)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"error: run {run.info.run_id} was not made by mlkit (it has no mlkit lineage tags)"
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nope", "error: 'nope' is not a run id, NAME@STAGE or NAME/VERSION"),
        ("churn/x", "error: 'churn/x': the version after '/' must be a number, e.g. churn/3"),
        ("churn/7", "error: 'churn/7' not found in the tracking store: "),
        ("churn@production", "error: 'churn@production' not found in the tracking store: "),
        ("0" * 32, f"error: '{'0' * 32}' not found in the tracking store: "),
    ],
)
def test_unknown_targets_exit_2(cli, make_project, target, message):
    root = make_project("churn")
    result = cli("reproduce", target, cwd=root)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].startswith(message)
