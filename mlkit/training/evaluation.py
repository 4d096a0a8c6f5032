"""Splitting, cross-validation and metrics, with the defaults each task gets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mlkit.errors import UsageError, first_line
from mlkit.training.estimators import is_xgboost
from mlkit.training.fitting import fit_model

# builds a fresh, unfitted (model, preprocessor) pair; the preprocessor is None for a whole Pipeline
ModelFactory = Callable[[], tuple[Any, Any]]


def split(features: Any, target: Any, *, test_size: float, seed: int, stratify: bool) -> tuple[Any, ...]:
    """(X_train, X_test, y_train, y_test): a seeded split, stratified by class for classification."""
    from sklearn.model_selection import train_test_split

    try:
        return tuple(
            train_test_split(
                features,
                target,
                test_size=test_size,
                random_state=seed,
                stratify=target if stratify else None,
            )
        )
    except ValueError as exc:
        raise UsageError(
            f"cannot split the data: {first_line(exc)}",
            hint="use more rows, or change test_size in params.yaml",
        ) from None


# below these, test metrics swing with a handful of rows (an r2 of -1.23 from a 4-row test split)
MIN_TEST_ROWS = 30
MIN_TEST_ROWS_PER_CLASS = 5


def split_warnings(y_test: Any, task: str, classes: Sequence[Any] | None = None) -> list[str]:
    """Why the test split is too small to trust its metrics (empty when it is large enough)."""
    import numpy as np

    rows = len(y_test)
    if rows < MIN_TEST_ROWS:
        return [
            f"the test split has only {rows} rows (fewer than {MIN_TEST_ROWS}): its metrics are "
            "unreliable; use more data or a larger test_size"
        ]
    if task != "classification" or classes is None:
        return []
    counts = np.bincount(np.asarray(y_test, dtype=np.int64), minlength=len(classes))
    return [
        f"class {classes[i]!r} has only {n} rows in the test split (fewer than {MIN_TEST_ROWS_PER_CLASS}): "
        "its metrics are unreliable"
        for i, n in enumerate(counts.tolist())
        if n < MIN_TEST_ROWS_PER_CLASS
    ]


def eval_sets(
    model: Any,
    X_train: Any,
    y_train: Any,
    X_test: Any,
    y_test: Any,
    *,
    early_stopping_rounds: int | None,
    seed: int,
    stratify: bool,
) -> tuple[list[tuple[str, Any, Any]], Any, Any]:
    """(XGBoost's evaluation sets, the rows to fit on, their target). With early stopping, a validation
    split is carved out of the training data (never the test split, which must stay unseen); other
    estimators get no evaluation sets."""
    if not is_xgboost(model):
        return [], X_train, y_train
    if early_stopping_rounds:
        fit_X, val_X, fit_y, val_y = split(X_train, y_train, test_size=0.15, seed=seed, stratify=stratify)
        return [("train", fit_X, fit_y), ("validation", val_X, val_y)], fit_X, fit_y
    return [("train", X_train, y_train), ("test", X_test, y_test)], X_train, y_train


def folds(n_splits: int, *, seed: int, stratify: bool) -> Any:
    from sklearn.model_selection import KFold, StratifiedKFold

    cls = StratifiedKFold if stratify else KFold
    return cls(n_splits=n_splits, shuffle=True, random_state=seed)


def cross_validate(
    make_model: ModelFactory,
    X: Any,
    y: Any,
    names: Sequence[str],
    task: str,
    *,
    n_folds: int,
    seed: int,
    backend: str,
    scheduler: str | None = None,
) -> dict[str, float]:
    """``cv_<metric>_mean`` and ``cv_<metric>_std`` over ``n_folds`` seeded folds of (X, y), a fresh model
    from ``make_model`` fitted on each."""
    import numpy as np

    scores: dict[str, list[float]] = {name: [] for name in names}
    splitter = folds(n_folds, seed=seed, stratify=task == "classification")
    for fold_train, fold_test in splitter.split(X, y):
        model, preprocessor = make_model()
        fitted = fit_model(
            model, X.iloc[fold_train], y[fold_train], preprocessor=preprocessor, backend=backend, scheduler=scheduler
        )
        predicted, probabilities = predict_scores(fitted.pipeline, X.iloc[fold_test], task)
        for name, value in compute_metrics(names, task, y[fold_test], predicted, probabilities).items():
            scores[name].append(value)
    out: dict[str, float] = {}
    for name, values in scores.items():
        out[f"cv_{name}_mean"] = float(np.mean(values))
        out[f"cv_{name}_std"] = float(np.std(values))
    return out


def compute_metrics(
    names: Sequence[str], task: str, y_true: Any, predicted: Any, scores: Any | None
) -> dict[str, float]:
    """Each named metric on one evaluation set. ``scores`` are class probabilities (classification)."""
    return {name: float(_METRICS[task][name](y_true, predicted, scores)) for name in names}


def predict_scores(model: Any, features: Any, task: str) -> tuple[Any, Any | None]:
    """(predictions, class probabilities or None)."""
    predicted = model.predict(features)
    if task == "classification" and hasattr(model, "predict_proba"):
        return predicted, model.predict_proba(features)
    return predicted, None


def _binary(scores: Any) -> bool:
    return scores is not None and scores.shape[1] == 2


def _average(y_true: Any) -> str:
    import numpy as np

    return "binary" if len(np.unique(y_true)) <= 2 else "weighted"


def _accuracy(y, p, s):
    from sklearn.metrics import accuracy_score

    return accuracy_score(y, p)


def _f1(y, p, s):
    from sklearn.metrics import f1_score

    return f1_score(y, p, average=_average(y), zero_division=0)


def _precision(y, p, s):
    from sklearn.metrics import precision_score

    return precision_score(y, p, average=_average(y), zero_division=0)


def _recall(y, p, s):
    from sklearn.metrics import recall_score

    return recall_score(y, p, average=_average(y), zero_division=0)


def _roc_auc(y, p, s):
    import numpy as np
    from sklearn.metrics import roc_auc_score

    if s is None or len(np.unique(y)) < 2:
        return float("nan")
    if _binary(s):
        return roc_auc_score(y, s[:, 1])
    return roc_auc_score(y, s, multi_class="ovr", average="weighted", labels=list(range(s.shape[1])))


def _log_loss(y, p, s):
    from sklearn.metrics import log_loss

    if s is None:
        return float("nan")
    return log_loss(y, s, labels=list(range(s.shape[1])))


def _rmse(y, p, s):
    from sklearn.metrics import root_mean_squared_error

    return root_mean_squared_error(y, p)


def _mae(y, p, s):
    from sklearn.metrics import mean_absolute_error

    return mean_absolute_error(y, p)


def _r2(y, p, s):
    from sklearn.metrics import r2_score

    return r2_score(y, p)


_METRICS: dict[str, dict[str, Callable[[Any, Any, Any], float]]] = {
    "classification": {
        "accuracy": _accuracy,
        "f1": _f1,
        "roc_auc": _roc_auc,
        "precision": _precision,
        "recall": _recall,
        "log_loss": _log_loss,
    },
    "regression": {"rmse": _rmse, "mae": _mae, "r2": _r2},
}
