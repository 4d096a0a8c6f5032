"""Shared fixtures: every test runs isolated from the user's machine (HOME, caches, CI variables)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _isolation import isolate
from typer.testing import CliRunner, Result

from mlkit.cli import app


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = isolate(monkeypatch, tmp_path_factory.mktemp("home"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TERM", "dumb")
    yield home
    _forget_mlflow_uris()


def _forget_mlflow_uris() -> None:
    """A test that sets MLflow's process-wide URIs (`mlflow.set_tracking_uri` as a user script would) leaves
    them to every later test of the process: put both back to unset (only when MLflow was imported)."""
    import sys

    for module, name in (
        ("mlflow.tracking._tracking_service.utils", "_tracking_uri"),
        ("mlflow.tracking._model_registry.utils", "_registry_uri"),
    ):
        if module in sys.modules and hasattr(sys.modules[module], name):
            setattr(sys.modules[module], name, None)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run `mlkit ARGS...` in-process from a directory; exceptions the CLI does not handle fail the test."""

    def run(*args: str, cwd: Path | None = None, input: str | None = None) -> Result:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        return CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)

    return run


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """Create a real project (git, DVC with a local remote in tmp_path) and return its root."""
    from mlkit.scaffold import init_project

    def make(name: str = "churn", template: str = "classification", **kwargs) -> Path:
        kwargs.setdefault("data_remote", tmp_path / f"remote-{name}")
        result = init_project(name, template=template, directory=tmp_path / name, **kwargs)
        return Path(result.root)

    return make
