"""`mlkit serve`: the registered model behind HTTP, on asyncio streams, with micro-batching and hot swap.

Endpoints: ``POST /invocations`` (MLflow's scoring formats, see :mod:`mlkit.serving.payload`),
``GET /health`` (and MLflow's ``/ping``: 503 until the model is loaded and while draining, then 200),
``GET /version`` (model, version, stage, run and commit), ``GET /metrics`` (Prometheus text).

One event loop parses HTTP/1.1 (keep-alive, Content-Length or chunked bodies); predictions run on one
thread beside it (:mod:`mlkit.serving.batching`), so the loop keeps reading requests while the model
works. A background task follows the stage's alias: a new version loads beside the old one and then
replaces it in one assignment. SIGTERM or SIGINT stops accepting connections, answers every request
already received, writes the prediction log and returns; a second signal (or the drain timeout) stops
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import signal
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlkit.errors import OperationError, UsageError
from mlkit.progress import Progress, or_silent
from mlkit.serving import DEFAULT_HOST, DEFAULT_PORT, ENV_TOKEN, predlog
from mlkit.serving.batching import BatchError, MicroBatcher, Scored
from mlkit.serving.metrics import ServerMetrics
from mlkit.serving.payload import PayloadError, parse, predictions_json
from mlkit.serving.source import LoadedModel, ModelSource

if TYPE_CHECKING:
    from mlkit.project import Project

HEADER_LIMIT = 64 * 1024
VERSION_HEADER = "X-Mlkit-Model-Version"
LINGER_SECONDS = 2.0  # after a 413, how long the rest of the body is read and dropped
LINGER_BYTES = 64 * 1024 * 1024

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class ServeOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # 0: a free port
    poll_seconds: float = 10.0  # how often the stage's alias is checked; 0: never (no hot swap)
    max_batch_rows: int = 512
    max_wait_ms: float = 2.0
    max_body_bytes: int = 16 * 1024 * 1024
    drain_seconds: float = 30.0
    token: str | None = None  # the bearer token (read from ENV_TOKEN by the caller)
    log: bool = True
    log_sample: float = 1.0
    log_max_bytes: int = 1024 * 1024 * 1024
    log_folder: Path | None = None  # default: <project>/.mlkit/predictions
    workers: int = 1  # server processes sharing the port (SO_REUSEPORT); each loads the model
    reuse_port: bool = False  # set for each worker of a multi-process server


@dataclass
class ServeResult:
    url: str
    requests: int  # /invocations requests answered
    drained: bool  # every request received was answered before the server stopped
    versions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "requests": self.requests, "drained": self.drained, "versions": self.versions}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    project: Project,
    ref: str,
    options: ServeOptions | None = None,
    progress: Progress | None = None,
    on_listening: Callable[[str], None] | None = None,
) -> ServeResult:
    """Serve ``ref`` (``NAME@STAGE`` or ``NAME/VERSION``) until SIGTERM or SIGINT; blocks.

    ``on_listening`` receives the URL as soon as the socket is bound (before the model is loaded: until
    then ``/health`` answers 503).
    """
    source = ModelSource(project, ref)
    options = options or ServeOptions()
    log_folder = options.log_folder or predlog.log_folder(project.root)
    if options.workers <= 1:
        app = _Server(source, options, or_silent(progress), log_folder)
        return asyncio.run(app.main(on_listening or (lambda _url: None)))
    return _serve_workers(project, source, options, or_silent(progress), on_listening, log_folder)


def _serve_workers(
    project: Project,
    source: ModelSource,
    options: ServeOptions,
    say: Progress,
    on_listening: Callable[[str], None] | None,
    log_folder: Path,
) -> ServeResult:
    """``options.workers`` processes on one port: the kernel spreads connections over them (SO_REUSEPORT).

    This process is worker 0 and the others' parent: it binds first (so port 0 resolves once), starts
    the others, and on SIGTERM passes the signal on and waits for each to drain.
    """
    import multiprocessing

    if not hasattr(socket, "SO_REUSEPORT"):
        raise UsageError("--workers needs SO_REUSEPORT, which this platform lacks", hint="use --workers 1")
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((options.host, options.port))
    except OSError as exc:
        sock.close()
        raise OperationError(
            f"cannot bind {options.host}:{options.port}: {exc.strerror}", hint="choose another --port"
        ) from None
    worker_options = replace(
        options, port=int(sock.getsockname()[1]), workers=1, reuse_port=True, log_folder=log_folder
    )
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_worker, args=(project.root, source.label, worker_options), name=f"mlkit-serve-{i}")
        for i in range(1, options.workers)
    ]
    for child in children:
        child.start()
    say(f"started {len(children)} more worker processes on port {worker_options.port}")
    app = _Server(source, worker_options, say, log_folder)
    return asyncio.run(app.main(on_listening or (lambda _url: None), sock=sock, children=children))


def _worker(root: Path, ref: str, options: ServeOptions) -> None:
    """One more worker process (spawned): the same server on the same port, silent."""
    import sys

    from mlkit.errors import MlkitError
    from mlkit.project import load_project

    try:
        serve(load_project(root), ref, options)
    except MlkitError:
        sys.exit(1)


class _Server:
    def __init__(self, source: ModelSource, options: ServeOptions, say: Progress, log_folder: Path) -> None:
        self.source = source
        self.options = options
        self.say = say
        self.metrics = ServerMetrics()
        self.current: LoadedModel | None = None
        self.versions: list[str] = []
        self.draining = False
        self.inflight = 0
        self.connections: set[asyncio.Task[Any]] = set()
        self.requests = 0
        self.log: predlog.PredictionLog | None = None
        if options.log:
            self.log = predlog.PredictionLog(
                log_folder, sample=options.log_sample, max_bytes=options.log_max_bytes, on_written=self._logged
            )
        self._token = options.token.encode() if options.token else None
        self._stop: asyncio.Event | None = None  # created inside the loop
        self._signals = 0
        self._force = False
        self._failure: BaseException | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------
    async def main(
        self, on_listening: Callable[[str], None], sock: socket.socket | None = None, children: Sequence[Any] = ()
    ) -> ServeResult:
        loop = asyncio.get_running_loop()
        stop = self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread, or Windows
                loop.add_signal_handler(sig, self._on_signal)
        preloaded = self.options.reuse_port and sock is None
        if preloaded and not await self._load_current():
            # a worker process listens only once its model is loaded: the kernel sends it no connection
            # before, so no client of a multi-process server ever meets one that is still loading
            assert self._failure is not None
            raise self._failure
        if sock is not None:
            server = await asyncio.start_server(self._connection, sock=sock, limit=HEADER_LIMIT)
        else:
            server = await asyncio.start_server(
                self._connection,
                self.options.host,
                self.options.port,
                limit=HEADER_LIMIT,
                reuse_address=True,
                reuse_port=self.options.reuse_port or None,
            )
        bound = server.sockets[0]
        host, port = bound.getsockname()[:2]
        shown = f"[{host}]" if bound.family == socket.AF_INET6 else host
        url = f"http://{shown}:{port}"
        on_listening(url)
        self.batcher = MicroBatcher(
            lambda: self.current,
            max_rows=self.options.max_batch_rows,
            max_wait_ms=self.options.max_wait_ms,
            on_batch=self.metrics.batch,
            on_scored=self._log_scored if self.log is not None else None,
        ).start()
        if self.log is not None:
            self.log.start()
        loader = loop.create_task(self._follow() if preloaded else self._first_load())
        drained = True
        try:
            await stop.wait()
            self.draining = True
            server.close()
            self.say("draining: answering the requests already received")
            drained = await self._drain()
            if children:
                drained = await asyncio.to_thread(self._stop_children, children) and drained
        finally:
            loader.cancel()
            for task in list(self.connections):
                task.cancel()
            await asyncio.gather(*self.connections, return_exceptions=True)
            await self.batcher.stop()
            if self.log is not None:
                await asyncio.to_thread(self.log.close)
        if self._failure is not None:
            raise self._failure
        return ServeResult(url, self.requests, drained, self.versions)

    def _on_signal(self) -> None:
        self._signals += 1
        assert self._stop is not None
        self._stop.set()
        if self._signals > 1:
            self._force = True

    def _stop_children(self, children: Sequence[Any]) -> bool:
        """SIGTERM to each worker this process started, then wait for its drain; True if all drained."""
        for child in children:
            if child.is_alive():
                child.terminate()
        clean = True
        for child in children:
            child.join(self.options.drain_seconds + 10)
            if child.is_alive():
                child.kill()
                child.join()
            if child.exitcode != 0:
                self.say(f"worker {child.name} exited with {child.exitcode}")
                clean = False
        return clean

    async def _drain(self) -> bool:
        deadline = time.monotonic() + self.options.drain_seconds
        while self.inflight and time.monotonic() < deadline and not self._force:
            await asyncio.sleep(0.01)
        return self.inflight == 0

    async def _first_load(self) -> None:
        if await self._load_current():
            await self._follow()

    async def _load_current(self) -> bool:
        """Load the version the stage points at now; on failure, record it and stop the server."""
        try:
            version = await asyncio.to_thread(self.source.current_version)
            self.say(f"loading {self.source.label} (version {version})")
            loaded = await asyncio.to_thread(self.source.load, version)
        except Exception as exc:
            self.say(f"error: {getattr(exc, 'message', exc)}")
            self._failure = exc
            assert self._stop is not None
            self._stop.set()
            return False
        self._swap(loaded)
        self.say(f"ready: {loaded.name} version {loaded.version} (loaded in {loaded.load_seconds:.1f}s)")
        return True

    async def _follow(self) -> None:
        """Poll the alias; load a new version in the background, then swap (a rollback is a swap too)."""
        if self.options.poll_seconds <= 0 or self.source.ref.stage is None:
            return
        while not self.draining:
            await asyncio.sleep(self.options.poll_seconds)
            try:
                version = await asyncio.to_thread(self.source.current_version)
                if self.current is not None and version == self.current.version:
                    continue
                self.say(f"{self.source.label} moved to version {version}: loading it")
                loaded = await asyncio.to_thread(self.source.load, version)
            except Exception as exc:  # keep serving the version we have
                self.say(f"warning: cannot follow {self.source.label}: {getattr(exc, 'message', exc)}")
                continue
            if not self.draining:
                self._swap(loaded)
                self.metrics.swaps += 1
                self.say(f"now serving version {loaded.version}")

    def _swap(self, loaded: LoadedModel) -> None:
        self.current = loaded  # one assignment: every later batch sees the new version, no batch sees both
        self.versions.append(loaded.version)

    def _log_scored(self, scored: Scored) -> None:
        """On the prediction thread, once per model call: the call's rows go to the log's queue."""
        assert self.log is not None
        loaded: LoadedModel = scored.loaded
        self.log.append(
            predlog.BatchEntry(
                time=predlog.now_utc(),
                model=loaded.name,
                version=loaded.version,
                request_ids=scored.request_ids,
                counts=scored.counts,
                latencies_ms=scored.latencies_ms,
                predictions=scored.predictions,
                columns=scored.columns,
                types=loaded.model.types,
            )
        )

    def _logged(self, written: int, dropped: int) -> None:
        self.metrics.logged_rows += written
        self.metrics.dropped_log_rows += dropped

    # --- HTTP ---------------------------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            while not self.draining:
                keep = await self._one_request(reader, writer)
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass  # the client went away or broke the framing: nothing left to answer
        finally:
            self.connections.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        except asyncio.LimitOverrunError:
            await self._respond(writer, 431, _error("request headers too large"), keep=False)
            return False
        self.inflight += 1
        try:
            return await self._handle(head, reader, writer)
        finally:
            self.inflight -= 1

    async def _handle(self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        started = time.perf_counter()
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await self._respond(writer, 400, _error("malformed request line"), keep=False)
            return False
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        keep = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        path = target.split("?", 1)[0]
        if headers.get("expect", "").lower() == "100-continue" and self._fits(headers):
            # curl asks before sending a body over 1 KiB; without this answer it waits a second
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body, problem = await self._read_body(reader, headers)
        if problem is not None:
            status, message = problem
            self.metrics.request(path, status, None)
            await self._respond(writer, status, _error(message), keep=False)
            await _linger(reader, writer)
            return False
        try:
            status, payload, content_type, extra = await self._route(method, path, headers, body, started)
        except Exception as exc:  # a defect, not the request: still one JSON answer, and the server goes on
            self.metrics.request(path, 500, time.perf_counter() - started)
            status, content_type, extra = 500, "application/json", {}
            payload = _error(f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        keep = keep and not self.draining
        await self._respond(writer, status, payload, keep=keep, content_type=content_type, extra=extra)
        return keep

    def _fits(self, headers: dict[str, str]) -> bool:
        try:
            return int(headers.get("content-length", "0") or "0") <= self.options.max_body_bytes
        except ValueError:
            return False

    async def _read_body(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> tuple[bytes, Any]:
        limit = self.options.max_body_bytes
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = await reader.readuntil(b"\r\n")
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    return b"", (400, "malformed chunked body")
                if size == 0:
                    await reader.readuntil(b"\r\n")  # no trailers are expected
                    return b"".join(chunks), None
                total += size
                if total > limit:
                    return b"", (413, f"the body is larger than {limit} bytes")
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
        text = headers.get("content-length", "0") or "0"
        try:
            length = int(text)
        except ValueError:
            return b"", (400, "Content-Length is not a number")
        if length < 0:
            return b"", (400, "Content-Length is negative")
        if length > limit:
            return b"", (413, f"the body ({length} bytes) is larger than {limit} bytes")
        return (await reader.readexactly(length) if length else b""), None

    async def _route(
        self, method: str, path: str, headers: dict[str, str], body: bytes, started: float
    ) -> tuple[int, bytes, str, dict[str, str]]:
        if path in ("/health", "/ping"):
            ready = self.current is not None and not self.draining
            state = "draining" if self.draining else ("ready" if ready else "loading")
            status = 200 if ready else 503
            self.metrics.request(path, status, None)
            return status, _json({"status": state, **_version_fields(self.current)}), "application/json", {}
        if path not in ("/invocations", "/version", "/metrics"):
            self.metrics.request("other", 404, None)
            return (
                404,
                _error(f"no such path {path}; try /invocations, /health, /version, /metrics"),
                "application/json",
                {},
            )
        if not self._authorized(headers):
            self.metrics.request(path, 401, None)
            return (
                401,
                _error(f"a bearer token is required (the server's {ENV_TOKEN})"),
                "application/json",
                {"WWW-Authenticate": "Bearer"},
            )
        if path == "/metrics":
            text = self.metrics.render(
                self.source.ref.name, self.current.version if self.current else None, self.current is not None
            )
            self.metrics.request(path, 200, None)
            return 200, text.encode(), "text/plain; version=0.0.4; charset=utf-8", {}
        if self.current is None:
            self.metrics.request(path, 503, None)
            return 503, _error("the model is still loading"), "application/json", {}
        if path == "/version":
            self.metrics.request(path, 200, None)
            return 200, _json(_version_fields(self.current)), "application/json", {}
        if method != "POST":
            self.metrics.request(path, 405, None)
            return 405, _error("use POST on /invocations"), "application/json", {"Allow": "POST"}
        return await self._invocations(headers, body, started)

    async def _invocations(
        self, headers: dict[str, str], body: bytes, started: float
    ) -> tuple[int, bytes, str, dict[str, str]]:
        self.requests += 1
        request_id = headers.get("x-request-id") or uuid.uuid4().hex
        extra = {"X-Request-Id": request_id}
        loaded = self.current
        assert loaded is not None
        try:
            rows = parse(body, headers.get("content-type", "application/json"))
            probabilities = bool(rows.params.get("probabilities", False))
            if probabilities and loaded.model.classes is None:
                raise PayloadError(400, "probabilities are only for classification models")
            try:
                loaded.model.check_columns(rows.columns)
            except ValueError as exc:
                raise PayloadError(422, **_input_error(exc)) from None
            predictions, answered_by = await self.batcher.submit(
                rows,
                probabilities,
                request_id=request_id,
                started=started,
                log=self.log is not None and self.log.wants(),
            )
        except PayloadError as exc:
            self.metrics.request("/invocations", exc.status, time.perf_counter() - started)
            return exc.status, _json(exc.body()), "application/json", extra
        except BatchError as exc:
            self.metrics.request("/invocations", 422, time.perf_counter() - started)
            return 422, _error(str(exc)), "application/json", extra
        payload = predictions_json(predictions)
        seconds = time.perf_counter() - started
        self.metrics.request("/invocations", 200, seconds)
        extra[VERSION_HEADER] = answered_by.version
        return 200, payload, "application/json", extra

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self._token is None:
            return True
        scheme, _, given = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token)

    async def _respond(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        *,
        keep: bool,
        content_type: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "Connection: keep-alive" if keep else "Connection: close",
            *(f"{k}: {v}" for k, v in (extra or {}).items()),
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After an early answer (413), read and drop what the client is still sending, for a while.

    Closing a socket with unread bytes makes the kernel reset the connection, and a client still
    sending its body then sees a broken pipe instead of the answer already on its way.
    """
    with contextlib.suppress(Exception):
        if writer.can_write_eof():
            writer.write_eof()
        deadline = time.monotonic() + LINGER_SECONDS
        dropped = 0
        while dropped < LINGER_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            chunk = await asyncio.wait_for(reader.read(1 << 16), left)
            if not chunk:
                break
            dropped += len(chunk)


def _version_fields(loaded: LoadedModel | None) -> dict[str, Any]:
    if loaded is None:
        return {}
    return {k: v for k, v in loaded.describe().items() if k != "load_seconds"}


def _input_error(exc: BaseException) -> dict[str, Any]:
    """An InputError of the model's own copy of mlkit_model (not mlkit's class, so read by its fields)."""
    to_dict = getattr(exc, "to_dict", None)
    fields = to_dict() if callable(to_dict) else {"error": str(exc)}
    return {"message": fields.pop("error"), **fields}


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


def _error(message: str) -> bytes:
    return _json({"error": message})


def dockerfile_text(ref: str, *, port: int = DEFAULT_PORT, python: str = "3.11") -> str:
    """A Dockerfile running this same server (the image is not built by mlkit or its tests)."""
    return (
        f"# Serves {ref} with `mlkit serve`; build from the project root: docker build -f Dockerfile.serve .\n"
        f"FROM python:{python}-slim\n"
        "RUN useradd --create-home --uid 10001 serve\n"
        "WORKDIR /project\n"
        "COPY requirements.txt ./\n"
        "RUN pip install --no-cache-dir -r requirements.txt\n"
        "# mlkit.yaml says where the registry is; the model (with its hook's code) comes from there\n"
        "COPY --chown=10001:10001 . .\n"
        "USER 10001\n"
        f"EXPOSE {port}\n"
        "# The tracking store (MLKIT_TRACKING_URI) must be reachable from the container; pass a token with\n"
        f"# -e {ENV_TOKEN}=... to require it. --host 0.0.0.0 opens the server beyond the container's loopback.\n"
        f'CMD ["mlkit", "serve", "{ref}", "--host", "0.0.0.0", "--port", "{port}"]\n'
    )
