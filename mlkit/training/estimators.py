"""Resolving the estimator a project names, and validating its parameters before any work starts."""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

from mlkit import allowed_code
from mlkit import constants as C
from mlkit.errors import UsageError, first_line
from mlkit.training import xgb

# XGBoost checks its parameters only inside fit, after data loading (and some not at all: n_estimators=-5
# trains nothing and exits 0); these are checked up front, with the ranges XGBoost documents.
_XGB_INTS = {
    "n_estimators": 1,
    "max_depth": 0,
    "max_leaves": 0,
    "max_bin": 2,
    "num_parallel_tree": 1,
    "max_cat_to_onehot": 1,
    "max_cat_threshold": 1,
    "early_stopping_rounds": 1,
}  # name: smallest value
_UNIT = (0.0, 1.0, False)  # (low, high, low allowed): 0 < x <= 1
_XGB_FLOATS: dict[str, tuple[float, float, bool]] = {
    "learning_rate": (0.0, 1.0, True),
    "gamma": (0.0, math.inf, True),
    "min_child_weight": (0.0, math.inf, True),
    "max_delta_step": (0.0, math.inf, True),
    "subsample": _UNIT,
    "colsample_bytree": _UNIT,
    "colsample_bylevel": _UNIT,
    "colsample_bynode": _UNIT,
    "reg_alpha": (0.0, math.inf, True),
    "reg_lambda": (0.0, math.inf, True),
    "scale_pos_weight": (0.0, math.inf, False),
}


def is_xgboost(estimator: Any) -> bool:
    return type(estimator).__module__.split(".")[0] == "xgboost"


def resolve_estimator(path: str) -> type:
    """The estimator class at import path ``path`` (``xgboost.XGBClassifier``, ``sklearn.svm.SVC``...)."""
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(
            f"{C.CONFIG_FILE}: model.estimator: cannot import module {module_name!r} ({exc})",
            hint="use an installed estimator, e.g. xgboost.XGBClassifier or sklearn.ensemble.RandomForestClassifier",
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        close = difflib.get_close_matches(class_name, [n for n in dir(module) if not n.startswith("_")], n=1)
        suggestion = f"; did you mean {module_name}.{close[0]}?" if close else ""
        raise UsageError(
            f"{C.CONFIG_FILE}: model.estimator: {path!r} not found{suggestion}",
            hint=f"fix model.estimator in {C.CONFIG_FILE}",
        )
    if not inspect.isclass(cls) or not hasattr(cls, "fit") or not hasattr(cls, "get_params"):
        raise UsageError(
            f"{C.CONFIG_FILE}: model.estimator: {path!r} is not a scikit-learn compatible "
            "estimator class (needs fit and get_params)",
            hint=f"fix model.estimator in {C.CONFIG_FILE}",
        )
    # a package may re-export a class from elsewhere: it must be defined where it was allowed from
    allowed_code.defined_in(cls, path, "model.estimator")
    return cls


def check_task(cls: type, path: str, task: str) -> None:
    """Refuse a regressor for a classification project and the other way round."""
    kind = getattr(cls, "_estimator_type", None)
    if kind is None:
        try:
            kind = getattr(cls().__sklearn_tags__(), "estimator_type", None)
        except Exception:
            kind = None
    wanted = "classifier" if task == "classification" else "regressor"
    if kind in ("classifier", "regressor") and kind != wanted:
        raise UsageError(
            f"{C.CONFIG_FILE}: model.estimator: {path} is a {kind} but model.task is {task}",
            hint=f"use a {wanted} or change model.task",
        )


def build_estimator(path: str, params: Mapping[str, Any], *, seed: int, task: str) -> Any:
    """An unfitted estimator from ``params.estimator``, seeded, with every parameter checked.

    Unknown names and values of the wrong type raise :class:`UsageError` naming params.yaml and the key.
    """
    cls = resolve_estimator(path)
    _check_constructible(cls, path)
    check_task(cls, path, task)
    known = cls().get_params(deep=False)
    _check_names(path, params, known)
    settings = dict(params)
    if "random_state" in known and settings.get("random_state") is None:
        settings["random_state"] = seed
    try:
        estimator = cls(**settings)
    except TypeError as exc:
        raise UsageError(f"{C.PARAMS_FILE}: estimator: {exc}", hint=f"fix {C.PARAMS_FILE}") from None
    _check_values(estimator, path, settings)
    if is_xgboost(estimator):
        xgb.make_deterministic(estimator)
    return estimator


def _check_constructible(cls: type, path: str) -> None:
    """Refuse a class that needs constructor arguments (a Pipeline's steps, a meta-estimator's estimator):
    params.yaml holds values, not other estimators."""
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return
    required = [
        p.name
        for p in parameters
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        raise UsageError(
            f"{C.CONFIG_FILE}: model.estimator: {path} needs constructor arguments ({', '.join(required)}), "
            f"which {C.PARAMS_FILE} cannot give",
            hint="build it in code: model.entrypoint: PACKAGE.model:build returning the estimator",
        )


def _check_names(path: str, params: Mapping[str, Any], known: Mapping[str, Any]) -> None:
    """Refuse every name ``path`` does not take, all in one message (switching the estimator with
    ``--set`` typically leaves several of the previous estimator's params behind)."""
    unknown = [name for name in params if name not in known]
    if not unknown:
        return
    hint = f"fix {C.PARAMS_FILE} or the --set override (params.estimator.* must fit model.estimator)"

    def suggestion(name: str, template: str) -> str:
        close = difflib.get_close_matches(name, list(known), n=1)
        return template.format(close[0]) if close else ""

    if len(unknown) == 1:
        name = unknown[0]
        raise UsageError(
            f"{C.PARAMS_FILE}: estimator.{name}: not a parameter of {path}" + suggestion(name, "; did you mean {!r}?"),
            hint=hint,
        )
    listed = ", ".join(f"estimator.{name}" + suggestion(name, " (did you mean {!r}?)") for name in unknown)
    raise UsageError(f"{C.PARAMS_FILE}: {len(unknown)} params are not parameters of {path}: {listed}", hint=hint)


def call_entrypoint(entrypoint: Callable[..., Any], params: Mapping[str, Any], X: Any, y: Any) -> Any:
    """Call ``entrypoint(params)`` or ``entrypoint(params, X, y)`` (``params``: the resolved params.yaml);
    it must return an estimator."""
    try:
        accepts_data = len(inspect.signature(entrypoint).parameters) >= 3
    except (TypeError, ValueError):
        accepts_data = False
    built = entrypoint(params, X, y) if accepts_data else entrypoint(params)
    if not (hasattr(built, "fit") and hasattr(built, "predict")):
        raise UsageError(
            f"{C.CONFIG_FILE}: model.entrypoint: returned {type(built).__name__}, which has no fit/predict",
            hint="return a scikit-learn estimator or Pipeline",
        )
    return built


def fits_on_one_core(model: Any) -> bool:
    """Whether fitting ``model`` (an estimator or a Pipeline) keeps to one core."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    if is_xgboost(final):
        return False
    try:
        return final.get_params(deep=False).get("n_jobs") in (None, 1)
    except Exception:
        return False


def _check_values(estimator: Any, path: str, settings: Mapping[str, Any]) -> None:
    validate = getattr(estimator, "_validate_params", None)
    if callable(validate) and not is_xgboost(estimator):
        try:
            validate()
        except (ValueError, TypeError) as exc:
            name = _param_in_message(str(exc), settings)
            where = f"estimator.{name}" if name else "estimator"
            message = first_line(exc)
            raise UsageError(f"{C.PARAMS_FILE}: {where}: {message}", hint=f"fix {C.PARAMS_FILE}") from None
        return
    problems = []
    ranges = is_xgboost(estimator)  # the types hold for LightGBM and CatBoost too, the ranges do not (max_depth=-1)
    for name, value in settings.items():
        if value is None:
            continue
        if name in _XGB_INTS:
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"estimator.{name}: must be an integer for {path}, got {value!r}")
            elif ranges and value < _XGB_INTS[name]:
                problems.append(f"estimator.{name}: must be at least {_XGB_INTS[name]} for {path}, got {value!r}")
        elif name in _XGB_FLOATS:
            low, high, low_allowed = _XGB_FLOATS[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"estimator.{name}: must be a number for {path}, got {value!r}")
            elif ranges and (not (low <= value <= high if low_allowed else low < value <= high) or math.isnan(value)):
                problems.append(
                    f"estimator.{name}: must be in {_interval(low, high, low_allowed)} for {path}, got {value!r}"
                )
    if problems:
        raise UsageError(f"{C.PARAMS_FILE}: " + "; ".join(problems), hint=f"fix {C.PARAMS_FILE}")


def _interval(low: float, high: float, low_allowed: bool) -> str:
    return f"{'[' if low_allowed else '('}{low:g}, {'inf)' if math.isinf(high) else f'{high:g}]'}"


def _param_in_message(message: str, settings: Mapping[str, Any]) -> str | None:
    for name in settings:
        if f"'{name}'" in message:
            return name
    return None
