"""Training: the project's model fitted on DVC-tracked data, tracked in MLflow with full lineage.

Public surface: :func:`train` with :class:`TrainOptions`, returning a :class:`TrainResult`. Submodules:
``estimators`` (resolution and parameter checks), ``datasets`` (loading, feature hook, labels),
``preprocessing``, ``evaluation`` (split, cross-validation, metrics), ``plots``, ``xgb``, ``fitting`` (the
one place an estimator is fitted: the seam for other backends, with ``distributed`` for Dask) returning a
``fitted.FittedModel``, ``session`` (the tracking run opened in the background), ``outputs`` (metrics.json
and the dvc.lock stage), ``interrupts`` and ``runner`` (the steps of a tracked run, in order). MLflow is
reached only through :mod:`mlkit.engines.mlflow`.
"""

from mlkit.training.runner import TrainOptions, TrainResult, train

__all__ = ["TrainOptions", "TrainResult", "train"]
