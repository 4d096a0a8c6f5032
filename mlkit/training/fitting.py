"""The one place an estimator is fitted.

Everything else in training (data, lineage, evaluation, tracking) is backend-agnostic; a distributed
backend (``training.backend: dask`` with ``xgboost.dask``) plugs in here by fitting the same
preprocessor and estimator on a cluster and returning the same fitted pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlkit.errors import UsageError
from mlkit.training.estimators import is_xgboost

BACKENDS = ("local", "dask")


@dataclass
class FittedModel:
    """A fitted scikit-learn Pipeline and what was learned on the way (``*_`` attributes: learned)."""

    pipeline: Any
    history_: dict[str, list[float]] = field(default_factory=dict)
    best_iteration_: int | None = None

    @property
    def estimator(self) -> Any:
        return self.pipeline.steps[-1][1]

    def feature_names(self) -> list[str]:
        if len(self.pipeline.steps) < 2:
            return []
        try:
            return [str(n) for n in self.pipeline[:-1].get_feature_names_out()]
        except Exception:
            return []


def check_backend(backend: str, scheduler: str | None = None) -> None:
    if backend not in BACKENDS:
        raise UsageError(
            f"mlkit.yaml: training.backend: {backend!r} is not available in this version of "
            f"mlkit; available: {', '.join(BACKENDS)}",
            hint="set training.backend: local",
        )
    if backend == "dask":
        from mlkit.training import distributed

        distributed.check(scheduler)


def table_reader(backend: str) -> Callable[[Path], Any]:
    """How the training data are read: pandas in process, dask.dataframe for the dask backend."""
    if backend == "dask":
        from mlkit.training import distributed

        return distributed.read_table
    from mlkit.training.datasets import read_table

    return read_table


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
        from mlkit.training import distributed

        assert scheduler is not None  # checked above
        return distributed.fit_model(model, X, y, preprocessor=preprocessor, scheduler=scheduler,
                                     eval_sets=eval_sets, early_stopping_rounds=early_stopping_rounds)
    if preprocessor is None:
        pipeline = model if isinstance(model, Pipeline) else Pipeline([("model", model)])
        pipeline.fit(X, y)
        return FittedModel(pipeline)
    transformed = preprocessor.fit_transform(X, y)
    fit_args: dict[str, Any] = {}
    names: list[str] = []
    if is_xgboost(model):
        from mlkit.training import xgb

        names = [name for name, _, _ in eval_sets]
        sets = [(preprocessor.transform(ex), ey) for _, ex, ey in eval_sets]
        fit_args = xgb.fit_kwargs(model, sets, early_stopping_rounds)
    model.fit(transformed, y, **fit_args)
    fitted = FittedModel(Pipeline([("preprocess", preprocessor), ("model", model)]))
    if is_xgboost(model):
        from mlkit.training import xgb

        fitted.history_ = xgb.iteration_history(model, names)
        fitted.best_iteration_ = xgb.best_iteration(model) if early_stopping_rounds else None
    return fitted
