"""The one place an estimator is fitted.

Everything else in training (data, lineage, evaluation, tracking) is backend-agnostic; a distributed
backend (``training.backend: dask`` with ``xgboost.dask``) plugs in here by fitting the same
preprocessor and estimator on a cluster and returning the same fitted pipeline.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlkit import constants as C
from mlkit import lineage as L
from mlkit.config import read_yaml
from mlkit.errors import UsageError
from mlkit.training import datasets, distributed, xgb
from mlkit.training.estimators import is_xgboost
from mlkit.training.fitted import FittedModel

BACKENDS = ("local", "dask")


def check_backend(backend: str, scheduler: str | None = None) -> None:
    if backend not in BACKENDS:
        raise UsageError(
            f"mlkit.yaml: training.backend: {backend!r} is not available in this version of "
            f"mlkit; available: {', '.join(BACKENDS)}",
            hint="set training.backend: local",
        )
    if backend == "dask":
        distributed.check(scheduler)


def record_backend(project: Any, environ: Mapping[str, str] | None = None, source: str | None = None) -> L.Backend:
    """Where this run will fit its model and what chose that, as its lineage records it: for Dask the
    cluster's shape now (connecting to it, so an unreachable scheduler fails before a run is created) and
    where the workers will read each input.

    ``source`` is given by a caller that chose the backend itself (``mlkit reproduce``); otherwise it
    is worked out from mlkit.yaml and the environment.
    """
    training = project.config.training
    if source is None:
        settings = read_yaml(project.root / C.CONFIG_FILE) or {}
        section = settings.get("training") if isinstance(settings, dict) else None
        file_backend = section.get("backend") if isinstance(section, dict) else None
        source = distributed.environment_source(
            training.backend, file_backend, os.environ if environ is None else environ
        )
    if training.backend != "dask":
        return L.Backend(name=training.backend, source=source)
    check_backend(training.backend, training.scheduler)
    shape = distributed.describe_cluster(str(training.scheduler), source=source)
    return L.Backend(**{**shape.__dict__, "data_read": distributed.data_read(project)})


def table_reader(backend: str) -> Callable[[Path], Any]:
    """How the training data are read: pandas in process, dask.dataframe for the dask backend."""
    if backend == "dask":
        return distributed.read_table
    return datasets.read_table


def fit_model(
    model: Any,
    X: Any,
    y: Any,
    *,
    preprocessor: Any | None,
    backend: str = "local",
    scheduler: str | None = None,
    eval_sets: Sequence[tuple[str, Any, Any]] = (),
    early_stopping_rounds: int | None = None,
) -> FittedModel:
    """Fit ``preprocessor`` then ``model`` on (X, y) and return them as one Pipeline.

    ``model`` may be a full Pipeline (from an entrypoint), then ``preprocessor`` is None. For XGBoost,
    ``eval_sets`` (name, X, y) are transformed by the fitted preprocessor and evaluated every round;
    early stopping watches the last one.
    """
    from sklearn.pipeline import Pipeline

    check_backend(backend, scheduler)
    if backend == "dask":
        assert scheduler is not None  # checked above
        return distributed.fit_model(
            model,
            X,
            y,
            preprocessor=preprocessor,
            scheduler=scheduler,
            eval_sets=eval_sets,
            early_stopping_rounds=early_stopping_rounds,
        )
    if preprocessor is None:
        pipeline = model if isinstance(model, Pipeline) else Pipeline([("model", model)])
        pipeline.fit(X, y)
        return FittedModel(pipeline)
    transformed = preprocessor.fit_transform(X, y)
    fit_args: dict[str, Any] = {}
    names: list[str] = []
    if is_xgboost(model):
        names = [name for name, _, _ in eval_sets]
        sets = [(preprocessor.transform(ex), ey) for _, ex, ey in eval_sets]
        fit_args = xgb.fit_kwargs(model, sets, early_stopping_rounds)
    model.fit(transformed, y, **fit_args)
    fitted = FittedModel(Pipeline([("preprocess", preprocessor), ("model", model)]))
    if is_xgboost(model):
        fitted.history_ = xgb.iteration_history(model, names)
        fitted.best_iteration_ = xgb.best_iteration(model) if early_stopping_rounds else None
    return fitted
