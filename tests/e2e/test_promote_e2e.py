"""The release path with the installed `mlkit`, in subprocesses as a user or a CI job runs it:
init, train twice, promote to staging, staging -> production, a refusal, rollback, and the audit trail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

MLKIT = str(Path(sys.executable).with_name("mlkit"))


def mlkit(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([MLKIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_train_promote_and_roll_back(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLKIT_", "MLFLOW_", "DVC_"))}
    env["CI"] = "true"
    done = mlkit("init", "shop", "--data-remote", str(tmp_path / "remote"), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    root = tmp_path / "shop"
    # the same inputs twice: the same f1, and a tie passes beat_current at the template's margin 0
    runs = []
    for _ in range(2):
        done = mlkit("train", "--json", cwd=root, env=env)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout))
    assert [run["model_version"] for run in runs] == ["1", "2"]
    assert runs[0]["run_id"] != runs[1]["run_id"]
    assert runs[1]["metrics"]["f1"] == runs[0]["metrics"]["f1"]

    steps = [
        (("promote", "shop", "1", "--to", "staging", "--reason", "first"), 0),
        (("promote", "shop", "--from", "staging", "--to", "production"), 0),
        (("promote", "shop", "2", "--to", "production"), 3),  # previous_stage: skipping staging
        (("promote", "shop", "2", "--to", "staging"), 0),
    ]
    for args, code in steps:
        done = mlkit(*args, cwd=root, env=env)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        if code == 3:
            assert done.stderr.splitlines()[-2:] == [
                "error: promotion of shop version 2 to production refused: 1 of 4 gates failed (previous stage)",
                "hint: the gates are `promotion.production` in mlkit.yaml; `mlkit models show shop/2` shows "
                "the version",
            ]

    # version 2 ties version 1 on f1, which passes beat_current at the template's margin 0
    outputs = tmp_path / "outputs"
    ci_env = {
        **env,
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_ACTOR": "release-bot",
    }
    done = mlkit("promote", "shop", "--from", "staging", "--to", "production", "--json", cwd=root, env=ci_env)
    result = json.loads(done.stdout)
    gates = {g["gate"]: g["passed"] for g in result["gates"]}
    assert set(gates) == {"f1 >= 0.9", "beat current on f1", "clean commit", "previous stage"}
    assert done.returncode == 0, (result["gates"], done.stderr)
    assert all(gates.values()), result["gates"]
    assert outputs.read_text().splitlines() == ["model=shop", "version=2", "stage=production", "status=promoted"]

    uri = f"sqlite:///{root / '.mlkit' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert client.get_model_version_by_alias("shop", "production").version == 2
    assert client.get_model_version_by_alias("shop", "production").run_id == runs[1]["run_id"]
    assert client.get_model_version("shop", "1").tags["mlkit.stage"] == "archived"

    done = mlkit("rollback", "shop", "--stage", "production", "--reason", "regression", cwd=root, env=env)
    assert done.returncode == 0, done.stderr
    assert "rolled back shop@production: version 2 -> 1" in done.stderr
    assert client.get_model_version_by_alias("shop", "production").version == 1
    assert client.get_model_version_by_alias("shop", "production").run_id == runs[0]["run_id"]

    shown = json.loads(mlkit("models", "show", "shop@production", "--json", cwd=root, env=env).stdout)
    assert shown["version"] == "1"
    assert shown["git_dirty"] is False
    assert list(shown["data_md5s"]) == ["data/breast_cancer.csv"]
    assert shown["run_id"] == runs[0]["run_id"]
    assert shown["params"]["estimator"]["max_depth"] == 4

    history = json.loads(mlkit("models", "history", "shop", "--json", cwd=root, env=env).stdout)
    assert [(e["action"], e["stage"], e["from_version"], e["to_version"], e["state"]) for e in history] == [
        ("promote", "staging", None, "1", "done"),
        ("promote", "production", None, "1", "done"),
        ("refuse", "production", "1", "2", "refused"),
        ("promote", "staging", None, "2", "done"),
        ("promote", "production", "1", "2", "done"),
        ("rollback", "production", "2", "1", "done"),
    ]
    assert history[4]["actor"] == "release-bot (github actions)"
    assert history[5]["reason"] == "regression"
