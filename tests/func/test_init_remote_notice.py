"""`mlkit init` says once that its default data remote is a folder CI cannot reach, and what to do."""

from __future__ import annotations

import json

from mlkit.scaffold import local_remote_notice


def test_init_says_once_that_the_remote_is_local(cli, tmp_path):
    remote = tmp_path / "remote"
    result = cli("init", "churn", "--data-remote", str(remote), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    notice = (
        f"the DVC remote {remote} is a folder on this machine: CI runners cannot reach it. Before the "
        "first push, add a shared one and send the data: `mlkit data remote add storage "
        "s3://BUCKET/PATH --default && mlkit data push` (docs: ci.md)"
    )
    assert result.stderr.splitlines()[-1] == notice
    assert result.stderr.count("CI runners cannot reach it") == 1
    assert "CI runners" not in result.stdout


def test_the_json_result_stays_pure(cli, tmp_path):
    result = cli("init", "churn", "--json", "--data-remote", str(tmp_path / "r"), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "churn"


def test_a_shared_remote_needs_no_notice():
    assert local_remote_notice("s3://bucket/churn") is None
    assert local_remote_notice(None) is None
    assert local_remote_notice("/srv/dvc").startswith("the DVC remote /srv/dvc is a folder on this machine")
