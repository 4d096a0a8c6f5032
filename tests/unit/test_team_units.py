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
    assert raised.value.message == ("--backend-store-uri must not contain a password: "
                                    "postgresql://mlflow:***@db:5432/mlflow")
    assert raised.value.hint == ("pass the password in PGPASSWORD, or put the whole URI in "
                                 "MLKIT_SERVER_BACKEND_URI")


def test_unsupported_backend_is_refused() -> None:
    with pytest.raises(UsageError) as raised:
        tracking_server.backend_uri_from("mysql://u@db/mlflow", environ={})
    assert raised.value.message == "unsupported backend store mysql://u@db/mlflow"
    assert raised.value.exit_code == 2


def test_status_without_a_recorded_server(tmp_path: Path) -> None:
    assert tracking_server.status(tmp_path) == tracking_server.ServerState(running=False)


def test_status_of_a_server_whose_process_is_gone(tmp_path: Path) -> None:
    recorded = {"running": True, "pid": 2**22 + 12345, "url": "http://127.0.0.1:5000",
                "backend": "postgresql://u@db/m", "artifacts_destination": None, "log": None,
                "started_at": 1.0}
    (tmp_path / tracking_server.PID_FILE).write_text(json.dumps(recorded))
    state = tracking_server.status(tmp_path)
    assert state.running is False
    assert state.pid == recorded["pid"]


def test_status_shows_the_start_time_in_utc_and_json_keeps_the_seconds(tmp_path: Path, cli) -> None:
    recorded = {"running": True, "pid": 2**22 + 12345, "url": "http://127.0.0.1:5000",
                "backend": "postgresql://u@db/m", "artifacts_destination": None, "log": None,
                "started_at": 1795788899.4}
    (tmp_path / tracking_server.PID_FILE).write_text(json.dumps(recorded))
    table = cli("server", "status", "--state-dir", str(tmp_path))
    assert table.exit_code == 0, table.output
    assert [line.split() for line in table.stdout.splitlines() if "started_at" in line] == [
        ["started_at", "│", "2026-11-27T14:14:59Z"]]
    shown = cli("server", "status", "--state-dir", str(tmp_path), "--json")
    assert json.loads(shown.stdout)["started_at"] == 1795788899.4


def test_start_refuses_a_port_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as raised:
        tracking_server.start(tmp_path, "sqlite:///x.db", port=70000)
    assert raised.value.message == "--port 70000: must be between 1 and 65535"


@pytest.mark.parametrize(("error", "uri", "expected"), [
    (Exception("API request to endpoint /api/2.0/mlflow/runs/log-batch failed with exception "
               "HTTPConnectionPool(host='127.0.0.1', port=5000): Max retries exceeded ... "
               "Connection refused"),
     "http://u:pw@127.0.0.1:5000",
     "tracking server http://u:***@127.0.0.1:5000 became unreachable during the run (connection refused); "
     "nothing was registered"),
    (Exception("(psycopg.OperationalError) server closed the connection unexpectedly"),
     "postgresql://u@db:5432/mlflow",
     "tracking server postgresql://u@db:5432/mlflow became unreachable during the run (connection lost); "
     "nothing was registered"),
])
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

    def fake_urlopen(request, timeout):
        seen["url"], seen["auth"] = request.full_url, request.get_header("Authorization")
        raise OSError("refused")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    assert mlflow.probe_http("https://alice:pw@mlflow.example:8443/base", 1.0) == "refused"
    assert seen == {"url": "https://mlflow.example:8443/base/health", "auth": "Basic YWxpY2U6cHc="}
