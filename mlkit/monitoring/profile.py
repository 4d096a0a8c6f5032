"""The reference profile: what monitoring needs to know about the training split, computed once at train time.

Per feature: its kind (numeric or categorical), dtype, missing share, minimum and maximum, mean and standard
deviation, and its distribution (counts on bin edges at the reference's percentiles, or on its distinct values
when it has few, for numbers; the most frequent categories and the rest as ``other`` for categories). Beside
the features: the distribution of the model's predictions on the test split, the class balance of the
training target, and the test metrics. The profile is a few tens of KB of JSON, deterministic for the same
data, and identified by the sha256 of its canonical JSON, which the run and the version carry as a tag.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mlkit.errors import UsageError
from mlkit.monitoring.sketch import CategoricalSketch, NumericSketch, category_key, numeric_values

FORMAT = 1
QUANTILE_BINS = 100
"""Numeric distributions are kept on the reference's percentiles (101 edges), and finer in the tails."""
TAIL_LEVELS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075)
"""Extra quantile levels in each tail, where percentile bins are widest and shifts show first."""
DISCRETE_MAX = 20
"""A numeric column with at most this many distinct values is kept value by value (exact tests)."""
TOP_CATEGORIES = 100
"""Categories kept one by one in the profile; rarer ones are summed into ``other``."""

Kind = Literal["numeric", "categorical"]


@dataclass
class FeatureProfile:
    """One column of the reference. ``edges``/``counts`` for numbers, ``categories``/``other`` for categories."""

    name: str
    kind: Kind
    dtype: str
    count: int  # values present
    missing: int
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None
    std: float | None = None
    discrete: bool = False
    edges: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    categories: dict[str, int] = field(default_factory=dict)
    other: int = 0
    unique: int = 0

    @property
    def rows(self) -> int:
        return self.count + self.missing

    @property
    def missing_share(self) -> float:
        return self.missing / self.rows if self.rows else 0.0

    def sketch(self) -> NumericSketch:
        """The reference as a :class:`NumericSketch` on its own edges."""
        return NumericSketch(
            edges=list(self.edges),
            counts=list(self.counts),
            missing=self.missing,
            minimum=self.minimum,
            maximum=self.maximum,
        )

    def empty_sketch(self) -> NumericSketch | CategoricalSketch:
        """An empty summary of current data, comparable with this reference."""
        if self.kind == "numeric":
            return NumericSketch.empty(self.edges)
        return CategoricalSketch()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "count": self.count,
            "missing": self.missing,
        }
        if self.kind == "numeric":
            data.update(
                minimum=self.minimum,
                maximum=self.maximum,
                mean=self.mean,
                std=self.std,
                discrete=self.discrete,
                edges=self.edges,
                counts=self.counts,
            )
        else:
            data.update(categories=self.categories, other=self.other, unique=self.unique)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureProfile:
        return cls(**{key: data[key] for key in data if key in cls.__dataclass_fields__})


@dataclass
class ReferenceProfile:
    """Everything `mlkit monitor` compares current data with; see the module docstring."""

    task: str
    rows: int
    features: list[FeatureProfile]
    prediction: FeatureProfile | None = None
    target: FeatureProfile | None = None
    classes: list[str] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    format: int = FORMAT

    def feature(self, name: str) -> FeatureProfile | None:
        return next((f for f in self.features if f.name == name), None)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "task": self.task,
            "rows": self.rows,
            "classes": self.classes,
            "metrics": {k: _number(v) for k, v in sorted(self.metrics.items())},
            "features": [f.to_dict() for f in self.features],
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "target": self.target.to_dict() if self.target else None,
        }

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): the same profile always gives the same bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    @classmethod
    def from_json(cls, text: str, source: str = "reference profile") -> ReferenceProfile:
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r} is not {FORMAT}")
            return cls(
                task=data["task"],
                rows=int(data["rows"]),
                features=[FeatureProfile.from_dict(f) for f in data["features"]],
                prediction=FeatureProfile.from_dict(data["prediction"]) if data.get("prediction") else None,
                target=FeatureProfile.from_dict(data["target"]) if data.get("target") else None,
                classes=data.get("classes"),
                metrics={k: (math.nan if v is None else float(v)) for k, v in (data.get("metrics") or {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(
                f"{source}: not a readable reference profile ({exc})",
                hint="train the model again with this mlkit version to record a new profile",
            ) from None


def build_profile(
    frame: Any,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    task: str,
    predictions: Any | None = None,
    target: Any | None = None,
    classes: Sequence[Any] | None = None,
    metrics: Mapping[str, float] | None = None,
) -> ReferenceProfile:
    """Profile the feature columns of ``frame`` (pandas), the ``predictions`` on the test split and the
    training ``target``. For classification, ``predictions`` and ``target`` hold class codes 0..k-1 and
    ``classes`` the labels they stand for; they are profiled as labels, the way the served model answers.
    """
    import pandas as pd

    features = [profile_column(name, frame[name], "numeric") for name in numeric if name in frame.columns]
    features += [profile_column(name, frame[name], "categorical") for name in categorical if name in frame.columns]
    order = {name: i for i, name in enumerate(frame.columns)}
    features.sort(key=lambda f: order[f.name])
    labels = [category_key(c) for c in classes] if classes is not None else None
    kind: Kind = "categorical" if task == "classification" else "numeric"

    def outcome(name: str, values: Any) -> FeatureProfile | None:
        if values is None:
            return None
        series = pd.Series(list(values) if labels is None else [labels[int(v)] for v in values])
        return profile_column(name, series, kind)

    return ReferenceProfile(
        task=task,
        rows=len(frame),
        features=features,
        prediction=outcome("prediction", predictions),
        target=outcome("target", target) if task == "classification" else None,
        classes=labels,
        metrics={k: float(v) for k, v in (metrics or {}).items()},
    )


def profile_column(name: str, series: Any, kind: Kind) -> FeatureProfile:
    """One column's profile (see :class:`FeatureProfile`)."""
    import numpy as np

    dtype = str(series.dtype)
    if kind == "categorical":
        categories = CategoricalSketch()
        categories.update(series)
        ranked = sorted(categories.counts.items(), key=lambda item: (-item[1], item[0]))
        kept = dict(ranked[:TOP_CATEGORIES])
        return FeatureProfile(
            name=name,
            kind=kind,
            dtype=dtype,
            count=categories.count,
            missing=categories.missing,
            categories=kept,
            other=sum(n for _, n in ranked[TOP_CATEGORIES:]) + categories.overflow,
            unique=len(ranked),
        )
    values, unparsable = numeric_values(series)
    present = values[~np.isnan(values)]
    if not present.size:
        return FeatureProfile(
            name=name, kind=kind, dtype=dtype, count=0, missing=int(values.size), edges=[0.0], counts=[0, 0]
        )
    distinct = np.unique(present)
    discrete = distinct.size <= DISCRETE_MAX
    if discrete:
        edges = distinct
    else:
        levels = np.unique(
            np.concatenate([np.linspace(0.0, 1.0, QUANTILE_BINS + 1), TAIL_LEVELS, 1.0 - np.asarray(TAIL_LEVELS)])
        )
        edges = np.unique(np.quantile(present, levels, method="linear"))
    sketch = NumericSketch.empty([float(e) for e in edges])
    sketch.update(values, unparsable)
    return FeatureProfile(
        name=name,
        kind=kind,
        dtype=dtype,
        count=sketch.count,
        missing=sketch.missing,
        minimum=float(present.min()),
        maximum=float(present.max()),
        mean=_number(float(present.mean())),
        std=_number(float(present.std())),
        discrete=bool(discrete),
        edges=sketch.edges,
        counts=sketch.counts,
    )


def _number(value: float) -> float | None:
    return None if value != value or math.isinf(value) else float(value)


def write_reference(folder: Any, frame: Any, **kwargs: Any) -> dict[str, str]:
    """Build the profile of ``frame`` (see :func:`build_profile`), write it under ``folder`` at the artifact
    path of :data:`mlkit.tags.PROFILE_ARTIFACT`, and return the tag that names its hash."""
    from pathlib import Path

    from mlkit import tags

    profile = build_profile(frame, **kwargs)
    target = Path(folder) / tags.PROFILE_ARTIFACT
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(profile.to_json() + "\n", encoding="utf-8")
    return {tags.PROFILE_SHA256: profile.sha256}
