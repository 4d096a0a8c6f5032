"""Real services on loopback, started once per test session and stopped by PID at the end.

Every test in this folder is marked `services`; it is skipped (with the reason) only when a binary the
service needs is missing outside CI; with `CI` set (as `.ci/run` runs) a missing binary fails the test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _services as S
import pytest

# read before any test's isolation fixture clears CI from the environment
_IN_CI = bool(os.environ.get("CI"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.services)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if S.STARTUP_SECONDS:
        terminalreporter.section("service start-up times")
        for name, seconds in S.STARTUP_SECONDS.items():
            terminalreporter.write_line(f"{name:<32} {seconds:6.2f} s")
    if S.FIGURES:
        terminalreporter.section("load figures")
        for name, figure in S.FIGURES.items():
            terminalreporter.write_line(f"{name}: {figure}")


def _start(starter: Callable[[], Any]) -> Any:
    try:
        return starter()
    except S.ServiceUnavailable as exc:
        if _IN_CI:  # `.ci/run` installs every binary: a missing one is a broken CI, not a skip
            pytest.fail(f"{exc} (CI is set, so the services tests must run)")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def postgres() -> Iterator[S.Postgres]:
    server = _start(S.start_postgres)
    yield server
    S.stop_postgres(server)


@pytest.fixture(scope="session")
def s3() -> Iterator[S.S3Server]:
    server = _start(S.start_s3)
    yield server
    S.stop_s3(server)


@pytest.fixture(scope="session")
def tracking_server(postgres: S.Postgres, s3: S.S3Server) -> Iterator[S.TrackingServer]:
    """`mlkit server` over PostgreSQL, artifacts proxied to the S3 server."""
    server = S.start_tracking_server(
        postgres, database="team", extra_env=s3.env(), artifacts_destination=f"s3://{s3.bucket('mlflow')}/artifacts"
    )
    yield server
    S.stop_tracking_server(server)


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[S.DaskCluster]:
    cluster = _start(S.start_dask)
    yield cluster
    S.stop_dask(cluster)


@pytest.fixture(autouse=True)
def signed_in(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every services test signs in as the admin every helper-started tracking server shares, as a user
    would export it (the isolation fixture clears MLFLOW_* first)."""
    env = {"MLFLOW_TRACKING_USERNAME": S.ADMIN_USER, "MLFLOW_TRACKING_PASSWORD": S.ADMIN_PASSWORD}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def s3_env(s3: S.S3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The object-storage keys and endpoint in this test's environment, as a user would export them."""
    env = s3.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def pg_password(postgres: S.Postgres, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    return postgres.password


def subprocess_env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}
