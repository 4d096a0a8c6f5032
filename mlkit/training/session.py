"""The tracking side of a training run, opened in the background while the data load and the model fits.

Importing MLflow and opening its store costs several seconds of CPU (MLflow's own imports, SQLAlchemy and
Alembic for the SQLite store) that do not depend on the data or the model. Training does those in a
thread that creates the run, while the main thread reads the data and fits: a fit spends its time in
native code without the GIL, so on two cores the store is usually ready before the fit ends. The run
exists before anything is logged, and an interrupted or failed training still ends its run (joining
the thread first), so the run states are the same as with a serial start.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from mlkit.engines import mlflow
from mlkit.project import Project


@dataclass(frozen=True)
class OpenedRun:
    client: Any  # mlflow.MlflowClient
    experiment_id: str
    run_id: str


class TrackingSession:
    """Start with :meth:`start`; :meth:`result` joins and returns the run (or raises what went wrong)."""

    def __init__(self, project: Project, experiment: str, tags: Mapping[str, str]) -> None:
        self._project = project
        self._experiment = experiment
        self._tags = dict(tags)
        self._opened: OpenedRun | None = None
        self._error: BaseException | None = None
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

    def _open(self) -> None:
        try:
            client = mlflow.client(self._project)
            experiment_id = mlflow.ensure_experiment(self._project, self._experiment, opened=client)
            run = mlflow.retry_locked(lambda: client.create_run(experiment_id, tags=self._tags))
            self._opened = OpenedRun(client, experiment_id, run.info.run_id)
            _warm_imports()
        except BaseException as exc:  # handed to the main thread by result()
            self._error = exc


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
