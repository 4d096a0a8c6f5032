"""The scikit-learn preprocessing every declarative model gets: impute and scale numbers, impute and
one-hot encode categories. Columns come from ``data.numeric``/``data.categorical`` or from dtypes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlkit.errors import UsageError


def infer_columns(
    frame: Any, numeric: Sequence[str] | None, categorical: Sequence[str] | None
) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns: the listed ones, the rest inferred from dtypes."""
    from pandas.api import types

    columns = list(frame.columns)
    for name in [*(numeric or []), *(categorical or [])]:
        if name not in columns:
            raise UsageError(
                f"mlkit.yaml: data: column {name!r} is not in the data; columns: " + ", ".join(map(str, columns[:20])),
                hint="fix data.numeric / data.categorical",
            )
    listed = set(numeric or []) | set(categorical or [])
    inferred_numeric, inferred_categorical = [], []
    for name in columns:
        if name in listed:
            continue
        dtype = frame[name].dtype
        if types.is_bool_dtype(dtype) or not types.is_numeric_dtype(dtype):
            inferred_categorical.append(name)
        else:
            inferred_numeric.append(name)
    # inferred lists leave out every listed column, so a column never lands in both
    num = list(numeric) if numeric is not None else inferred_numeric
    cat = list(categorical) if categorical is not None else inferred_categorical
    return num, cat


def build_preprocessor(numeric: Sequence[str], categorical: Sequence[str]) -> Any:
    """A ColumnTransformer: median-impute + scale numbers; most-frequent-impute + one-hot categories."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    if numeric:
        parts.append(
            (
                "numeric",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                list(numeric),
            )
        )
    if categorical:
        parts.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                list(categorical),
            )
        )
    if not parts:
        raise UsageError(
            "no feature columns left to train on",
            hint="check data.drop, data.numeric and data.categorical in mlkit.yaml",
        )
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)
