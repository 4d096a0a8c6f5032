"""Remote tracking URIs: an unreachable server fails in one line, without its password, and nothing
falls back to the embedded store."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mlkit.engines import mlflow
from mlkit.errors import OperationError, UsageError
from mlkit.project import load_project


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def project_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlkit.scaffold import init_project

    base = tmp_path_factory.mktemp("team")
    return Path(init_project("team", directory=base / "team", data_remote=base / "remote").root)


def test_unreachable_http_server_fails_after_bounded_retries(
    project_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _closed_port()
    monkeypatch.setenv("MLKIT_TRACKING_URI", f"http://alice:hunter2@127.0.0.1:{port}")
    project = load_project(project_root)
    started = time.monotonic()
    with pytest.raises(OperationError) as raised:
        mlflow.client(project)
    elapsed = time.monotonic() - started
    assert raised.value.message.startswith(
        f"tracking server http://alice:***@127.0.0.1:{port} is unreachable after 4 attempts: "
    )
    assert "Connection refused" in raised.value.message
    assert "hunter2" not in raised.value.message + (raised.value.hint or "")
    assert 3.0 <= elapsed < 15.0  # 0.5 + 1 + 2 s of backoff, bounded
    assert not (project_root / ".mlkit" / "mlflow.db").exists()  # no fallback to the embedded store


def test_unreachable_server_through_the_cli_exits_1(
    project_root: Path, cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _closed_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    result = cli("models", "list", cwd=project_root)
    assert result.exit_code == 1
    error, hint = result.stderr.splitlines()[-2:]
    assert error.startswith(f"error: tracking server http://127.0.0.1:{port} is unreachable after 4 attempts: ")
    assert hint == (
        "hint: start it (`mlkit server start`), check tracking.uri in mlkit.yaml or "
        "MLKIT_TRACKING_URI, then run the command again"
    )
    assert "Traceback" not in result.stderr


def test_unreachable_postgresql_names_the_uri_without_password(
    project_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _closed_port()
    monkeypatch.setenv("MLKIT_TRACKING_URI", f"postgresql://mlkit:pa55word@127.0.0.1:{port}/mlflow")
    with pytest.raises(OperationError) as raised:
        mlflow.ensure_reachable(load_project(project_root).tracking_uri, attempts=2, base_delay=0.01)
    assert raised.value.message.startswith(
        f"tracking server postgresql://mlkit:***@127.0.0.1:{port}/mlflow is unreachable after 2 attempts: "
    )
    assert "pa55word" not in raised.value.message


def test_psycopg2_uri_without_the_driver_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "psycopg2" else real(name, *a))
    with pytest.raises(UsageError) as raised:
        mlflow.check_driver("postgresql+psycopg2://u:secret@db:5432/mlflow")
    assert raised.value.message == (
        "postgresql+psycopg2://u:***@db:5432/mlflow needs the psycopg2 driver, which is not installed"
    )
    assert raised.value.hint == ("pip install psycopg2-binary, or use postgresql:// with `pip install 'mlkit[team]'`")


def test_database_uris_keep_artifacts_in_the_project(project_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLKIT_TRACKING_URI", "postgresql://mlkit@127.0.0.1:5432/mlflow")
    assert (
        mlflow.artifact_location(load_project(project_root))
        == (project_root / ".mlkit" / "artifacts").resolve().as_uri()
    )
    monkeypatch.setenv("MLKIT_TRACKING_URI", "http://127.0.0.1:5000")
    assert mlflow.artifact_location(load_project(project_root)) is None  # the server's, proxied
