"""Lineage tags: keys under `mlkit.`, round trip, fingerprints, the command line, the CI dirty rule."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from mlkit import lineage as L
from mlkit import tags
from mlkit.errors import ExitCode, UsageError


def _lineage(**changes):
    values = dict(
        git_commit="a" * 40,
        git_branch="main",
        git_dirty=False,
        data_md5s={"data/train.csv": "0" * 32},
        params={"seed": 7, "estimator": {"max_depth": 3}},
        seed=7,
        split={"test_size": 0.2, "cv_folds": 0, "stratify": True, "seed": 7, "test_file": None},
        python_version="3.11.7",
        package_lock_sha256="f" * 64,
        mlkit_version="0.1.0",
        command="mlkit train --set params.seed=7",
    )
    values.update(changes)
    return L.RunLineage(**values)


def test_every_tag_key_is_under_the_mlkit_prefix_and_round_trips():
    lineage = _lineage()
    tag_values = lineage.tags()
    assert all(key.startswith("mlkit.") for key in tag_values)
    assert tag_values[tags.GIT_COMMIT] == "a" * 40
    assert tag_values[tags.DATA_MD5_PREFIX + "data/train.csv"] == "0" * 32
    assert tag_values[tags.GIT_DIRTY] == "false" and tags.GIT_DIFF not in tag_values
    assert L.RunLineage.from_tags(tag_values) == lineage


def test_dirty_lineage_points_at_the_diff_artifact():
    tag_values = _lineage(git_dirty=True, diff="diff --git a/x b/x\n").tags()
    assert tag_values[tags.GIT_DIRTY] == "true"
    assert tag_values[tags.GIT_DIFF] == "lineage/uncommitted.diff"
    assert tag_values[tags.DIFF_SHA256] == hashlib.sha256(b"diff --git a/x b/x\n").hexdigest()


def test_the_logged_diff_is_the_hashed_one():
    lineage = _lineage(git_dirty=True, diff="diff --git a/é b/é\n", package_lock="a==1\n")
    logged = lineage.artifacts()
    assert logged == {"lineage/requirements.lock": b"a==1\n", "lineage/uncommitted.diff": lineage.diff_bytes}
    assert hashlib.sha256(logged["lineage/uncommitted.diff"]).hexdigest() == lineage.tags()[tags.DIFF_SHA256]
    assert set(_lineage().artifacts()) == {"lineage/requirements.lock"}


def test_diff_summary_names_files_lines_and_hash():
    from mlkit.reproduction import diff_summary

    diff = (
        b"diff --git a/params.yaml b/params.yaml\n--- a/params.yaml\n+++ b/params.yaml\n@@ -1 +1 @@\n"
        b"-max_depth: 4\n+max_depth: 2\ndiff --git a/src/x.py b/src/x.py\n--- a/src/x.py\n+++ b/src/x.py\n"
        b"@@ -0,0 +1,2 @@\n+import os\n+os.system('id')\n"
    )
    assert diff_summary(diff) == (
        f"recorded diff: 2 files (params.yaml, src/x.py), +3 -1 lines, sha256 {hashlib.sha256(diff).hexdigest()}"
    )


def test_fingerprint_changes_with_any_prediction_and_with_shape():
    base = np.array([[0.1, 0.9], [0.7, 0.3]])
    assert L.predictions_fingerprint(base) == L.predictions_fingerprint(base.copy())
    assert L.predictions_fingerprint(base) != L.predictions_fingerprint(base + 1e-12)
    assert L.predictions_fingerprint(base) != L.predictions_fingerprint(base.ravel())


def test_command_line_names_mlkit_not_the_script_path():
    assert (
        L.command_line(["/opt/venv/bin/mlkit", "train", "--set", "params.seed=7"]) == "mlkit train --set params.seed=7"
    )


def test_dirty_tree_is_refused_in_ci_unless_allowed():
    with pytest.raises(UsageError) as caught:
        L.require_clean(True, False, {"CI": "true"})
    assert caught.value.exit_code == ExitCode.USAGE
    assert caught.value.message == "the git work tree has uncommitted changes and CI is set; refusing to train"
    assert caught.value.hint == "commit the changes first, or pass --allow-dirty"
    L.require_clean(True, True, {"CI": "true"})
    L.require_clean(True, False, {})
    L.require_clean(False, False, {"CI": "true"})


def test_git_state_outside_a_repository(tmp_path):
    assert L.git_state(tmp_path) == (None, None, False, "")


def test_git_state_ignores_training_outputs_but_not_code(tmp_path):
    import subprocess

    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    (tmp_path / "metrics.json").write_text("{}\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "commit", "-q", "-m", "c"], check=True)
    (tmp_path / "metrics.json").write_text('{"f1": 1}\n')
    _, branch, dirty, diff = L.git_state(tmp_path)
    assert (branch, dirty, diff) == ("main", False, "")
    (tmp_path / "code.py").write_text("x = 2\n")
    (tmp_path / "new.py").write_text("y = 1\n")
    _, _, dirty, diff = L.git_state(tmp_path)
    assert dirty
    assert "+x = 2" in diff and "metrics.json" not in diff
    assert "y = 1" not in diff  # untracked files are listed, never copied


def _repo(path):
    import subprocess

    def git(*args):
        subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    return git


def test_untracked_files_are_listed_by_name_size_and_hash_never_copied(tmp_path):
    git = _repo(tmp_path)
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("commit", "-q", "-m", "c")
    (tmp_path / "notes.txt").write_bytes(b"private notes\n")
    state = L.read_git_state(tmp_path)
    assert (state.dirty, state.diff, state.diff_omitted) == (True, "", "")
    assert state.untracked == {
        "untracked": [{"path": "notes.txt", "size": 14, "sha256": hashlib.sha256(b"private notes\n").hexdigest()}]
    }
    lineage = _lineage(git_dirty=True, diff=state.diff, untracked=state.untracked)
    logged = lineage.artifacts()
    assert b"private notes" not in b"".join(logged.values())
    assert json.loads(logged["lineage/untracked.json"]) == state.untracked
    assert lineage.tags()[tags.UNTRACKED] == "lineage/untracked.json"


def test_secret_files_are_never_in_the_diff_even_when_tracked(tmp_path):
    git = _repo(tmp_path)
    for name in (".env", "deploy/server.pem", "code.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("old\n")
    git("add", ".")
    git("commit", "-q", "-m", "c")
    for name in (".env", "deploy/server.pem", "code.py"):
        (tmp_path / name).write_text("TOKEN=s3cr3t\n")
    for name in (".env.local", "id_rsa", "keys/a.key", ".netrc", "cert.p12", "credentials.json"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("TOKEN=s3cr3t\n")
    state = L.read_git_state(tmp_path)
    assert state.diff.count("s3cr3t") == 1 and "code.py" in state.diff
    assert ".env" not in state.diff and "server.pem" not in state.diff
    assert state.untracked == {
        "secret_files_not_recorded": sorted(
            [
                ".env",
                ".env.local",
                ".netrc",
                "cert.p12",
                "credentials.json",
                "deploy/server.pem",
                "id_rsa",
                "keys/a.key",
            ]
        )
    }


def test_a_diff_over_the_limit_is_not_kept(tmp_path, monkeypatch):
    git = _repo(tmp_path)
    (tmp_path / "big.txt").write_text("a\n")
    git("add", ".")
    git("commit", "-q", "-m", "c")
    (tmp_path / "big.txt").write_text("b\n" * 2000)
    monkeypatch.setattr(L, "MAX_DIFF_BYTES", 1000)
    state = L.read_git_state(tmp_path)
    assert state.diff == ""
    assert state.diff_omitted.startswith("the uncommitted diff is ")
    assert state.untracked["changed_files"] == ["big.txt"]
    lineage = _lineage(git_dirty=True, untracked=state.untracked, diff_omitted=state.diff_omitted)
    assert set(lineage.artifacts()) == {"lineage/requirements.lock", "lineage/untracked.json"}
    assert lineage.tags()[tags.DIFF_OMITTED] == state.diff_omitted
    assert tags.DIFF_SHA256 not in lineage.tags() and tags.GIT_DIFF not in lineage.tags()
