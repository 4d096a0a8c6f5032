"""`mlkit server`: a local MLflow tracking server over PostgreSQL for a small team."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlkit import constants as C
from mlkit import credentials
from mlkit.cli import _output
from mlkit.clock import utc_iso
from mlkit.errors import OperationError, ProjectNotFoundError, UsageError
from mlkit.project import find_root

# mlkit.tracking_server is imported inside each command: `mlkit --help` would pay for its imports
if TYPE_CHECKING:
    from mlkit import tracking_server

app = typer.Typer(
    help="Run a shared MLflow tracking server (PostgreSQL store, proxied artifacts).", no_args_is_help=True
)
user_app = typer.Typer(
    help="Manage the users of a tracking server that runs with authentication.", no_args_is_help=True
)
app.add_typer(user_app, name="user")

ENV_NEW_PASSWORD = "MLKIT_NEW_USER_PASSWORD"

_STATE_DIR_HELP = "Where the pid file and log live (default: the project's .mlkit/, or ./.mlkit outside one)."


@app.command("start")
def start(
    backend_store_uri: str = typer.Option(
        None,
        "--backend-store-uri",
        "-b",
        metavar="URI",
        help="postgresql://USER@HOST:PORT/DB, without a password (it comes from PGPASSWORD). "
        f"Default: {C.ENV_SERVER_BACKEND_URI}, which may carry the password.",
    ),
    artifacts_destination: str = typer.Option(
        None,
        "--artifacts-destination",
        "-a",
        metavar="URI",
        help="Where the server keeps artifacts, e.g. s3://bucket/mlflow (endpoint from "
        f"{C.ENV_S3_ENDPOINT_URL}, keys from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY). "
        "Default: .mlkit/server-artifacts.",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; 0.0.0.0 exposes it to the network."),
    port: int = typer.Option(5000, "--port", "-p", help="Port to listen on."),
    workers: int = typer.Option(2, "--workers", "-w", min=1, help="Server worker processes."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for the server to answer."),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Run without authentication (loopback only, prints a warning)."
    ),
    default_permission: str = typer.Option(
        "READ",
        "--default-permission",
        metavar="PERMISSION",
        help="What users may do with experiments and models nobody granted them: READ, USE, EDIT, MANAGE "
        "or NO_PERMISSIONS.",
    ),
    tls_cert: Path = typer.Option(None, "--tls-cert", metavar="FILE", help="Serve https with this certificate."),
    tls_key: Path = typer.Option(None, "--tls-key", metavar="FILE", help="The certificate's private key."),
    state_dir: Path = typer.Option(None, "--state-dir", help=_STATE_DIR_HELP),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Start an MLflow tracking server in the background, bound to 127.0.0.1 unless told otherwise.

    Users sign in (MLflow's basic-auth app) unless --no-auth. The admin account comes from
    MLFLOW_AUTH_ADMIN_USERNAME/MLFLOW_AUTH_ADMIN_PASSWORD, or is generated once and kept in
    .mlkit/server-auth/admin.json (mode 0600). Add users with `mlkit server user add`.

    Point projects at it with `tracking.uri: http://127.0.0.1:5000` in mlkit.yaml or
    MLKIT_TRACKING_URI. Stop it with `mlkit server stop`.

    Example: PGPASSWORD=... mlkit server start -b postgresql://mlflow@127.0.0.1:5432/mlflow -a s3://mlflow/artifacts
    """
    from mlkit import tracking_server

    uri = tracking_server.backend_uri_from(backend_store_uri)
    folder = _state_dir(state_dir)
    state = tracking_server.start(
        folder,
        uri,
        host=host,
        port=port,
        artifacts_destination=artifacts_destination,
        workers=workers,
        timeout=timeout,
        auth=not no_auth,
        default_permission=default_permission.upper(),
        tls_cert=tls_cert,
        tls_key=tls_key,
        progress=_output.status,
    )
    _render(state, json_)
    if not json_:
        _output.status(f"use it: export {C.ENV_TRACKING_URI}={state.url}  (or tracking.uri in mlkit.yaml)")
        if state.auth:
            admin = tracking_server.admin_account(folder)
            where = admin.source if admin is not None else "the environment"
            _output.status(
                f"sign in: {credentials.ENV_USERNAME} and {credentials.ENV_PASSWORD}; "
                f"the admin account is in {where}; add users with `mlkit server user add NAME`"
            )


@app.command("status")
def status(
    state_dir: Path = typer.Option(None, "--state-dir", help=_STATE_DIR_HELP),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show whether the recorded tracking server runs, where, over which store, and the health of each part.

    The server, its database and its artifact store are checked separately, through the server; exit
    code 1 names the part that fails.

    Example: mlkit server status --json
    """
    from mlkit import tracking_server

    state = tracking_server.status(_state_dir(state_dir))
    _render(state, json_)
    if state.problem:
        raise OperationError(state.problem, hint=f"read {state.log}; the failing part is named above")


@app.command("stop")
def stop(
    state_dir: Path = typer.Option(None, "--state-dir", help=_STATE_DIR_HELP),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Stop the recorded tracking server by its pid.

    Example: mlkit server stop
    """
    from mlkit import tracking_server

    _render(tracking_server.stop(_state_dir(state_dir), progress=_output.status), json_)


_URL_HELP = (
    f"The server (default: the one recorded in the state folder, else {C.ENV_TRACKING_URI}). "
    "Sign in as an admin: the recorded admin account, or MLFLOW_TRACKING_USERNAME/PASSWORD."
)


@user_app.command("add")
def user_add(
    name: str = typer.Argument(..., help="The new user's name."),
    admin: bool = typer.Option(False, "--admin", help="Make the user an admin (every permission)."),
    url: str = typer.Option(None, "--url", help=_URL_HELP),
    state_dir: Path = typer.Option(None, "--state-dir", help=_STATE_DIR_HELP),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Create a user; the password is read from MLKIT_NEW_USER_PASSWORD or stdin, never the command line.

    New users get the server's default permission (READ unless `server start --default-permission`)
    on what others created, and MANAGE on what they create; `mlkit server user grant` gives more.

    Example: printf '%s' "$ALICE_PASSWORD" | mlkit server user add alice
    """
    import os
    import sys

    from mlkit import tracking_server

    password = os.environ.get(ENV_NEW_PASSWORD)
    if password is None:
        if sys.stdin.isatty():
            password = typer.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True)
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError(
            f"no password given for {name}",
            hint=f"pipe it on stdin or set {ENV_NEW_PASSWORD}; never pass it as an argument",
        )
    server, creds = _server_and_admin(url, state_dir)
    result = tracking_server.add_user(server, name, password, admin=creds, make_admin=admin)
    _output.emit(result, json_output=json_, table=result)


@user_app.command("grant")
def user_grant(
    name: str = typer.Argument(..., help="The user."),
    permission: str = typer.Option(
        ...,
        "--permission",
        metavar="PERMISSION",
        help="READ, USE, EDIT (move staging), MANAGE (move production) or NO_PERMISSIONS.",
    ),
    model: str = typer.Option(None, "--model", help="A registered model's name."),
    experiment: str = typer.Option(None, "--experiment", help="An experiment's name (to train into it: EDIT)."),
    url: str = typer.Option(None, "--url", help=_URL_HELP),
    state_dir: Path = typer.Option(None, "--state-dir", help=_STATE_DIR_HELP),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Give a user a permission on one registered model or experiment.

    Example: mlkit server user grant alice --model churn --permission MANAGE
    """
    from mlkit import tracking_server

    server, creds = _server_and_admin(url, state_dir)
    result = tracking_server.grant(
        server, name, permission=permission.upper(), admin=creds, model=model, experiment=experiment
    )
    _output.emit(result, json_output=json_, table=result)


def _server_and_admin(url: str | None, state_dir: Path | None) -> tuple[str, credentials.Credentials]:
    import os

    from mlkit import tracking_server

    folder = _state_dir(state_dir)
    recorded = tracking_server.status(folder, check=False)
    server = url or (recorded.url if recorded.running else None) or os.environ.get(C.ENV_TRACKING_URI)
    if not server:
        raise UsageError(
            "no tracking server to manage",
            hint=f"start one (`mlkit server start`), or pass --url / set {C.ENV_TRACKING_URI}",
        )
    admin = tracking_server.admin_account(folder) if not url or url == recorded.url else None
    creds = admin.credentials() if admin is not None else credentials.from_environment()
    if not creds.present:
        raise UsageError(
            f"no admin account for {server}",
            hint=f"set {credentials.ENV_USERNAME} and {credentials.ENV_PASSWORD} to an admin's",
        )
    return server.rstrip("/"), creds


def _state_dir(given: Path | None) -> Path:
    if given is not None:
        return given.resolve()
    try:
        return find_root() / C.STATE_DIR
    except ProjectNotFoundError:
        return (Path.cwd() / C.STATE_DIR).resolve()


def _render(state: tracking_server.ServerState, json_: bool) -> None:
    data = state.as_dict()
    readable = {
        **data,
        "started_at": _utc(state.started_at),  # --json keeps seconds since the epoch
        "health": "; ".join(f"{part}: {result}" for part, result in state.health.items()),
    }
    _output.emit(
        data,
        json_output=json_,
        table=readable,
        summary_markdown=_output.mapping_markdown("mlkit server", readable),
        outputs={"server_running": str(state.running).lower(), "server_url": state.url or ""},
    )


def _utc(seconds: float | None) -> str | None:
    return None if seconds is None else utc_iso(seconds * 1000)
