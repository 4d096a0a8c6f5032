"""The tracking side of a training run, opened in the background while the data load and the model fits.

Importing MLflow and opening its store costs several seconds of CPU (MLflow's own imports, SQLAlchemy and
Alembic for the SQLite store) that do not depend on the data or the model. Training does those in a
thread that creates the run, while the main thread reads the data and fits: a fit spends its time in
native code without the GIL, so on two cores the store is usually ready before the fit ends. The run
exists before anything is logged, and an interrupted or failed training still ends its run (joining
the thread first), so the run states are the same as with a serial start.

Before creating its run, the session ends the experiment's lost runs (whose process is gone, see
:func:`mlkit.runs.lost_reason`). While the run is RUNNING a :class:`Heartbeat` rewrites its heartbeat tag.
"""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from mlkit import runs, tags
from mlkit.engines import mlflow
from mlkit.project import Project


@dataclass(frozen=True)
class OpenedRun:
    client: Any  # mlflow.MlflowClient
    experiment_id: str
    run_id: str
    ended_lost: tuple[runs.LostRun, ...] = ()  # lost runs of the experiment this session ended FAILED


class TrackingSession:
    """Start with :meth:`start`; :meth:`result` joins and returns the run (or raises what went wrong)."""

    def __init__(
        self, project: Project, experiment: str, run_tags: Mapping[str, str], *, heartbeat_seconds: float
    ) -> None:
        self._project = project
        self._experiment = experiment
        self._tags = dict(run_tags)
        self._interval = heartbeat_seconds
        self._opened: OpenedRun | None = None
        self._error: BaseException | None = None
        self._heartbeat: Heartbeat | None = None
        self._store_lost: BaseException | None = None
        # only a training in the main thread is interrupted when the store goes away (see _lost)
        self._in_main_thread = threading.current_thread() is threading.main_thread()
        self._thread = threading.Thread(target=self._open, name="mlkit-tracking", daemon=True)

    def start(self) -> TrackingSession:
        self._thread.start()
        return self

    def result(self) -> OpenedRun:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._opened is not None
        return self._opened

    def opened(self) -> OpenedRun | None:
        """The run if it could be created (for ending it after another failure), else None."""
        self._thread.join()
        return self._opened

    def stop_heartbeat(self) -> None:
        """No more beats: the run is about to end (or was never created)."""
        self._thread.join()
        if self._heartbeat is not None:
            self._heartbeat.stop()

    def store_lost(self) -> BaseException | None:
        """The error of the last heartbeat, when the store stopped accepting them and the run gave up."""
        return self._store_lost

    def _open(self) -> None:
        try:
            client = mlflow.client(self._project)
            experiment_id = mlflow.ensure_experiment(self._project, self._experiment, opened=client)
            ended: list[runs.LostRun] = []
            with suppress(Exception):  # a store that cannot say is judged again by the next command
                ended = runs.end_lost_in(client, [experiment_id])
            run_tags = {**self._tags, **runs.process_tags(self._interval)}
            run = mlflow.retry_locked(lambda: client.create_run(experiment_id, tags=run_tags))
            self._opened = OpenedRun(client, experiment_id, run.info.run_id, tuple(ended))
            uri = self._project.tracking_uri
            self._heartbeat = Heartbeat(
                uri,
                run.info.run_id,
                self._interval,
                on_lost=self._lost if mlflow.is_http(uri) or mlflow.is_database(uri) else None,
            ).start()
            _warm_imports()
        except BaseException as exc:  # handed to the main thread by result()
            self._error = exc

    def _lost(self, exc: BaseException) -> None:
        """The store refused heartbeats for too long: stop the training where it is (the main thread
        sees a KeyboardInterrupt and asks :meth:`store_lost` whether it was this)."""
        self._store_lost = exc
        if self._in_main_thread:
            _thread.interrupt_main()


class Heartbeat:
    """Rewrites the run's heartbeat tag every ``interval`` seconds from a daemon thread until stopped.

    A beat the store refuses is retried at the next interval. With ``on_lost``, when no beat has been
    accepted for ``GIVE_UP_AFTER_BEATS`` intervals, ``on_lost`` gets the last error and beating stops.
    """

    def __init__(
        self, uri: str, run_id: str, interval: float, *, on_lost: Callable[[BaseException], None] | None = None
    ) -> None:
        self._uri = uri
        self._run_id = run_id
        self._interval = interval
        self._on_lost = on_lost
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="mlkit-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop beating; a beat in flight to a store that does not answer is not waited for long."""
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _beat(self) -> None:
        client = mlflow.client_for(self._uri)
        accepted = time.monotonic()
        while not self._stopped.wait(self._interval):
            try:
                client.set_tag(self._run_id, tags.HEARTBEAT, runs.beat_now())
                accepted = time.monotonic()
            except Exception as exc:
                waited = time.monotonic() - accepted
                if self._on_lost is not None and waited >= runs.GIVE_UP_AFTER_BEATS * self._interval:
                    if not self._stopped.is_set():
                        self._on_lost(exc)
                    return


def _warm_imports() -> None:
    """Modules needed after the fit (model logging, plots); failures surface later where they are used."""
    with suppress(Exception):
        import matplotlib.figure  # noqa: F401
    mlflow.warm_imports()


def preimport_training() -> None:
    """What the main thread needs during training, imported before the tracking thread starts so the two
    threads never import the same packages at once."""
    import pandas  # noqa: F401
    import sklearn.base
    import sklearn.compose
    import sklearn.impute
    import sklearn.metrics
    import sklearn.model_selection
    import sklearn.pipeline
    import sklearn.preprocessing  # noqa: F401
