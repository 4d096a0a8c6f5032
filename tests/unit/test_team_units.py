"""Pure logic of the team pieces: backend URIs for `mlkit server`, its recorded state, and how a lost
tracking server is told apart from other failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlkit import tracking_server
from mlkit.engines import mlflow
from mlkit.errors import UsageError


def test_backend_uri_without_password_from_the_option() -> None:
    uri = "postgresql://mlflow@db:5432/mlflow"
    assert tracking_server.backend_uri_from(uri, environ={}) == uri


def test_backend_uri_with_password_only_from_the_environment() -> None:
    uri = "postgresql://mlflow:secret@db:5432/mlflow"
    assert tracking_server.backend_uri_from(None, environ={"MLKIT_SERVER_BACKEND_URI": uri}) == uri


def test_password_in_the_option_is_refused_without_showing_it() -> None:
    with pytest.raises(UsageError) as raised:
        tracking_server.backend_uri_from("postgresql://mlflow:secret@db:5432/mlflow", environ={})
    assert raised.value.message == (
        "--backend-store-uri must not contain a password: postgresql://mlflow:***@db:5432/mlflow"
    )
    assert raised.value.hint == ("pass the password in PGPASSWORD, or put the whole URI in MLKIT_SERVER_BACKEND_URI")


def test_unsupported_backend_is_refused() -> None:
    with pytest.raises(UsageError) as raised:
        tracking_server.backend_uri_from("mysql://u@db/mlflow", environ={})
    assert raised.value.message == "unsupported backend store mysql://u@db/mlflow"
    assert raised.value.exit_code == 2


def test_status_without_a_recorded_server(tmp_path: Path) -> None:
    assert tracking_server.status(tmp_path) == tracking_server.ServerState(running=False)


def test_status_of_a_server_whose_process_is_gone(tmp_path: Path) -> None:
    recorded = {
        "running": True,
        "pid": 2**22 + 12345,
        "url": "http://127.0.0.1:5000",
        "backend": "postgresql://u@db/m",
        "artifacts_destination": None,
        "log": None,
        "started_at": 1.0,
    }
    (tmp_path / tracking_server.PID_FILE).write_text(json.dumps(recorded))
    state = tracking_server.status(tmp_path)
    assert state.running is False
    assert state.pid == recorded["pid"]


def test_status_shows_the_start_time_in_utc_and_json_keeps_the_seconds(tmp_path: Path, cli) -> None:
    recorded = {
        "running": True,
        "pid": 2**22 + 12345,
        "url": "http://127.0.0.1:5000",
        "backend": "postgresql://u@db/m",
        "artifacts_destination": None,
        "log": None,
        "started_at": 1795788899.4,
    }
    (tmp_path / tracking_server.PID_FILE).write_text(json.dumps(recorded))
    table = cli("server", "status", "--state-dir", str(tmp_path))
    assert table.exit_code == 0, table.output
    assert [line.split() for line in table.stdout.splitlines() if "started_at" in line] == [
        ["started_at", "│", "2026-11-27T14:14:59Z"]
    ]
    shown = cli("server", "status", "--state-dir", str(tmp_path), "--json")
    assert json.loads(shown.stdout)["started_at"] == 1795788899.4


def test_start_refuses_a_port_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as raised:
        tracking_server.start(tmp_path, "sqlite:///x.db", port=70000)
    assert raised.value.message == "--port 70000: must be between 1 and 65535"


@pytest.mark.parametrize(
    ("error", "uri", "expected"),
    [
        (
            Exception(
                "API request to endpoint /api/2.0/mlflow/runs/log-batch failed with exception "
                "HTTPConnectionPool(host='127.0.0.1', port=5000): Max retries exceeded ... "
                "Connection refused"
            ),
            "http://u:pw@127.0.0.1:5000",
            "tracking server http://u:***@127.0.0.1:5000 became unreachable during the run (connection refused); "
            "nothing was registered",
        ),
        (
            Exception("(psycopg.OperationalError) server closed the connection unexpectedly"),
            "postgresql://u@db:5432/mlflow",
            "tracking server postgresql://u@db:5432/mlflow became unreachable during the run (connection lost); "
            "nothing was registered",
        ),
    ],
)
def test_lost_connection_is_named_without_password(error: Exception, uri: str, expected: str) -> None:
    lost = mlflow.lost_connection(error, uri)
    assert lost is not None
    assert lost.message == expected


def test_other_failures_and_local_stores_are_not_a_lost_connection() -> None:
    assert mlflow.lost_connection(ValueError("bad input shape"), "http://127.0.0.1:5000") is None
    assert mlflow.lost_connection(Exception("Connection refused"), "sqlite:///x.db") is None


def test_http_probe_sends_credentials_as_basic_auth_not_in_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.request

    seen = {}

    def fake_urlopen(request, timeout, context=None):
        seen["url"], seen["auth"] = request.full_url, request.get_header("Authorization")
        raise OSError("refused")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    assert mlflow.probe_http("https://alice:pw@mlflow.example:8443/base", 1.0) == "refused"
    assert seen == {"url": "https://mlflow.example:8443/base/health", "auth": "Basic YWxpY2U6cHc="}


@pytest.mark.parametrize(
    ("env", "header"),
    [
        ({"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "pw"}, "Basic YWxpY2U6cHc="),
        ({"MLFLOW_TRACKING_TOKEN": "t0ken"}, "Bearer t0ken"),
        (
            {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "pw", "MLFLOW_TRACKING_TOKEN": "t"},
            "Basic YWxpY2U6cHc=",
        ),
        ({"MLFLOW_TRACKING_USERNAME": "alice"}, None),
        ({}, None),
    ],
    ids=["basic", "token", "basic-wins", "username-alone", "nothing"],
)
def test_http_probe_sends_the_credentials_mlflow_reads_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], header: str | None
) -> None:
    import urllib.request

    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    seen = {}

    def fake_urlopen(request, timeout, context=None):
        seen["auth"] = request.get_header("Authorization")
        raise OSError("refused")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    assert mlflow.probe_http("http://127.0.0.1:5000", 1.0) == "refused"
    assert seen == {"auth": header}


def test_credentials_never_show_the_secret_in_their_repr() -> None:
    from mlkit import credentials

    creds = credentials.from_environment({"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "s3cr3t"})
    admin = tracking_server.AdminAccount("admin", "s3cr3t", "environment")
    assert "s3cr3t" not in repr(creds) + repr(admin) + str(creds) + str(admin)


@pytest.mark.parametrize(
    ("uri", "env", "expected"),
    [
        (
            "http://127.0.0.1:5000",
            {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "pw"},
            "alice (signed in)",
        ),
        (
            "https://mlflow.example",
            {
                "MLFLOW_TRACKING_USERNAME": "ci-bot",
                "MLFLOW_TRACKING_PASSWORD": "pw",
                "GITHUB_ACTIONS": "true",
                "GITHUB_ACTOR": "octocat",
            },
            "ci-bot (signed in, github actions: octocat)",
        ),
        # credentials for another store mean nothing to a local one: git's user acts
        (
            "sqlite:///x.db",
            {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "pw"},
            "Test User <test@example.com>",
        ),
        ("http://127.0.0.1:5000", {}, "Test User <test@example.com>"),
        ("http://127.0.0.1:5000", {"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "octocat"}, "octocat (github actions)"),
    ],
    ids=["signed-in", "signed-in-in-actions", "local-store", "no-credentials", "actions-only"],
)
def test_the_audit_actor_is_the_signed_in_user_on_a_server(
    tmp_path, uri: str, env: dict[str, str], expected: str
) -> None:
    import subprocess

    from mlkit.audit import actor

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "config", "user.name", "Test User"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "config", "user.email", "test@example.com"], check=True)
    assert actor(tmp_path, env, tracking_uri=uri) == expected


def test_server_state_names_the_first_failing_part() -> None:
    from mlkit.tracking_server import ServerState

    healthy = ServerState(
        running=True, url="http://127.0.0.1:5000", health={"server": "ok", "database": "ok", "artifacts": "ok"}
    )
    assert healthy.problem is None
    broken = ServerState(
        running=True,
        url="http://127.0.0.1:5000",
        health={"server": "ok", "database": "HTTP 500: connection refused", "artifacts": "ok"},
    )
    assert broken.problem == (
        "the tracking server at http://127.0.0.1:5000 is running but its database check "
        "failed: HTTP 500: connection refused"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"auth": False, "host": "0.0.0.0"}, "--no-auth is only allowed on loopback, not on --host 0.0.0.0"),
        (
            {"default_permission": "ALL"},
            "--default-permission ALL: must be one of READ, USE, EDIT, MANAGE, NO_PERMISSIONS",
        ),
        ({"tls_cert": "cert.pem"}, "--tls-cert and --tls-key go together"),
    ],
    ids=["no-auth-off-loopback", "bad-permission", "cert-without-key"],
)
def test_server_start_refuses_unsafe_or_bad_options_before_starting_anything(tmp_path, kwargs, message) -> None:
    if "tls_cert" in kwargs:
        kwargs["tls_cert"] = Path(kwargs["tls_cert"])
    with pytest.raises(UsageError) as raised:
        tracking_server.start(tmp_path / "state", "sqlite:///x.db", **kwargs)
    assert raised.value.message == message
    assert not (tmp_path / "state").exists()


def test_the_auth_files_are_private_and_hold_no_password_in_the_config(tmp_path) -> None:
    import stat

    env = tracking_server._prepare_auth(tmp_path, {}, "READ")
    folder = tmp_path / "server-auth"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("admin.json", "basic_auth.ini"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    password = env["MLFLOW_AUTH_ADMIN_PASSWORD"]
    assert len(password) >= 24
    config = (folder / "basic_auth.ini").read_text()
    assert password not in config
    assert "admin_username = admin" in config and "default_permission = READ" in config
    assert f"database_uri = sqlite:///{(folder / 'auth.db').resolve()}" in config
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == str((folder / "basic_auth.ini").resolve())
    # generated once: a restart reuses the account and the session secret
    again = tracking_server._prepare_auth(tmp_path, {}, "EDIT")
    assert again["MLFLOW_AUTH_ADMIN_PASSWORD"] == password
    assert again["MLFLOW_FLASK_SERVER_SECRET_KEY"] == env["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    assert tracking_server.admin_account(tmp_path, {}).password == password
    # the environment wins, and its password is never stored
    (tmp_path / "other").mkdir()
    chosen = tracking_server._prepare_auth(tmp_path / "other", {"MLFLOW_AUTH_ADMIN_PASSWORD": "from-env-pw"}, "READ")
    assert chosen["MLFLOW_AUTH_ADMIN_PASSWORD"] == "from-env-pw"
    assert "from-env-pw" not in (tmp_path / "other" / "server-auth" / "admin.json").read_text()


def test_the_servers_refusals_are_recognised_in_both_forms_mlflow_raises() -> None:
    from mlflow.exceptions import MlflowException, RestException

    from mlkit.engines.mlflow import denied_status as _denied_status

    assert _denied_status(RestException({"error_code": "PERMISSION_DENIED", "message": "no"})) == 403
    assert _denied_status(RestException({"error_code": "UNAUTHENTICATED", "message": "no"})) == 401
    # the auth app answers some refusals with a plain-text body, which MLflow's client reports by status
    assert _denied_status(MlflowException("API request to endpoint /x failed with error code 401 != 200")) == 401
    assert _denied_status(MlflowException("API request to endpoint /x failed with error code 403 != 200")) == 403
    assert _denied_status(RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "gone"})) is None
    assert _denied_status(ValueError("error code 500")) is None


def test_a_superseded_promotion_is_a_failed_operation_naming_the_holder() -> None:
    from mlkit.errors import ExitCode
    from mlkit.promotion import PromotionResult, PromotionSuperseded

    result = PromotionResult(
        model="churn",
        version="7",
        stage="staging",
        status="superseded",
        from_version="6",
        from_stage=None,
        gates=[],
        actor="alice (signed in)",
        reason="",
        dry_run=False,
    )
    error = PromotionSuperseded(result, "9")
    assert error.exit_code == ExitCode.FAILED
    assert error.message == (
        "promotion of churn version 7 to staging was superseded: version 9 holds staging now "
        "(another promotion moved it at the same time)"
    )
    assert error.result is result
