"""`mlkit server`: a local MLflow tracking server over PostgreSQL for a small team."""

from __future__ import annotations

from pathlib import Path

import typer

from mlkit import constants as C
from mlkit import tracking_server
from mlkit.cli import _output
from mlkit.clock import utc_iso
from mlkit.errors import ProjectNotFoundError
from mlkit.project import find_root

app = typer.Typer(help="Run a shared MLflow tracking server (PostgreSQL store, proxied artifacts).",
                  no_args_is_help=True)

_STATE_DIR_HELP = "Where the pid file and log live (default: the project's .mlkit/, or ./.mlkit outside one)."


@app.command("start")
def start(
    backend_store_uri: str = typer.Option(
        None, "--backend-store-uri", "-b", metavar="URI",
        help="postgresql://USER@HOST:PORT/DB, without a password (it comes from PGPASSWORD). "
        f"Default: {C.ENV_SERVER_BACKEND_URI}, which may carry the password."),
    artifacts_destination: str = typer.Option(
        None, "--artifacts-destination", "-a", metavar="URI",
        help="Where the server keeps artifacts, e.g. s3://bucket/mlflow (endpoint from "
        f"{C.ENV_S3_ENDPOINT_URL}, keys from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY). "
        "Default: .mlkit/server-artifacts."),
    host: str = typer.Option("127.0.0.1", "--host",
                             help="Interface to bind; 0.0.0.0 exposes it to the network."),
    port: int = typer.Option(5000, "--port", "-p", help="Port to listen on."),
    workers: int = typer.Option(2, "--workers", "-w", min=1, help="Server worker processes."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for the server to answer."),
    state_dir: Path = typer.Option(None, "--state-dir", help=_STATE_DIR_HELP),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Start an MLflow tracking server in the background, bound to 127.0.0.1 unless told otherwise.

    Point projects at it with `tracking.uri: http://127.0.0.1:5000` in mlkit.yaml or
    MLKIT_TRACKING_URI. Stop it with `mlkit server stop`.

    Example: PGPASSWORD=... mlkit server start -b postgresql://mlflow@127.0.0.1:5432/mlflow -a s3://mlflow/artifacts
    """
    uri = tracking_server.backend_uri_from(backend_store_uri)
    state = tracking_server.start(_state_dir(state_dir), uri, host=host, port=port,
                                  artifacts_destination=artifacts_destination, workers=workers,
                                  timeout=timeout, progress=_output.status)
    _render(state, json_)
    if not json_:
        _output.status(f"use it: export {C.ENV_TRACKING_URI}={state.url}  (or tracking.uri in mlkit.yaml)")


@app.command("status")
def status(
    state_dir: Path = typer.Option(None, "--state-dir", help=_STATE_DIR_HELP),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show whether the recorded tracking server runs, where, and over which store (no password).

    Example: mlkit server status --json
    """
    _render(tracking_server.status(_state_dir(state_dir)), json_)


@app.command("stop")
def stop(
    state_dir: Path = typer.Option(None, "--state-dir", help=_STATE_DIR_HELP),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Stop the recorded tracking server by its pid.

    Example: mlkit server stop
    """
    _render(tracking_server.stop(_state_dir(state_dir), progress=_output.status), json_)


def _state_dir(given: Path | None) -> Path:
    if given is not None:
        return given.resolve()
    try:
        return find_root() / C.STATE_DIR
    except ProjectNotFoundError:
        return (Path.cwd() / C.STATE_DIR).resolve()


def _render(state: tracking_server.ServerState, json_: bool) -> None:
    data = state.as_dict()
    readable = {**data, "started_at": _utc(state.started_at)}  # --json keeps seconds since the epoch
    _output.emit(data, json_output=json_, table=readable,
                 summary_markdown=_output.mapping_markdown("mlkit server", readable),
                 outputs={"server_running": str(state.running).lower(), "server_url": state.url or ""})


def _utc(seconds: float | None) -> str | None:
    return None if seconds is None else utc_iso(seconds * 1000)
