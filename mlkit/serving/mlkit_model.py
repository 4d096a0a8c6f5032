"""The registered model's own code: raw rows of the data file in, the data's labels out.

A copy of this file ships inside every registered model (its ``code/`` folder, next to the project's
package that holds the feature hook), and MLflow's ``python_function`` flavor loads the model through
:func:`_load_pyfunc`. So ``mlflow.pyfunc.load_model("models:/NAME@production")`` and
``mlflow models serve`` need neither mlkit nor the project checkout: this module imports only the
standard library, pandas, numpy and cloudpickle, and never anything from mlkit.

What the model does with a batch of rows: check the columns against the raw input schema (the data
file's columns without the target), call the project's ``data.hook`` on them, drop the columns training
dropped, run the fitted scikit-learn Pipeline, and turn class codes back into the labels of the data.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

CONFIG_FILE = "mlkit_model.json"  # the pyfunc flavor's ``data``: the serving config below
PIPELINE_FILE = "model.pkl"  # the sklearn flavor's cloudpickled Pipeline, shared by both flavors
FORMAT = 1

# raw input column types, named as in MLflow's schema (long, double, string, boolean)
LONG, DOUBLE, STRING, BOOLEAN = "long", "double", "string", "boolean"
EXPECTED = {
    LONG: "long (an integer or null)",
    DOUBLE: "double (a number or null)",
    STRING: "string (a string or null)",
    BOOLEAN: "boolean (true, false or null)",
}
PROBABILITIES = "probabilities"  # the predict param asking for class probabilities


class InputError(ValueError):
    """Rows the model cannot take: a missing, unexpected or mistyped column (``column``, ``expected``)."""

    def __init__(self, message: str, column: str | None = None, expected: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.expected = expected

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message}
        if self.column is not None:
            out["column"] = self.column
        if self.expected is not None:
            out["expected"] = self.expected
        return out


class RawInputModel:
    """The fitted Pipeline behind the raw input schema, the feature hook and the label mapping."""

    def __init__(self, pipeline: Any, config: Mapping[str, Any], hook: Callable[[Any], Any] | None) -> None:
        self.pipeline = pipeline
        self.config = dict(config)
        self.task: str = config["task"]
        self.columns: list[dict[str, Any]] = list(config["columns"])
        self.types: dict[str, str] = {c["name"]: c["type"] for c in self.columns}
        self.required: list[str] = [c["name"] for c in self.columns if c.get("required", True)]
        self.classes: list[Any] | None = config.get("classes")
        self.hook = hook
        self._after_hook_drop = [*config.get("drop", []), config.get("target")]
        self._labels: Any = None
        if self.classes is not None:
            import numpy as np

            self._labels = np.asarray(self.classes, dtype=object)

    # --- the pyfunc interface --------------------------------------------------------------------------
    def predict(self, model_input: Any, params: Mapping[str, Any] | None = None) -> Any:
        """pyfunc's predict: a DataFrame of raw rows (extra columns are ignored, as MLflow does)."""
        frame = self.conform(_as_frame(model_input), extra="ignore")
        return self.predict_frame(frame, probabilities=bool((params or {}).get(PROBABILITIES, False)))

    # --- the fast path -----------------------------------------------------------------------------------
    def predict_frame(self, frame: Any, probabilities: bool = False) -> Any:
        """Predictions for a conformed frame: labels (an object array), or a DataFrame of probabilities."""
        features = self.hook(frame) if self.hook is not None else frame
        dropped = [c for c in self._after_hook_drop if c is not None and c in features.columns]
        if dropped:
            features = features.drop(columns=dropped)
        if probabilities:
            if self.classes is None:
                raise InputError("probabilities are only for classification models")
            import pandas as pd

            return pd.DataFrame(self.pipeline.predict_proba(features), columns=[str(c) for c in self.classes])
        predicted = self.pipeline.predict(features)
        if self._labels is not None:
            return self._labels[predicted.astype("int64")]
        return predicted

    def conform(self, frame: Any, extra: str = "error") -> Any:
        """``frame`` with the schema's columns, each checked and cast (ints with gaps become floats)."""
        import pandas as pd

        missing = [name for name in self.required if name not in frame.columns]
        if missing:
            raise _missing(missing[0], self.types[missing[0]])
        if extra == "error":
            unexpected = [str(c) for c in frame.columns if c not in self.types]
            if unexpected:
                raise _unexpected(unexpected[0], list(self.types))
        out = {}
        for name, kind in self.types.items():
            if name in frame.columns:
                out[name] = _cast_series(frame[name], name, kind)
        return pd.DataFrame(out, index=frame.index)

    def check_columns(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """Check plain column lists (decoded JSON) without pandas: names, then each value's type."""
        for name in self.required:
            if name not in columns:
                raise _missing(name, self.types[name])
        for name, values in columns.items():
            kind = self.types.get(name)
            if kind is None:
                raise _unexpected(str(name), list(self.types))
            accept = _ACCEPT[kind]
            for value in values:
                if value is not None and not accept(value):
                    raise _mistyped(name, kind, value)

    def frame_from_columns(self, columns: Mapping[str, Sequence[Any]]) -> Any:
        """A frame from column lists that passed :meth:`check_columns` (one per batch, not per request)."""
        import numpy as np
        import pandas as pd

        data = {}
        for name, kind in self.types.items():
            values = columns.get(name)
            if values is None:
                continue
            if kind in (LONG, DOUBLE):
                if kind == LONG and None not in values and all(type(v) is int for v in values):
                    data[name] = np.asarray(values, dtype=np.int64)
                else:
                    data[name] = np.asarray([math.nan if v is None else v for v in values], dtype=np.float64)
            else:
                data[name] = pd.Series(values, dtype=object)
        return pd.DataFrame(data)


def _load_pyfunc(data_path: str, model_config: Any = None) -> RawInputModel:
    """MLflow's loader entry point: ``data_path`` is this model's serving config (``CONFIG_FILE``)."""
    import cloudpickle

    folder = os.path.dirname(os.path.abspath(data_path))
    with open(data_path, encoding="utf-8") as stream:
        config = json.load(stream)
    if config.get("format") != FORMAT:
        raise ValueError(f"{CONFIG_FILE}: format {config.get('format')!r} is not {FORMAT}; update mlkit")
    with open(os.path.join(folder, PIPELINE_FILE), "rb") as stream:
        pipeline = cloudpickle.load(stream)
    hook = _import_hook(config["hook"], os.path.join(folder, "code")) if config.get("hook") else None
    return RawInputModel(pipeline, config, hook)


def _import_hook(spec: str, code_dir: str) -> Callable[[Any], Any]:
    """``package.module:function`` from this model's own copy of the project's package.

    Another version of the same project (a hot swap) ships a package of the same name, so a copy that
    is already imported is put aside first: each version calls its own hook.
    """
    module_name, _, function_name = spec.partition(":")
    top = module_name.split(".")[0]
    for name in [n for n in list(sys.modules) if n == top or n.startswith(top + ".")]:
        del sys.modules[name]
    previous = sys.path
    sys.path = [code_dir, *[p for p in previous if p != code_dir]]
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(module_name)
    finally:
        sys.path = previous
    function: Callable[[Any], Any] = getattr(module, function_name)
    return function


def _as_frame(model_input: Any) -> Any:
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, Mapping):
        return pd.DataFrame({k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in model_input.items()})
    return pd.DataFrame(model_input)


def _cast_series(series: Any, name: str, kind: str) -> Any:
    """One column cast to what training saw; values that do not fit the type raise :class:`InputError`."""
    import numpy as np
    import pandas as pd

    dtype = series.dtype
    if kind in (LONG, DOUBLE):
        if dtype.kind in "iu":
            return series if kind == LONG else series.astype(np.float64)
        if dtype.kind == "f":
            if kind == LONG:
                present = series.dropna()
                if not (present == np.floor(present)).all():
                    bad = present[present != np.floor(present)].iloc[0]
                    raise _mistyped(name, kind, bad)
            return series.astype(np.float64)
        if dtype.kind == "b":
            raise _mistyped(name, kind, series.iloc[0])
        numbers = pd.to_numeric(series, errors="coerce")
        wrong = numbers.isna() & series.notna()
        if wrong.any():
            raise _mistyped(name, kind, series[wrong].iloc[0])
        return _cast_series(numbers, name, kind)
    if kind == STRING:
        if dtype.kind in "iufb":
            if series.isna().all():
                return series.astype(object)
            raise _mistyped(name, kind, series.dropna().iloc[0])
        present = series.dropna()
        wrong = ~present.map(lambda v: isinstance(v, str))
        if wrong.any():
            raise _mistyped(name, kind, present[wrong].iloc[0])
        return series.astype(object)
    if kind == BOOLEAN:
        if dtype.kind == "b":
            return series
        present = series.dropna()
        wrong = ~present.map(lambda v: isinstance(v, (bool, np.bool_)))
        if wrong.any():
            raise _mistyped(name, kind, present[wrong].iloc[0])
        return series.astype(object)
    return series


def _is_long(value: Any) -> bool:
    if type(value) is int:
        return True
    return type(value) is float and (math.isnan(value) or value.is_integer())


def _is_double(value: Any) -> bool:
    return type(value) in (int, float)


_ACCEPT: dict[str, Callable[[Any], bool]] = {
    LONG: _is_long,
    DOUBLE: _is_double,
    STRING: lambda value: type(value) is str,
    BOOLEAN: lambda value: type(value) is bool,
}


def _missing(name: str, kind: str) -> InputError:
    return InputError(f"missing column {name!r}: expected {EXPECTED[kind]}", column=name, expected=kind)


def _unexpected(name: str, known: list[str]) -> InputError:
    shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
    return InputError(f"unexpected column {name!r}; the model takes: {shown}", column=name)


def _mistyped(name: str, kind: str, value: Any) -> InputError:
    shown = repr(value.item() if hasattr(value, "item") else value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return InputError(f"column {name!r}: expected {EXPECTED[kind]}, got {shown}", column=name, expected=kind)
