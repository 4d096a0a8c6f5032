"""Training: the project's model fitted on DVC-tracked data, tracked in MLflow with full lineage.

Public surface: :func:`train` with :class:`TrainOptions`, returning a :class:`TrainResult`. Submodules:
``estimators`` (resolution and parameter checks), ``datasets`` (loading, feature hook, labels),
``preprocessing``, ``evaluation`` (split, CV, metrics), ``plots``, ``xgb``, ``fitting`` (the one place
an estimator is fitted: the seam for other backends) and ``runner`` (the tracked run).
"""

from mlkit.training.runner import TrainOptions, TrainResult, train

__all__ = ["TrainOptions", "TrainResult", "train"]
