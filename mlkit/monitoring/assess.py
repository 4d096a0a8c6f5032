"""From a reference profile and summaries of current data to verdicts: per-feature drift, data quality,
prediction drift, performance against labels, and whether the monitoring policy was crossed.

Pure computation on summaries: no files, no tracking store. :mod:`mlkit.monitoring.monitor` feeds it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mlkit.monitoring import drift
from mlkit.monitoring.profile import FeatureProfile, ReferenceProfile
from mlkit.monitoring.sketch import CategoricalSketch, NumericSketch

if TYPE_CHECKING:
    from mlkit.config import MonitoringSection

# kinds of data-quality findings
MISSING_COLUMN, EXTRA_COLUMN, TYPE_CHANGE = "missing_column", "extra_column", "type_change"
MISSING_SHARE, OUT_OF_RANGE, NEW_CATEGORY = "missing_share", "out_of_range", "new_category"
SCHEMA_KINDS = (MISSING_COLUMN, EXTRA_COLUMN, TYPE_CHANGE)


@dataclass
class FeatureDrift:
    """One column compared with its reference: every test, and the one that decides (``test``)."""

    name: str
    kind: str
    test: str
    value: float
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    reference_missing_share: float
    current_missing_share: float
    statistics: dict[str, drift.Statistic] = field(default_factory=dict)
    reference_mean: float | None = None
    current_mean: float | None = None
    out_of_range_share: float | None = None
    new_categories: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["value"] = _round(self.value)
        data["statistics"] = {k: v.to_dict() for k, v in self.statistics.items()}
        for key in (
            "reference_missing_share",
            "current_missing_share",
            "reference_mean",
            "current_mean",
            "out_of_range_share",
        ):
            data[key] = _round(data[key])
        data["new_categories"] = dict(list(self.new_categories.items())[:10])
        return data


@dataclass
class Finding:
    """A data-quality or schema finding; ``crosses`` when the policy counts it."""

    kind: str
    feature: str
    detail: str
    share: float | None = None
    crosses: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "share": _round(self.share)}


@dataclass
class MetricCheck:
    """A metric on the labelled current rows, beside its value on the training run's test split."""

    name: str
    current: float | None
    training: float | None
    floor: str | None = None
    passed: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "current": _round(self.current),
            "training": _round(self.training),
            "floor": self.floor,
            "passed": self.passed,
        }


@dataclass
class Assessment:
    features: list[FeatureDrift]
    prediction: FeatureDrift | None
    target: FeatureDrift | None
    findings: list[Finding]
    metrics: list[MetricCheck]
    drifted_share: float
    reasons: list[str]

    @property
    def drifted(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.drifted]

    @property
    def crossed(self) -> bool:
        return bool(self.reasons)


def compare_feature(
    reference: FeatureProfile,
    current: NumericSketch | CategoricalSketch,
    policy: MonitoringSection | None = None,
    *,
    name: str | None = None,
) -> FeatureDrift:
    """All tests on one column and the verdict of the test chosen by type and size (or by the policy)."""
    thresholds = policy.thresholds.model_dump() if policy is not None else None
    statistics = drift.compare(reference, current, thresholds)
    test = drift.choose_test(
        reference.kind,
        reference.count,
        current.count,
        numeric_test=policy.numeric_test if policy else "auto",
        categorical_test=policy.categorical_test if policy else "auto",
        small_sample=policy.small_sample if policy else drift.SMALL_SAMPLE,
    )
    decided = statistics[test]
    current_rows = current.count + current.missing
    result = FeatureDrift(
        name=name or reference.name,
        kind=reference.kind,
        test=test,
        value=decided.value,
        threshold=decided.threshold,
        drifted=decided.drifted,
        reference_rows=reference.rows,
        current_rows=current_rows,
        reference_missing_share=reference.missing_share,
        current_missing_share=current.missing / current_rows if current_rows else 0.0,
        statistics=statistics,
    )
    if isinstance(current, NumericSketch):
        result.reference_mean = reference.mean
        result.current_mean = current.mean if current.count else None
        result.out_of_range_share = (current.below + current.above) / current.count if current.count else 0.0
    else:
        result.new_categories = drift.new_categories(reference, current)
    return result


def assess(
    profile: ReferenceProfile,
    sketches: Mapping[str, NumericSketch | CategoricalSketch],
    policy: MonitoringSection,
    *,
    columns: Sequence[str],
    ignored_columns: Iterable[str] = (),
    prediction: NumericSketch | CategoricalSketch | None = None,
    target: NumericSketch | CategoricalSketch | None = None,
    metrics: Sequence[MetricCheck] = (),
) -> Assessment:
    """Verdicts for the current data summarised in ``sketches`` (one per profiled feature found in
    ``columns``, the columns the current data has). ``ignored_columns`` are known non-features (the
    target, ids, the prediction log's own columns): never reported as extra."""
    findings: list[Finding] = []
    features: list[FeatureDrift] = []
    present = set(columns)
    for reference in profile.features:
        sketch = sketches.get(reference.name)
        if reference.name not in present or sketch is None:
            findings.append(
                Finding(MISSING_COLUMN, reference.name, "column missing from the current data", crosses=True)
            )
            continue
        result = compare_feature(reference, sketch, policy)
        features.append(result)
        findings += _quality(reference, sketch, result, policy)
    skip = set(profile.feature_names) | set(ignored_columns)
    findings += [
        Finding(EXTRA_COLUMN, name, "column not in the training data (not monitored)")
        for name in columns
        if name not in skip
    ]
    drifted = [f for f in features if f.drifted]
    share = len(drifted) / len(features) if features else 0.0
    predicted = (
        compare_feature(profile.prediction, prediction, policy)
        if profile.prediction is not None and prediction is not None and prediction.count
        else None
    )
    labelled = (
        compare_feature(profile.target, target, policy)
        if profile.target is not None and target is not None and target.count
        else None
    )

    reasons = []
    if features and share >= policy.drift_share:
        names = ", ".join(f.name for f in drifted[:5]) + (", ..." if len(drifted) > 5 else "")
        reasons.append(
            f"{len(drifted)} of {len(features)} features drifted ({names}), share {share:.2f} >= {policy.drift_share:g}"
        )
    if predicted is not None and predicted.drifted and policy.prediction_drift:
        reasons.append(f"predictions drifted ({predicted.test} {_fmt(predicted.value)})")
    for check in metrics:
        if check.passed is False:
            reasons.append(f"{check.name} {_fmt(check.current)} fails the floor {check.floor}")
    missing = [f.feature for f in findings if f.kind == MISSING_COLUMN]
    if missing:
        reasons.append(
            "columns missing from the current data: " + ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        )
    crossing = [f for f in findings if f.crosses and f.kind != MISSING_COLUMN]
    if crossing:
        reasons.append(
            "data quality: "
            + "; ".join(f"{f.feature}: {f.detail}" for f in crossing[:3])
            + ("; ..." if len(crossing) > 3 else "")
        )
    return Assessment(
        features=features,
        prediction=predicted,
        target=labelled,
        findings=findings,
        metrics=list(metrics),
        drifted_share=share,
        reasons=reasons,
    )


def _quality(
    reference: FeatureProfile,
    sketch: NumericSketch | CategoricalSketch,
    result: FeatureDrift,
    policy: MonitoringSection,
) -> list[Finding]:
    out = []
    fail = policy.fail_on_data_quality
    if isinstance(sketch, NumericSketch) and sketch.unparsable:
        rows = sketch.count + sketch.missing
        out.append(
            Finding(
                TYPE_CHANGE,
                reference.name,
                f"{sketch.unparsable} value(s) are not numbers (was {reference.dtype})",
                share=sketch.unparsable / rows if rows else None,
                crosses=fail,
            )
        )
    jump = result.current_missing_share - result.reference_missing_share
    if result.current_rows and jump > policy.max_missing_increase:
        out.append(
            Finding(
                MISSING_SHARE,
                reference.name,
                f"missing share {result.reference_missing_share:.1%} -> {result.current_missing_share:.1%}",
                share=result.current_missing_share,
                crosses=fail,
            )
        )
    if result.out_of_range_share is not None and result.out_of_range_share > policy.max_out_of_range_share:
        assert isinstance(sketch, NumericSketch)
        out.append(
            Finding(
                OUT_OF_RANGE,
                reference.name,
                f"{result.out_of_range_share:.1%} of values outside the training range "
                f"[{_fmt(reference.minimum)}, {_fmt(reference.maximum)}] "
                f"(current [{_fmt(sketch.minimum)}, {_fmt(sketch.maximum)}])",
                share=result.out_of_range_share,
                crosses=fail,
            )
        )
    if result.new_categories:
        assert isinstance(sketch, CategoricalSketch)
        rows = sum(result.new_categories.values())
        share = rows / sketch.count if sketch.count else 0.0
        if share > policy.max_new_category_share:
            shown = ", ".join(repr(k) for k in list(result.new_categories)[:5])
            out.append(
                Finding(
                    NEW_CATEGORY,
                    reference.name,
                    f"new categories {shown} in {share:.1%} of rows",
                    share=share,
                    crosses=fail,
                )
            )
    return out


def metric_checks(
    names: Sequence[str],
    current: Mapping[str, float],
    training: Mapping[str, float],
    floors: Sequence[tuple[str, str, float]],
) -> list[MetricCheck]:
    """The metrics in ``names`` that could be computed, each with its floor when the policy sets one."""
    by_metric = {metric: (op, value) for metric, op, value in floors}
    out = []
    for name in names:
        value = current.get(name)
        if value is None:
            continue
        floor = by_metric.get(name)
        passed = None if floor is None or value != value else _holds(value, *floor)
        train_value = training.get(name)
        out.append(
            MetricCheck(
                name,
                value,
                None if train_value is None or train_value != train_value else train_value,
                f"{name} {floor[0]} {floor[1]:g}" if floor else None,
                passed,
            )
        )
    return out


def _holds(value: float, op: str, limit: float) -> bool:
    return {">=": value >= limit, ">": value > limit, "<=": value <= limit, "<": value < limit, "==": value == limit}[
        op
    ]


def _fmt(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.4g}"


def _round(value: float | None) -> float | None:
    if value is None or value != value or math.isinf(value):
        return None
    return round(float(value), 6)
