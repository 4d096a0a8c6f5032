"""A tracking server people can trust, on real PostgreSQL and S3: users and permissions, the signed-in
user in the audit trail, health that names the failing part, and TLS with a self-signed certificate."""

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
CLIENT_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def mlkit(
    *args: str, env: dict[str, str], cwd: Path, input: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MLKIT, *args], cwd=cwd, env=env, text=True, capture_output=True, input=input, timeout=timeout
    )


def as_user(server: S.TrackingServer, user: str | None, password: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_VARS}
    env["MLKIT_TRACKING_URI"] = server.url
    if user is not None:
        env |= {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password or f"{user}-pass-123"}
    return env


@pytest.mark.slow
def test_read_edit_and_manage_decide_who_moves_which_stage_and_the_trail_names_the_signed_in_user(
    tracking_server: S.TrackingServer, make_project: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_project("guarded")
    name = f"guarded-{uuid.uuid4().hex[:6]}"
    client = S.register_versions(tracking_server.url, name, [0.91, 0.93])
    admin = as_user(tracking_server, S.ADMIN_USER, S.ADMIN_PASSWORD)
    names: dict[str, str] = {}
    for user, permission in (("alice", "MANAGE"), ("bob", "EDIT"), ("carol", None)):  # carol: READ, the default
        names[user] = f"{user}{uuid.uuid4().hex[:4]}"
        # the password on stdin, never on the command line
        added = mlkit(
            "server",
            "user",
            "add",
            names[user],
            "--url",
            tracking_server.url,
            "--json",
            env=admin,
            cwd=tmp_path,
            input=f"{user}-pass-123\n",
        )
        assert added.returncode == 0, added.stderr
        assert json.loads(added.stdout)["username"] == names[user]
        if permission:
            granted = mlkit(
                "server",
                "user",
                "grant",
                names[user],
                "--model",
                name,
                "--permission",
                permission,
                "--url",
                tracking_server.url,
                env=admin,
                cwd=tmp_path,
            )
            assert granted.returncode == 0, granted.stderr
    alice, bob, carol = names["alice"], names["bob"], names["carol"]

    # READ: the server refuses the first write, nothing is recorded
    refused = mlkit(
        "promote", name, "1", "--to", "staging", env=as_user(tracking_server, carol, "carol-pass-123"), cwd=root
    )
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-2:] == [
        f"error: {carol} may not promote {name}@staging: the tracking server refused it ({carol} has READ on "
        f"registered model '{name}'; moving a stage needs EDIT, dropping one MANAGE)",
        f"hint: an admin grants it: `mlkit server user grant {carol} --model {name} --permission EDIT`",
    ]
    assert S.audit_trail(client, name) == []

    # EDIT moves staging, not production
    bob_env = as_user(tracking_server, bob, "bob-pass-123")
    staged = mlkit("promote", name, "1", "--to", "staging", "--json", env=bob_env, cwd=root)
    assert staged.returncode == 0, staged.stderr
    assert json.loads(staged.stdout)["actor"] == f"{bob} (signed in)"
    refused = mlkit("promote", name, "--from", "staging", "--to", "production", env=bob_env, cwd=root)
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-2:] == [
        f"error: {bob} may not move {name}@production: that needs MANAGE on registered model '{name}', {bob} has EDIT",
        f"hint: an admin grants it: `mlkit server user grant {bob} --model {name} --permission MANAGE`",
    ]

    # MANAGE moves production
    moved = mlkit(
        "promote",
        name,
        "--from",
        "staging",
        "--to",
        "production",
        "--json",
        env=as_user(tracking_server, alice, "alice-pass-123"),
        cwd=root,
    )
    assert moved.returncode == 0, moved.stderr
    assert str(client.get_model_version_by_alias(name, "production").version) == "1"
    assert [(e["action"], e["stage"], e["actor"], e["state"]) for e in S.audit_trail(client, name)] == [
        ("promote", "staging", f"{bob} (signed in)", "done"),
        ("promote", "production", f"{alice} (signed in)", "done"),
    ]

    # a wrong password and no credentials at all: one line each, nothing moved
    for env in (as_user(tracking_server, alice, "wrong-password"), as_user(tracking_server, None)):
        denied = mlkit("promote", name, "2", "--to", "staging", env=env, cwd=root)
        assert denied.returncode == 1, denied.stderr
        assert "Traceback" not in denied.stderr
        assert [line for line in denied.stderr.splitlines() if line.startswith("error:")] == [
            f"error: the tracking server did not accept the credentials to promote {name}@staging"
        ]
    assert len(S.audit_trail(client, name)) == 2


def _status(server: S.TrackingServer, cwd: Path) -> tuple[int, dict, str]:
    result = mlkit(
        "server", "status", "--json", "--state-dir", str(server.state_dir), env={**os.environ}, cwd=cwd, timeout=120
    )
    return result.returncode, json.loads(result.stdout), result.stderr


def _wait_healthy(server: S.TrackingServer, cwd: Path, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        code, state, _ = _status(server, cwd)
        if code == 0 or time.monotonic() > deadline:
            return state
        time.sleep(1)


@pytest.mark.slow
def test_status_and_start_name_the_database_or_the_artifact_store_that_is_down(
    tracking_server: S.TrackingServer, postgres: S.Postgres, s3: S.S3Server, tmp_path: Path
) -> None:
    healthy = {"server": "ok", "database": "ok", "artifacts": "ok"}
    assert _wait_healthy(tracking_server, tmp_path)["health"] == healthy
    start_env = {**os.environ, **s3.env(), "PGPASSWORD": postgres.password}

    S.pause_postgres(postgres)
    try:
        code, state, stderr = _status(tracking_server, tmp_path)
        assert code == 1
        assert state["running"] is True
        assert state["health"]["server"] == "ok" and state["health"]["artifacts"] == "ok"
        assert state["health"]["database"] != "ok"
        assert stderr.splitlines()[0].startswith(
            f"error: the tracking server at {tracking_server.url} is running but its database check failed: "
        )
        started = mlkit(
            "server",
            "start",
            "-b",
            postgres.uri,
            "--port",
            str(S.free_port()),
            "--state-dir",
            str(tmp_path / "second"),
            env=start_env,
            cwd=tmp_path,
        )
        assert started.returncode == 1
        assert started.stderr.splitlines()[0].startswith(f"error: the database {postgres.uri} is unreachable: ")
        assert postgres.password not in started.stderr
    finally:
        S.resume_postgres(postgres)
    assert _wait_healthy(tracking_server, tmp_path)["health"] == healthy

    S.pause_s3(s3)
    try:
        code, state, stderr = _status(tracking_server, tmp_path)
        assert code == 1
        assert state["health"]["server"] == "ok" and state["health"]["database"] == "ok"
        assert state["health"]["artifacts"] != "ok"
        assert stderr.splitlines()[0].startswith(
            f"error: the tracking server at {tracking_server.url} is running but its artifacts check failed: "
        )
        started = mlkit(
            "server",
            "start",
            "-b",
            postgres.uri,
            "--port",
            str(S.free_port()),
            "-a",
            "s3://mlflow/artifacts",
            "--state-dir",
            str(tmp_path / "third"),
            env=start_env,
            cwd=tmp_path,
        )
        assert started.returncode == 1
        assert started.stderr.splitlines()[0].startswith(
            "error: the artifact store s3://mlflow/artifacts is unreachable: "
        )
        assert s3.secret_key not in started.stderr
    finally:
        S.resume_s3(s3)
    assert _wait_healthy(tracking_server, tmp_path)["health"] == healthy


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "server.crt", folder / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.mark.slow
def test_tls_with_a_self_signed_certificate_on_loopback(
    postgres: S.Postgres,
    s3: S.S3Server,
    make_project: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, key = _self_signed(tmp_path)
    server = S.start_tracking_server(
        postgres,
        database="tls",
        extra_env=s3.env(),
        artifacts_destination=f"s3://{s3.bucket('tls')}/artifacts",
        tls_cert=cert,
        tls_key=key,
    )
    try:
        assert server.url.startswith("https://127.0.0.1:")
        monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(cert))
        name = f"tls-{uuid.uuid4().hex[:6]}"
        client = S.register_versions(server.url, name, [0.92])
        root = make_project("tls")
        env = {**as_user(server, S.ADMIN_USER, S.ADMIN_PASSWORD), "MLFLOW_TRACKING_SERVER_CERT_PATH": str(cert)}
        promoted = mlkit("promote", name, "1", "--to", "staging", env=env, cwd=root)
        assert promoted.returncode == 0, promoted.stderr
        assert str(client.get_model_version_by_alias(name, "staging").version) == "1"
        code, state, stderr = _status(server, tmp_path)
        assert (code, state["health"]) == (0, {"server": "ok", "database": "ok", "artifacts": "ok"}), stderr
        # a client that does not trust the certificate gets nothing through
        untrusting = {
            k: v for k, v in env.items() if k not in ("MLFLOW_TRACKING_SERVER_CERT_PATH", "REQUESTS_CA_BUNDLE")
        }
        refused = mlkit("promote", name, "1", "--to", "production", env=untrusting, cwd=root)
        assert refused.returncode == 1
        assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr or "certificate verify failed" in refused.stderr
    finally:
        S.stop_tracking_server(server)
