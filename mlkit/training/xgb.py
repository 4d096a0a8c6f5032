"""XGBoost specifics: deterministic settings, evaluation sets, early stopping, per-iteration history."""

from __future__ import annotations

from typing import Any


def make_deterministic(estimator: Any) -> None:
    """Settings under which the same data, params and seed give bit-identical models on one machine.

    The CPU ``hist`` method reduces its histograms in a fixed order whatever the thread count, and every
    random choice (subsample, colsample_*) is drawn from ``random_state``.
    """
    params = estimator.get_params(deep=False)
    updates: dict[str, Any] = {}
    if params.get("tree_method") in (None, "auto"):
        updates["tree_method"] = "hist"
    if params.get("device") in (None, "cpu"):
        updates["device"] = "cpu"
    if params.get("verbosity") is None:
        updates["verbosity"] = 0
    estimator.set_params(**updates)


def fit_kwargs(estimator: Any, eval_sets: list[tuple[Any, Any]], early_stopping_rounds: int | None) -> dict[str, Any]:
    """Keyword arguments for ``XGBModel.fit``: evaluation sets, and early stopping on the last one."""
    if early_stopping_rounds is not None:
        estimator.set_params(early_stopping_rounds=early_stopping_rounds)
    return {"eval_set": eval_sets, "verbose": False} if eval_sets else {}


def iteration_history(estimator: Any, names: list[str]) -> dict[str, list[float]]:
    """``{"xgb.<set>.<metric>": [value per boosting round]}`` from a fitted model's evaluation results."""
    try:
        results = estimator.evals_result()
    except Exception:  # fitted without eval_set
        return {}
    history: dict[str, list[float]] = {}
    for index, (_, metrics) in enumerate(sorted(results.items())):
        label = names[index] if index < len(names) else f"set{index}"
        for metric, values in metrics.items():
            history[f"xgb.{label}.{metric}"] = [float(v) for v in values]
    return history


def best_iteration(estimator: Any) -> int | None:
    value = getattr(estimator, "best_iteration", None)
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
