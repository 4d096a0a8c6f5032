"""Promotion against a real MLflow tracking server over PostgreSQL, where no file lock serialises writers:
the audit trail is still complete and honest, and the stage ends with exactly one holder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import _services as S
import pytest
from mlflow import MlflowClient

MLKIT = str(Path(sys.executable).with_name("mlkit"))
TAGS = {"mlkit.git.commit": "0" * 40, "mlkit.git.dirty": "false"}


def _register(uri: str, name: str, scores: list[float]) -> MlflowClient:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("promotion")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("promotion")
    client.create_registered_model(name)
    for f1 in scores:
        run = client.create_run(experiment_id)
        client.log_metric(run.info.run_id, "f1", f1)
        client.set_terminated(run.info.run_id)
        client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=TAGS)
    return client


def _audit(client: MlflowClient, name: str) -> list[dict]:
    tags = client.get_registered_model(name).tags
    return [json.loads(tags[k]) for k in sorted(tags) if k.startswith("mlkit.audit.")]


@pytest.mark.slow
def test_promote_and_rollback_through_a_server(tracking_server: S.TrackingServer,
                                               make_project: Callable[..., Path], cli: Callable,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project("served")
    monkeypatch.setenv("MLKIT_TRACKING_URI", tracking_server.url)
    name = f"served-{uuid.uuid4().hex[:6]}"
    client = _register(tracking_server.url, name, [0.91, 0.93])
    for version in ("1", "2"):
        result = cli("promote", name, version, "--to", "staging", cwd=root)
        assert result.exit_code == 0, result.stderr
    assert str(client.get_model_version_by_alias(name, "staging").version) == "2"
    result = cli("rollback", name, "--stage", "staging", "--reason", "server", cwd=root)
    assert result.exit_code == 0, result.stderr
    assert str(client.get_model_version_by_alias(name, "staging").version) == "1"
    assert [(e["action"], e["to_version"], e["state"]) for e in _audit(client, name)] == [
        ("promote", "1", "done"), ("promote", "2", "done"), ("rollback", "1", "done")]
    assert not (root / ".mlkit" / "mlflow.db").exists()  # nothing fell back to the embedded store


@pytest.mark.slow
def test_concurrent_promotions_on_a_server_leave_one_holder_and_an_honest_trail(
        tracking_server: S.TrackingServer, make_project: Callable[..., Path]) -> None:
    root = make_project("raced")
    name = f"raced-{uuid.uuid4().hex[:6]}"
    client = _register(tracking_server.url, name, [0.90 + i / 100 for i in range(4)])
    env = {**os.environ, "MLKIT_TRACKING_URI": tracking_server.url}
    procs = [subprocess.Popen([MLKIT, "promote", name, str(v), "--to", "staging", "--json"], cwd=root,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for v in range(1, 5)]
    outcomes = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert [code for code, _o, _e in outcomes] == [0, 0, 0, 0], [err for _c, _o, err in outcomes]

    holder = str(client.get_model_version_by_alias(name, "staging").version)
    trail = _audit(client, name)
    assert len(trail) == 4  # every process recorded its move
    assert {e["state"] for e in trail} <= {"done", "superseded"}
    # an entry says `done` only if its version still held the stage when it re-read the alias
    assert holder in {e["to_version"] for e in trail if e["state"] == "done"}
    # search results carry no aliases over REST: read each version
    holders = [v for v in "1234" if "staging" in client.get_model_version(name, v).aliases]
    assert holders == [holder]
