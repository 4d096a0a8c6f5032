"""Promotion against a real MLflow tracking server over PostgreSQL, where no file lock serialises writers:
the audit trail is still complete and honest, and the stage ends with exactly one holder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import _services as S
import pytest

MLKIT = str(Path(sys.executable).with_name("mlkit"))


@pytest.mark.slow
def test_promote_and_rollback_through_a_server(
    tracking_server: S.TrackingServer, make_project: Callable[..., Path], cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project("served")
    monkeypatch.setenv("MLKIT_TRACKING_URI", tracking_server.url)
    name = f"served-{uuid.uuid4().hex[:6]}"
    client = S.register_versions(tracking_server.url, name, [0.91, 0.93])
    for version in ("1", "2"):
        result = cli("promote", name, version, "--to", "staging", cwd=root)
        assert result.exit_code == 0, result.stderr
    assert str(client.get_model_version_by_alias(name, "staging").version) == "2"
    result = cli("rollback", name, "--stage", "staging", "--reason", "server", cwd=root)
    assert result.exit_code == 0, result.stderr
    assert str(client.get_model_version_by_alias(name, "staging").version) == "1"
    assert [(e["action"], e["to_version"], e["state"]) for e in S.audit_trail(client, name)] == [
        ("promote", "1", "done"),
        ("promote", "2", "done"),
        ("rollback", "1", "done"),
    ]
    assert not (root / ".mlkit" / "mlflow.db").exists()  # nothing fell back to the embedded store


RACERS = 16


@pytest.mark.slow
def test_sixteen_concurrent_promotions_on_an_authenticated_server_leave_one_holder_and_an_honest_trail(
    tracking_server: S.TrackingServer, make_project: Callable[..., Path]
) -> None:
    assert tracking_server.auth
    root = make_project("raced")
    name = f"raced-{uuid.uuid4().hex[:6]}"
    client = S.register_versions(tracking_server.url, name, [0.90 + i / 1000 for i in range(RACERS + 1)])
    env = {**os.environ, "MLKIT_TRACKING_URI": tracking_server.url}  # signed in (the services fixture)
    first = subprocess.run(
        [MLKIT, "promote", name, "1", "--to", "staging"], cwd=root, env=env, text=True, capture_output=True, timeout=300
    )
    assert first.returncode == 0, first.stderr

    started = time.perf_counter()
    versions = [str(v) for v in range(2, RACERS + 2)]
    procs = [
        subprocess.Popen(
            [MLKIT, "promote", name, v, "--to", "staging", "--json"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in versions
    ]
    outcomes = {v: (p.wait(timeout=900), *p.communicate()) for v, p in zip(versions, procs, strict=True)}
    elapsed = time.perf_counter() - started

    holder = str(client.get_model_version_by_alias(name, "staging").version)
    entries = S.audit_trail(client, name)[1:]
    assert len(entries) == RACERS  # every process recorded its move
    state = {e["to_version"]: e["state"] for e in entries}
    assert set(state) == set(versions)
    assert set(state.values()) <= {"done", "superseded"}
    assert state[holder] == "done"
    assert {e["actor"] for e in entries} == {f"{S.ADMIN_USER} (signed in)"}
    # a move that stuck exits 0; a superseded one exits 1 with one line naming the holder; nothing else fails
    for version, (code, _out, err) in outcomes.items():
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        if state[version] == "done":
            assert (code, errors) == (0, []), err
        else:
            superseded_by = next(e["superseded_by"] for e in entries if e["to_version"] == version)
            assert code == 1, err
            assert errors == [
                f"error: promotion of {name} version {version} to staging was superseded: version "
                f"{superseded_by} holds staging now (another promotion moved it at the same time)"
            ]
            assert json.loads(_out)["status"] == "superseded"
    # one holder, and the stage tag on it alone (search results carry no aliases over REST: read each version)
    every = [str(v) for v in range(1, RACERS + 2)]
    read = {v: client.get_model_version(name, v) for v in every}
    assert [v for v in every if "staging" in read[v].aliases] == [holder]
    assert [v for v in every if read[v].tags.get("mlkit.stage") == "staging"] == [holder]
    S.FIGURES[f"{RACERS} concurrent promotions (authenticated)"] = (
        f"{elapsed:.1f} s wall, {sum(1 for s in state.values() if s == 'done')} done, "
        f"{sum(1 for s in state.values() if s == 'superseded')} superseded, 0 errors"
    )

    # models show: the stage is the alias, never a stale tag
    shown = subprocess.run(
        [MLKIT, "models", "show", f"{name}/1", "--json"], cwd=root, env=env, text=True, capture_output=True, timeout=300
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["stage"] is None
    # rollback never lands on a version whose move was superseded
    rolled = subprocess.run(
        [MLKIT, "rollback", name, "--stage", "staging", "--json"],
        cwd=root,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert rolled.returncode == 0, rolled.stderr
    target = json.loads(rolled.stdout)["to_version"]
    assert target == "1" or state[target] == "done"
    assert str(client.get_model_version_by_alias(name, "staging").version) == target
