"""Reading tracked runs back: list, show one, compare several side by side, and MLflow's UI on them.

Everything here reads through MLflow's client against the project's store; nothing is printed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from mlkit import constants as C
from mlkit import tags
from mlkit.clock import utc_iso
from mlkit.engines import mlflow
from mlkit.errors import OperationError, UsageError
from mlkit.progress import Progress
from mlkit.project import Project
from mlkit.registry import ModelRef

DEFAULT_LIMIT = 20
MIN_PREFIX = 6  # as with git, a run id may be shortened to any unique prefix this long or longer
_RUN_ID_LENGTH = 32
FIT_SECONDS = "fit_seconds"  # the metric training logs: seconds spent fitting the model

# A RUNNING run beats: its heartbeat tag is rewritten every few seconds by the training process. It is
# lost when that process is gone (same host) or, seen from another host, when its last beat is older than
# LOST_AFTER_BEATS intervals. The training process itself gives up after GIVE_UP_AFTER_BEATS intervals
# without an accepted beat, so a run another host calls lost is one whose process died or gave up.
ENV_HEARTBEAT_SECONDS = C.ENV_HEARTBEAT_SECONDS
DEFAULT_HEARTBEAT_SECONDS = 15.0
LOST_AFTER_BEATS = 4
GIVE_UP_AFTER_BEATS = 2
LOST = "lost"  # the status `runs list` shows for a RUNNING run that is no longer alive
_ISO = "%Y-%m-%dT%H:%M:%SZ"


def is_timing(metric: str) -> bool:
    """Wall-clock measurements are logged as metrics too; they never reproduce and say nothing of the model."""
    return metric == "seconds" or metric.endswith(("_seconds", ".seconds"))


@dataclass
class RunSummary:
    """One run in a listing. ``fit_seconds``: fitting the model (the metric of that name); ``run_seconds``:
    the tracked run from start to end; neither is the whole `mlkit train` command (its ``total_seconds``)."""

    run_id: str
    status: str
    started: str
    fit_seconds: float | None
    run_seconds: float | None
    commit: str
    dirty: bool
    metrics: dict[str, float]
    failure: str = ""  # why it ended FAILED or KILLED
    reproduces: str = ""  # the run a reproduction rebuilt
    lost: str = ""  # why a RUNNING run is no longer alive (its status is then "lost")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunDetail:
    run_id: str
    experiment: str
    status: str
    started: str
    ended: str
    params: dict[str, str]
    metrics: dict[str, float]
    lineage: dict[str, str]
    tags: dict[str, str]
    artifacts: list[str]
    model_versions: list[str] = field(default_factory=list)
    lost: str = ""  # why a RUNNING run is no longer alive (its status is then "lost")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunComparison:
    """One row per param, metric, lineage key and timing metric: the values of each run, and whether they
    differ. Timings (section ``timing``) always differ and say nothing of the model: never in
    :meth:`differing`."""

    run_ids: list[str]
    rows: list[dict[str, Any]]

    def differing(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if row["differs"] and row["section"] != "timing"]

    def to_dict(self) -> dict[str, Any]:
        return {"run_ids": self.run_ids, "rows": self.rows}


def list_runs(project: Project, *, experiment: str | None = None, limit: int = DEFAULT_LIMIT) -> list[RunSummary]:
    """The newest ``limit`` runs of the experiment (default: the project's), newest first."""
    if limit < 1:
        raise UsageError(f"--limit {limit}: must be at least 1", hint="e.g. --limit 10")
    client = mlflow.client(project)
    instead = "`mlkit runs list` for the project's experiment, or `mlkit train` first"
    experiment_id = _experiment_id(client, project, experiment, instead)
    if experiment_id is None:
        return []
    runs = client.search_runs([experiment_id], max_results=limit, order_by=["attributes.start_time DESC"])
    metric_names = project.config.metrics
    now = time.time()
    lost = {run.info.run_id: lost_reason(run.data.tags, run.info.status, now=now) for run in runs}
    return [
        RunSummary(
            run_id=run.info.run_id,
            status=LOST if lost[run.info.run_id] else run.info.status,
            started=utc_iso(run.info.start_time),
            fit_seconds=run.data.metrics.get(FIT_SECONDS),
            run_seconds=_duration(run.info.start_time, run.info.end_time),
            commit=(run.data.tags.get(tags.GIT_COMMIT) or "")[:12],
            dirty=run.data.tags.get(tags.GIT_DIRTY) == "true",
            metrics={k: run.data.metrics[k] for k in metric_names if k in run.data.metrics},
            failure=run.data.tags.get(tags.FAILURE, ""),
            reproduces=run.data.tags.get(tags.REPRODUCES, ""),
            lost=lost[run.info.run_id],
        )
        for run in runs
    ]


def show_run(project: Project, run_id: str) -> RunDetail:
    """Params, metrics, lineage, artifacts and registered versions of one run (``run_id``: anything
    :func:`resolve_run` takes)."""
    client = mlflow.client(project)
    run = resolve_run(client, run_id)
    experiment = client.get_experiment(run.info.experiment_id)
    run_tags = dict(run.data.tags)
    versions = [f"{v.name}/{v.version}" for v in client.search_model_versions(f"run_id = '{run.info.run_id}'")]
    lost = lost_reason(run_tags, run.info.status)
    return RunDetail(
        run_id=run.info.run_id,
        experiment=experiment.name,
        status=LOST if lost else run.info.status,
        started=utc_iso(run.info.start_time),
        ended=utc_iso(run.info.end_time),
        params=dict(sorted(run.data.params.items())),
        metrics=dict(sorted(run.data.metrics.items())),
        lineage={k: v for k, v in sorted(run_tags.items()) if k.startswith(tags.PREFIX)},
        tags={k: v for k, v in sorted(run_tags.items()) if not k.startswith((tags.PREFIX, "mlflow."))},
        artifacts=_artifacts(client, run.info.run_id),
        model_versions=sorted(versions),
        lost=lost,
    )


def compare_runs(project: Project, run_ids: Sequence[str]) -> RunComparison:
    """Params, metrics and lineage of two or more runs side by side (each named as :func:`resolve_run` takes)."""
    if len(run_ids) < 2:
        raise UsageError("compare needs at least two run ids", hint="run `mlkit runs list` to see run ids")
    client = mlflow.client(project)
    runs = [resolve_run(client, run_id) for run_id in run_ids]
    rows: list[dict[str, Any]] = []
    sections = (
        ("param", [r.data.params for r in runs]),
        ("metric", [r.data.metrics for r in runs]),
        (
            "lineage",
            [
                {
                    k: v
                    for k, v in r.data.tags.items()
                    if k.startswith(tags.PREFIX) and k not in (tags.PARAMS, tags.COMMAND)
                }
                for r in runs
            ],
        ),
    )
    for section, values in sections:
        keys = sorted(set().union(*(v.keys() for v in values)))
        if section == "metric":
            keys = [k for k in keys if not k.startswith("xgb.")]  # per-iteration curves: see the UI
        for key in keys:
            cells = [v.get(key) for v in values]
            rows.append(
                {
                    "section": "timing" if section == "metric" and is_timing(key) else section,
                    "key": key,
                    "values": cells,
                    "differs": len({repr(c) for c in cells}) > 1,
                }
            )
    order = {"param": 0, "metric": 1, "lineage": 2, "timing": 3}
    rows.sort(key=lambda row: order[row["section"]])
    return RunComparison(run_ids=[r.info.run_id for r in runs], rows=rows)


# --- runs whose process is gone: shown as lost, ended FAILED -----------------------------------------------


@dataclass
class LostRun:
    """A RUNNING run that is no longer alive, and why (ended FAILED by :func:`end_lost_runs`)."""

    run_id: str
    experiment_id: str
    host: str
    pid: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def heartbeat_seconds() -> float:
    """How often a training run beats: ``MLKIT_HEARTBEAT_SECONDS`` (seconds, > 0), default 15."""
    text = os.environ.get(ENV_HEARTBEAT_SECONDS, "").strip()
    if not text:
        return DEFAULT_HEARTBEAT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600 or value != value:
        raise UsageError(
            f"{ENV_HEARTBEAT_SECONDS}={text!r}: must be a number of seconds between 0 and 3600",
            hint=f"e.g. {ENV_HEARTBEAT_SECONDS}=30, or unset it for the default ({DEFAULT_HEARTBEAT_SECONDS:.0f})",
        )
    return value


def process_tags(interval: float) -> dict[str, str]:
    """The tags a training run is created with that say which process runs it, and its first beat."""
    pid = os.getpid()
    return {
        tags.HOST: socket.gethostname(),
        tags.PID: str(pid),
        tags.PROCESS_START: _process_start(pid),
        tags.HEARTBEAT_SECONDS: f"{interval:g}",
        tags.HEARTBEAT: beat_now(),
    }


def beat_now() -> str:
    """The value of a heartbeat written now."""
    return utc_iso(time.time() * 1000)


def lost_reason(run_tags: Mapping[str, str], status: str, *, now: float | None = None) -> str:
    """Why a RUNNING run is no longer alive, or '' when it is (or cannot be judged).

    On the host that runs it, its process decides: alive while a process with its pid and start time
    exists, whatever the heartbeat says. Seen from another host only the heartbeat counts: lost when the
    last beat is older than ``LOST_AFTER_BEATS`` intervals. A run without mlkit's process tags (another
    tool's, or an older mlkit's) is never called lost.
    """
    if status != "RUNNING" or tags.HEARTBEAT not in run_tags:
        return ""
    host, pid = run_tags.get(tags.HOST, ""), run_tags.get(tags.PID, "")
    if host and host == socket.gethostname() and pid.isdigit():
        if _process_alive(int(pid), run_tags.get(tags.PROCESS_START, "")):
            return ""
        return f"its process {pid} on {host} is gone"
    beat = _parse_iso(run_tags[tags.HEARTBEAT])
    try:
        interval = float(run_tags.get(tags.HEARTBEAT_SECONDS, "")) or DEFAULT_HEARTBEAT_SECONDS
    except ValueError:
        interval = DEFAULT_HEARTBEAT_SECONDS
    if beat is None:
        return ""
    age = (time.time() if now is None else now) - beat
    if age <= LOST_AFTER_BEATS * interval:
        return ""
    where = f" from process {pid} on {host}" if host else ""
    return f"no heartbeat{where} for {age:.0f} s (it beats every {interval:g} s)"


def end_lost_runs(project: Project, *, experiment: str | None = None) -> list[LostRun]:
    """End every lost run of the experiment (default: the project's) as FAILED, with the reason in
    ``mlkit.failure``; return them. Runs that are alive, or cannot be judged, are left alone."""
    client = mlflow.client(project)
    experiment_id = _experiment_id(client, project, experiment, "`mlkit runs end-lost` for the project's experiment")
    return [] if experiment_id is None else end_lost_in(client, [experiment_id])


def _experiment_id(client: Any, project: Project, experiment: str | None, instead: str) -> str | None:
    """The id of ``experiment`` (default: the project's); None when the project's has no runs yet, and a
    UsageError (hint: run ``instead``) when a named one does not exist."""
    name = experiment or project.experiment
    found = client.get_experiment_by_name(name)
    if found is None:
        if experiment is not None:
            raise UsageError(f"experiment {name!r} does not exist", hint=f"run {instead}")
        return None
    return str(found.experiment_id)


def end_lost_in(client: Any, experiment_ids: Sequence[str]) -> list[LostRun]:
    """:func:`end_lost_runs` on an open client, for the given experiments."""
    running = client.search_runs(list(experiment_ids), filter_string="attributes.status = 'RUNNING'", max_results=1000)
    now = time.time()
    ended: list[LostRun] = []
    for run in running:
        reason = lost_reason(run.data.tags, run.info.status, now=now)
        if not reason:
            continue
        run_id = run.info.run_id
        recorded = f"lost: {reason}; ended by mlkit on {socket.gethostname()} at {utc_iso(now * 1000)}"
        last_beat = _parse_iso(run.data.tags.get(tags.HEARTBEAT, ""))
        end_time = int(1000 * last_beat) if last_beat else None
        mlflow.retry_locked(partial(client.set_tag, run_id, tags.FAILURE, recorded))
        mlflow.retry_locked(partial(client.set_terminated, run_id, "FAILED", end_time=end_time))
        ended.append(
            LostRun(
                run_id=run_id,
                experiment_id=str(run.info.experiment_id),
                host=run.data.tags.get(tags.HOST, ""),
                pid=run.data.tags.get(tags.PID, ""),
                reason=reason,
            )
        )
    return ended


def _process_start(pid: int) -> str:
    """The process's start time since boot, in clock ticks (Linux); '' where /proc does not have it."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else ""


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat") as stream:
            stat = stream.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'
    return stat[stat.rfind(")") + 2 :].split()


def _process_alive(pid: int, start: str) -> bool:
    """Whether process ``pid`` exists and, when ``start`` is known, started at that time (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    fields = _proc_stat(pid)
    if fields and fields[0] in ("Z", "X"):  # exited, not yet reaped by its parent
        return False
    current = fields[19] if fields and len(fields) > 19 else ""
    return not (start and current and current != start)


def _parse_iso(text: str) -> float | None:
    from datetime import datetime, timezone

    try:
        return datetime.strptime(text, _ISO).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def open_ui(project: Project, *, port: int = 5000, progress: Progress | None = None) -> None:
    """Run MLflow's UI on the project's store, bound to 127.0.0.1, until it exits.

    A project tracking to a server (``http(s)://`` URI) already has its UI there: ``progress`` is told its
    address (without credentials) and nothing starts. A port already in use is refused before anything
    starts. The UI runs in its own process group; Ctrl-C (or SIGTERM, turned into KeyboardInterrupt by the
    caller) stops the whole group, waits for it, and is raised again. A UI that exits with an error raises
    :class:`OperationError`. ``progress`` is told where the UI listens.
    """
    say = progress or (lambda _message: None)
    if mlflow.is_http(project.tracking_uri):
        say(
            f"the project tracks to a server: its UI is {_without_credentials(project.tracking_uri)} "
            "(mlkit ui starts nothing)"
        )
        return
    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port}: must be between 1 and 65535", hint="e.g. --port 5001")
    if _port_in_use(port):
        raise UsageError(
            f"port {port} on 127.0.0.1 is already in use (another server?)",
            hint=f"choose another port, e.g. `mlkit ui --port {port + 1}`",
        )
    argv = ui_command(project, port=port)
    say(f"MLflow UI on http://127.0.0.1:{port} (Ctrl-C to stop)")
    process = subprocess.Popen(argv, cwd=project.root, env=ui_environment(project), start_new_session=True)
    try:
        code = process.wait()
    except KeyboardInterrupt:
        _stop_group(process)
        raise
    if code != 0:
        raise OperationError(
            f"mlflow ui exited with status {code}", hint="run again with --debug, or see MLflow's messages above"
        )


def _port_in_use(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:``port`` (a bind test, as the UI would do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as servers do: a closed connection lingering in TIME_WAIT does not make the port busy
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _stop_group(process: Any, timeout: float = 30.0) -> None:
    """SIGTERM the UI's process group (mlflow and its server workers), SIGKILL it if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def _without_credentials(uri: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def ui_command(project: Project, *, port: int = 5000) -> list[str]:
    """The command line starting MLflow's UI on the project's store, bound to 127.0.0.1 only.

    The store's URI is not on it (a database URI may carry a password, and a command line is readable by
    every user of the machine): :func:`ui_environment` passes it as ``MLFLOW_BACKEND_STORE_URI``.
    """
    uri = project.tracking_uri
    if mlflow.is_sqlite(uri):
        mlflow.ensure_sqlite_store(uri, project.state_dir)
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    artifacts = mlflow.artifact_location(project)
    if artifacts:
        argv += ["--default-artifact-root", artifacts]
    return argv


def ui_environment(project: Project) -> dict[str, str]:
    """The environment of the UI process: this one's, with the store's URI in ``MLFLOW_BACKEND_STORE_URI``."""
    return {**os.environ, "MLFLOW_BACKEND_STORE_URI": project.tracking_uri}


def resolve_run(client: Any, text: str) -> Any:
    """The run ``text`` names: a run id, a unique prefix of one (6 characters or more), ``NAME@ALIAS`` or
    ``NAME/VERSION`` (the run that made that model version)."""
    from mlflow.exceptions import MlflowException

    text = text.strip()
    ref = ModelRef.parse(text) if text else ModelRef(text)
    if ref.stage is not None or ref.version is not None:
        try:
            version = (
                client.get_model_version_by_alias(ref.name, ref.stage)
                if ref.stage
                else client.get_model_version(ref.name, ref.version)
            )
        except MlflowException:
            which = f"alias {ref.stage!r}" if ref.stage else f"version {ref.version}"
            raise UsageError(
                f"{text!r}: model {ref.name!r} has no {which}",
                hint=f"see `mlkit models show {ref.name}` or `mlkit models list`",
            ) from None
        return _get_run(client, version.run_id)
    lowered = text.lower()
    if len(lowered) < _RUN_ID_LENGTH and lowered and all(c in "0123456789abcdef" for c in lowered):
        if len(lowered) < MIN_PREFIX:
            raise UsageError(
                f"run id prefix {text!r} is too short: give at least {MIN_PREFIX} characters",
                hint="run `mlkit runs list` to see run ids",
            )
        matches = sorted(run.info.run_id for run in _all_runs(client) if run.info.run_id.startswith(lowered))
        if len(matches) > 1:
            raise UsageError(
                f"run id prefix {text!r} is ambiguous: it matches " + ", ".join(matches),
                hint="give more characters of the run id",
            )
        if matches:
            return _get_run(client, matches[0])
    return _get_run(client, text)


def _all_runs(client: Any) -> list[Any]:
    """Every active run of every experiment in the store (a project's store: thousands at most)."""
    experiment_ids = [e.experiment_id for e in client.search_experiments()]
    if not experiment_ids:
        return []
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(experiment_ids, max_results=10_000, page_token=token)
        runs += list(page)
        token = getattr(page, "token", None)
        if not token:
            return runs


def _get_run(client: Any, run_id: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        raise UsageError(
            f"run {run_id!r} not found in the tracking store", hint="run `mlkit runs list` to see run ids"
        ) from None


def _artifacts(client: Any, run_id: str, path: str | None = None) -> list[str]:
    out: list[str] = []
    for entry in client.list_artifacts(run_id, path):
        if entry.is_dir:
            out += _artifacts(client, run_id, entry.path)
        else:
            out.append(entry.path)
    return sorted(out)


def _duration(start: int | None, end: int | None) -> float | None:
    return round((end - start) / 1000, 1) if start and end else None
