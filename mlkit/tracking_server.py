"""A local MLflow tracking server for a small team: PostgreSQL behind it, proxied artifacts in front.

mlkit does not implement a server: it starts `mlflow server` with the right options, remembers it in
a pid file under `.mlkit/`, and stops it by that pid. Credentials never travel on a command line or
into a file: the backend URI reaches the child through MLflow's own environment variable, the database
password comes from ``PGPASSWORD`` (or a password inside ``MLKIT_SERVER_BACKEND_URI``), object-storage
keys from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``; the pid file and every message carry the
URI without its password.

Authentication is on unless ``--no-auth`` (loopback only): the server runs MLflow's basic-auth app.
Its admin account comes from ``MLFLOW_AUTH_ADMIN_USERNAME``/``MLFLOW_AUTH_ADMIN_PASSWORD`` when set,
otherwise mlkit generates a password once and keeps it, with the app's session secret, in
``server-auth/admin.json`` (mode 0600, folder 0700) next to the pid file. The admin password reaches the
server through its environment, never its command line. mlkit writes the app's configuration
(``server-auth/basic_auth.ini``: admin user name, user database, default permission) and points
``MLFLOW_AUTH_CONFIG_PATH`` at it; users and their permissions live in ``server-auth/auth.db``.

Health is checked part by part through the running server, as a client meets it: the HTTP endpoint,
the database (a one-row search) and the artifact store (a listing of its root), so a failing
PostgreSQL or object store is named as such rather than blamed on the server.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlkit import constants as C
from mlkit import credentials
from mlkit.engines import mlflow
from mlkit.errors import OperationError, PermissionDeniedError, UsageError, first_line
from mlkit.progress import Progress
from mlkit.uris import redact

PID_FILE = "server.json"
LOG_FILE = "server.log"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
LOOPBACK = ("127.0.0.1", "localhost", "::1")

AUTH_DIR = "server-auth"
ADMIN_FILE = "admin.json"
AUTH_CONFIG_FILE = "basic_auth.ini"
AUTH_DB_FILE = "auth.db"
DEFAULT_ADMIN = "admin"
PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS")
AUTH_CACHE_TTL_S = 30
# MLflow's own variables: the admin account the auth app creates on first start, its session secret
ENV_ADMIN_USERNAME = "MLFLOW_AUTH_ADMIN_USERNAME"
ENV_ADMIN_PASSWORD = "MLFLOW_AUTH_ADMIN_PASSWORD"
ENV_AUTH_CONFIG = "MLFLOW_AUTH_CONFIG_PATH"
ENV_SECRET_KEY = "MLFLOW_FLASK_SERVER_SECRET_KEY"
# MLflow's job runner (GenAI jobs, unused by mlkit) starts eight extra Python processes with the server
ENV_JOB_EXECUTION = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
OK = "ok"


@dataclass(frozen=True)
class ServerState:
    """What `mlkit server status` reports; the same object is what `--json` prints.

    ``health`` maps each part (``server``, ``database``, ``artifacts``) to ``ok`` or what went wrong;
    it is filled by :func:`status` while the server runs.
    """

    running: bool
    pid: int | None = None
    url: str | None = None
    backend: str | None = None
    artifacts_destination: str | None = None
    log: str | None = None
    started_at: float | None = None
    auth: bool | None = None
    certificate: str | None = None
    health: dict[str, str] = field(default_factory=dict)
    # why the record no longer names the server (its pid is gone or belongs to another process now)
    stale: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @property
    def problem(self) -> str | None:
        """One line naming the first failing part, or None when every checked part is ok."""
        for part, state in self.health.items():
            if state != OK:
                return f"the tracking server at {self.url} is running but its {part} check failed: {state}"
        return None


@dataclass(frozen=True, repr=False)
class AdminAccount:
    """The server's admin account; ``repr`` never shows the password."""

    username: str
    password: str
    source: str  # "environment" or the file it was read from

    def __repr__(self) -> str:
        return f"AdminAccount(username={self.username!r}, source={self.source!r})"

    def credentials(self) -> credentials.Credentials:
        return credentials.Credentials(username=self.username, password=self.password)


def backend_uri_from(option: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The backend store URI: the option (which must not carry a password) or the environment."""
    env = os.environ if environ is None else environ
    if option:
        if _has_password(option):
            raise UsageError(
                f"--backend-store-uri must not contain a password: {redact(option)}",
                hint=f"pass the password in PGPASSWORD, or put the whole URI in {C.ENV_SERVER_BACKEND_URI}",
            )
        uri = option
    else:
        uri = env.get(C.ENV_SERVER_BACKEND_URI, "")
    if not uri:
        raise UsageError(
            "no backend store given",
            hint=f"pass --backend-store-uri postgresql://USER@HOST:PORT/DB or set {C.ENV_SERVER_BACKEND_URI}",
        )
    if not (mlflow.is_database(uri) or uri.startswith("sqlite:///")):
        raise UsageError(
            f"unsupported backend store {redact(uri)}",
            hint="use a postgresql:// URI (or sqlite:///PATH for a quick local try)",
        )
    return uri


def start(
    state_dir: Path,
    backend_uri: str,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    artifacts_destination: str | None = None,
    workers: int = 2,
    timeout: float = 60.0,
    auth: bool = True,
    default_permission: str = "READ",
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> ServerState:
    """Start `mlflow server` in the background and wait until it answers its health check.

    ``auth``: MLflow's basic-auth app (the default); without it the server must bind loopback.
    ``tls_cert``/``tls_key``: serve https with that certificate (uvicorn's own TLS).
    """
    say = progress or (lambda _m: None)
    mlflow.check_driver(backend_uri)
    current = status(state_dir, check=False)
    if current.running:
        raise UsageError(
            f"a tracking server is already running at {current.url} (pid {current.pid})",
            hint="run `mlkit server stop` first, or `mlkit server status` to see it",
        )
    if not 0 < port < 65536:
        raise UsageError(f"--port {port}: must be between 1 and 65535")
    if not auth and host not in LOOPBACK:
        raise UsageError(
            f"--no-auth is only allowed on loopback, not on --host {host}",
            hint="drop --no-auth (users then sign in), or bind 127.0.0.1",
        )
    if default_permission not in PERMISSIONS:
        raise UsageError(f"--default-permission {default_permission}: must be one of {', '.join(PERMISSIONS)}")
    if (tls_cert is None) != (tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together", hint="pass both, or neither for plain http")
    for given in (tls_cert, tls_key):
        if given is not None and not given.is_file():
            raise UsageError(f"no such file: {given}")
    state_dir.mkdir(parents=True, exist_ok=True)
    destination = artifacts_destination or (state_dir / "server-artifacts").resolve().as_uri()
    scheme = "https" if tls_cert is not None else "http"
    url = f"{scheme}://{_url_host(host)}:{port}"
    cafile = str(tls_cert.resolve()) if tls_cert is not None else None
    if not _health(url, cafile):
        raise OperationError(f"something else already answers on {url}", hint="pick another port with --port")
    env = {**(os.environ if environ is None else environ)}
    _check_database(backend_uri, env)
    _check_artifact_store(destination, env)
    env["MLFLOW_BACKEND_STORE_URI"] = backend_uri  # not on argv: `ps` would show a password
    env.pop("MLFLOW_TRACKING_URI", None)
    env.setdefault(ENV_JOB_EXECUTION, "false")
    argv = [
        _mlflow_executable(),
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--serve-artifacts",
        "--artifacts-destination",
        destination,
    ]
    if host not in LOOPBACK:
        argv += ["--allowed-hosts", "*"]
    if auth:
        env.update(_prepare_auth(state_dir, env, default_permission))
        argv += ["--app-name", "basic-auth"]
    else:
        say(
            f"warning: authentication is off: anyone who reaches {url} can change runs, stages and the audit "
            "trail; use --no-auth only on a trusted machine"
        )
    if tls_cert is not None and tls_key is not None:
        argv += ["--uvicorn-opts", f"--ssl-certfile {tls_cert.resolve()} --ssl-keyfile {tls_key.resolve()}"]
    log_path = state_dir / LOG_FILE
    say(f"starting mlflow server on {url} over {redact(backend_uri)}" + (" with authentication" if auth else ""))
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )  # own group: stop takes uvicorn too
    started = time.time()
    state = ServerState(
        running=True,
        pid=process.pid,
        url=url,
        backend=redact(backend_uri),
        artifacts_destination=redact(destination),
        log=str(log_path),
        started_at=started,
        auth=auth,
        certificate=cafile,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise OperationError(
                f"mlflow server exited with code {process.returncode} while starting",
                hint=f"read the last lines of {log_path}",
            )
        if not _health(url, cafile):
            _write_state(state_dir, state, _process_identity(process.pid))
            return state
        time.sleep(0.25)
    _kill_group(process.pid, timeout=10)
    raise OperationError(
        f"mlflow server did not answer on {url} within {timeout:.0f}s",
        hint=f"read {log_path}; raise --timeout on a slow machine",
    )


def status(
    state_dir: Path, *, check: bool = True, environ: Mapping[str, str] | None = None, timeout: float = 10.0
) -> ServerState:
    """The server recorded in ``state_dir``, whether it still runs, and (``check``) the health of each part.

    The database and the artifact store are checked through the server, with the admin account (or the
    caller's ``MLFLOW_TRACKING_*`` credentials): what a client would meet, and no database password or
    object-storage key is needed here.
    """
    record = _read_record(state_dir)
    if record is None:
        return ServerState(running=False)
    recorded, identity = record
    stale = _not_the_server(recorded.pid, identity)
    state = dataclasses.replace(recorded, running=stale is None, health={}, stale=stale)
    if not (stale is None and check and state.url):
        return state
    return dataclasses.replace(state, health=_check_parts(state, state_dir, environ, timeout))


def stop(state_dir: Path, *, timeout: float = 20.0, progress: Progress | None = None) -> ServerState:
    """Stop the recorded server by its pid (the whole process group it leads) and forget it.

    The pid is trusted only while it names the process that was started (same start time, recorded with
    it): a pid the system has since given to another process is a stale record, removed without
    signalling anything.
    """
    record = _read_record(state_dir)
    if record is None or record[0].pid is None:
        raise UsageError(
            "no tracking server is recorded for this project",
            hint="run `mlkit server start --backend-store-uri ...` first",
        )
    recorded, identity = record
    assert recorded.pid is not None
    stale = _not_the_server(recorded.pid, identity)
    if stale is None:
        if progress:
            progress(f"stopping mlflow server (pid {recorded.pid})")
        _kill_group(recorded.pid, timeout=timeout)
    elif progress:
        progress(f"warning: {stale}; removed the stale record, stopped nothing")
    (state_dir / PID_FILE).unlink(missing_ok=True)
    return dataclasses.replace(recorded, running=False, stale=stale)


def admin_account(state_dir: Path | None, environ: Mapping[str, str] | None = None) -> AdminAccount | None:
    """The admin account: ``MLFLOW_AUTH_ADMIN_*`` from the environment, else the one stored in ``state_dir``."""
    env = os.environ if environ is None else environ
    if env.get(ENV_ADMIN_PASSWORD):
        return AdminAccount(env.get(ENV_ADMIN_USERNAME) or DEFAULT_ADMIN, env[ENV_ADMIN_PASSWORD], "environment")
    if state_dir is None:
        return None
    path = state_dir / AUTH_DIR / ADMIN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return AdminAccount(str(data["username"]), str(data["password"]), str(path))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def add_user(
    url: str,
    username: str,
    password: str,
    *,
    admin: credentials.Credentials,
    make_admin: bool = False,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Create ``username`` on the server at ``url`` (signed in as ``admin``); returns what the server says."""
    if not username or not password:
        raise UsageError("a user needs a name and a non-empty password")
    created = _api(
        url,
        "POST",
        "/api/2.0/mlflow/users/create",
        admin,
        environ,
        {"username": username, "password": password},
        what=f"create user {username}",
    )
    if make_admin:
        _api(
            url,
            "PATCH",
            "/api/2.0/mlflow/users/update-admin",
            admin,
            environ,
            {"username": username, "is_admin": True},
            what=f"make {username} an admin",
        )
    user = created.get("user", {}) if isinstance(created, dict) else {}
    return {"username": username, "id": user.get("id"), "is_admin": make_admin}


def grant(
    url: str,
    username: str,
    *,
    permission: str,
    admin: credentials.Credentials,
    model: str | None = None,
    experiment: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Give ``username`` ``permission`` on a registered model or an experiment (by name)."""
    if permission not in PERMISSIONS:
        raise UsageError(f"--permission {permission}: must be one of {', '.join(PERMISSIONS)}")
    if (model is None) == (experiment is None):
        raise UsageError("name exactly one of --model or --experiment")
    if model is not None:
        resource_type, resource_id, label = "registered_model", model, f"registered model {model!r}"
    else:
        assert experiment is not None
        from urllib.parse import quote

        found = _api(
            url,
            "GET",
            f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={quote(experiment)}",
            admin,
            environ,
            None,
            what=f"find experiment {experiment}",
        )
        resource_type, label = "experiment", f"experiment {experiment!r}"
        resource_id = str(found.get("experiment", {}).get("experiment_id", "")) if isinstance(found, dict) else ""
    _api(
        url,
        "POST",
        "/api/3.0/mlflow/users/permissions/grant",
        admin,
        environ,
        {"username": username, "resource_type": resource_type, "resource_id": resource_id, "permission": permission},
        what=f"grant {permission} on {label} to {username}",
    )
    return {
        "username": username,
        "resource_type": resource_type,
        "resource": model or experiment,
        "permission": permission,
    }


# --- helpers ----------------------------------------------------------------------------------------


def _has_password(uri: str) -> bool:
    from urllib.parse import urlsplit

    try:
        return bool(urlsplit(uri).password)
    except ValueError:
        return False


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _health(url: str, cafile: str | None = None, timeout: float = 2.0) -> str:
    """'' when the server at ``url`` answers its health check, else why not (trusting ``cafile`` too)."""
    return mlflow.answer_of(url + "/health", timeout=timeout, context=_tls(url, cafile))


def _tls(url: str, cafile: str | None) -> Any:
    """What a client trusts (``MLFLOW_TRACKING_SERVER_CERT_PATH`` ...), plus the server's own certificate."""
    context = credentials.ssl_context(url)
    if context is not None and cafile:
        context.load_verify_locations(cafile)
    return context


def _api(
    url: str,
    method: str,
    path: str,
    creds: credentials.Credentials,
    environ: Mapping[str, str] | None,
    payload: Mapping[str, Any] | None,
    *,
    what: str,
    cafile: str | None = None,
    timeout: float = 30.0,
) -> Any:
    """One JSON call to the server's REST API; 401/403 become :class:`PermissionDeniedError`."""
    import urllib.error
    import urllib.request

    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    header = creds.header()
    if header:
        request.add_header("Authorization", header)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_tls(url, cafile)) as response:
            body = response.read().decode()
    except urllib.error.HTTPError as exc:
        detail = _error_detail(exc)
        if exc.code in (401, 403):
            who = creds.username or "the token holder"
            raise PermissionDeniedError(
                f"the tracking server refused {who} to {what} (HTTP {exc.code}): {detail}",
                hint="sign in as an admin: the server's state folder holds its "
                f"account, or set {credentials.ENV_USERNAME}/{credentials.ENV_PASSWORD}",
            ) from None
        if exc.code == 404 and "/users/" in path:
            raise OperationError(
                f"the tracking server at {url} has no user management (HTTP 404)",
                hint="it runs without authentication; restart it without --no-auth",
            ) from None
        raise OperationError(f"could not {what}: HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OperationError(
            f"tracking server {url} is unreachable: {reason}", hint="`mlkit server status` checks it"
        ) from None
    try:
        return json.loads(body) if body.strip() else {}
    except ValueError:
        return {}


def _error_detail(exc: Any) -> str:
    try:
        text = exc.read().decode(errors="replace")
    except Exception:
        return str(exc.reason)
    try:
        message = json.loads(text).get("message")
    except (ValueError, AttributeError):
        message = None
    return first_line(Exception(message or text or exc.reason))


def _check_parts(
    state: ServerState, state_dir: Path, environ: Mapping[str, str] | None, timeout: float
) -> dict[str, str]:
    """``server``, ``database`` and ``artifacts``: each ``ok`` or what failed, checked through the server."""
    url = str(state.url)
    health = {"server": _health(url, state.certificate, timeout) or OK}
    if health["server"] != OK:
        return health
    admin = admin_account(state_dir, environ)
    creds = admin.credentials() if admin is not None else credentials.from_environment(environ)
    for part, path in (
        ("database", "/api/2.0/mlflow/experiments/search?max_results=1"),
        ("artifacts", "/api/2.0/mlflow-artifacts/artifacts?path="),
    ):
        try:
            _api(
                url,
                "GET",
                path,
                creds,
                environ,
                None,
                what=f"check the {part}",
                cafile=state.certificate,
                timeout=timeout,
            )
            health[part] = OK
        except PermissionDeniedError:
            health[part] = "not checked: no admin account in the state folder and no MLFLOW_TRACKING_* credentials"
        except OperationError as exc:
            health[part] = exc.message.removeprefix(f"could not check the {part}: ")
    return health


def _check_database(uri: str, env: Mapping[str, str], timeout: float = 10.0) -> None:
    """Connect to the backend store before starting: a database that is down is named as such."""
    if not mlflow.is_database(uri):
        return
    import sqlalchemy

    args: dict[str, Any] = {"connect_timeout": int(timeout)}
    if not _has_password(uri) and env.get("PGPASSWORD"):
        args["password"] = env["PGPASSWORD"]  # an environ given by the caller, not this process's
    engine = sqlalchemy.create_engine(uri, connect_args=args, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:
        reason = first_line(getattr(exc, "orig", None) or exc)
        raise OperationError(
            f"the database {redact(uri)} is unreachable: {_scrub(reason, env)}",
            hint="start PostgreSQL, or fix --backend-store-uri / PGPASSWORD",
        ) from None
    finally:
        engine.dispose()


def _check_artifact_store(destination: str, env: Mapping[str, str]) -> None:
    """Reach the artifact destination before starting: its bucket (S3) or its folder (file)."""
    from urllib.parse import urlsplit

    parts = urlsplit(destination)
    if parts.scheme == "s3":
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            return  # the server will say so itself; `pip install 'mlkit[s3]'`
        client = boto3.client(
            "s3",
            endpoint_url=env.get(C.ENV_S3_ENDPOINT_URL) or None,
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
            region_name=env.get("AWS_DEFAULT_REGION") or "us-east-1",
            config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 1}),
        )
        try:
            client.head_bucket(Bucket=parts.netloc)
        except Exception as exc:
            raise OperationError(
                f"the artifact store {redact(destination)} is unreachable: {first_line(exc)}",
                hint=f"start the object store, or check {C.ENV_S3_ENDPOINT_URL} and the AWS_* keys",
            ) from None
    elif parts.scheme == "file":
        folder = Path(parts.path)
        folder.mkdir(parents=True, exist_ok=True)


def _scrub(text: str, env: Mapping[str, str]) -> str:
    password = env.get("PGPASSWORD")
    return text.replace(password, "***") if password else text


def _prepare_auth(state_dir: Path, env: Mapping[str, str], default_permission: str) -> dict[str, str]:
    """Write the auth app's configuration (and, once, the admin account); return the server's variables."""
    folder = state_dir / AUTH_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)
    stored_path = folder / ADMIN_FILE
    try:
        stored = json.loads(stored_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        stored = {}
    if not isinstance(stored, dict):
        stored = {}
    admin = admin_account(None, env)
    secret = env.get(ENV_SECRET_KEY) or stored.get("secret_key") or secrets.token_urlsafe(32)
    if admin is None:  # generated once, kept 0600; the environment wins when set
        admin = AdminAccount(
            str(stored.get("username") or DEFAULT_ADMIN),
            str(stored.get("password") or secrets.token_urlsafe(24)),
            str(stored_path),
        )
        _write_private(
            stored_path,
            json.dumps({"username": admin.username, "password": admin.password, "secret_key": secret}, indent=2) + "\n",
        )
    elif stored.get("secret_key") != secret and not env.get(ENV_SECRET_KEY):
        _write_private(stored_path, json.dumps({"secret_key": secret}, indent=2) + "\n")
    config = folder / AUTH_CONFIG_FILE
    _write_private(
        config,
        "\n".join(
            [
                "# written by `mlkit server start`; the admin password is not here (it is in the server's environment)",
                "[mlflow]",
                f"default_permission = {default_permission}",
                f"database_uri = sqlite:///{(folder / AUTH_DB_FILE).resolve()}",
                f"admin_username = {admin.username}",
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
                "# each password check is a deliberately slow hash: remember a good one for a while (per worker),",
                "# so a promotion's dozens of requests do not each pay it; a changed password or deleted user",
                "# may keep working on other workers for at most this long",
                f"auth_cache_ttl_seconds = {AUTH_CACHE_TTL_S}",
                "",
            ]
        ),
    )
    return {
        ENV_AUTH_CONFIG: str(config.resolve()),
        ENV_ADMIN_USERNAME: admin.username,
        ENV_ADMIN_PASSWORD: admin.password,
        ENV_SECRET_KEY: secret,
    }


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, never world-readable even for an instant."""
    partial = path.with_suffix(path.suffix + ".tmp")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    partial.replace(path)


def _mlflow_executable() -> str:
    candidate = Path(sys.executable).with_name("mlflow")
    return str(candidate) if candidate.exists() else "mlflow"


def _write_state(state_dir: Path, state: ServerState, identity: str | None) -> None:
    target = state_dir / PID_FILE
    partial = target.with_suffix(".tmp")
    record = {**state.as_dict(), _IDENTITY_KEY: identity}
    partial.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    partial.replace(target)


def _read_record(state_dir: Path) -> tuple[ServerState, str | None] | None:
    """The recorded server and the identity of its process (None in a record from an older mlkit)."""
    try:
        data = json.loads((state_dir / PID_FILE).read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(ServerState)}
        state = ServerState(**{k: v for k, v in data.items() if k in known})
    except (FileNotFoundError, ValueError, TypeError, AttributeError):
        return None
    identity = data.get(_IDENTITY_KEY)
    pid = state.pid
    if not (pid is None or (isinstance(pid, int) and not isinstance(pid, bool) and pid > 1)):
        return None  # 0, -1 and 1 would signal a whole group or init: never a server of ours
    return state, identity if isinstance(identity, str) else None


_IDENTITY_KEY = "process_identity"


def _process_identity(pid: int) -> str | None:
    """What tells process ``pid`` from a later one given the same pid: when it started (with the boot it
    started in). None when it is gone or cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return _ps_field(pid, "lstart")
    # field 22, counted after the command name, which is in parentheses and may hold spaces
    fields = stat.rpartition(")")[2].split()
    return f"{boot}/{fields[19]}" if len(fields) > 19 else None


def _command_line(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return _ps_field(pid, "command")


def _ps_field(pid: int, name: str) -> str | None:
    """``ps -o NAME= -p PID`` where there is no /proc (macOS, the BSDs)."""
    try:
        out = subprocess.run(["ps", "-o", f"{name}=", "-p", str(pid)], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _not_the_server(pid: int | None, identity: str | None) -> str | None:
    """None when ``pid`` is still the server that was recorded, else why the record is stale."""
    if pid is None or not _pid_alive(pid):
        return f"the recorded server (pid {pid}) is no longer running"
    if identity is not None:
        if _process_identity(pid) != identity:
            return f"pid {pid} now belongs to another process, not the recorded server"
    else:  # a record from before identities were kept: the command line must still be mlflow's server
        command = _command_line(pid) or ""
        if "mlflow" not in command or " server" not in command:
            return f"pid {pid} now belongs to another process ({command[:60] or 'unknown'}), not the recorded server"
    try:
        if os.getpgid(pid) != pid:
            return f"pid {pid} no longer leads the server's process group"
    except OSError:
        return f"the recorded server (pid {pid}) is no longer running"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this very process counts as gone
        finished, _ = os.waitpid(pid, os.WNOHANG)
        return finished == 0
    except ChildProcessError:
        return True


def _kill_group(pid: int, *, timeout: float) -> None:
    """SIGTERM the process group ``pid`` leads (mlflow and its uvicorn workers), SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _pid_alive(pid)  # reaps it when it is our own child
            if not _group_alive(pid):
                return
            time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
