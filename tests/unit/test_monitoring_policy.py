"""The monitoring policy: its schema in mlkit.yaml, and when an assessment crosses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlkit.config import MonitoringSection, load_config
from mlkit.errors import ConfigError, ExitCode, MonitoringPolicyError
from mlkit.monitoring import assess as A
from mlkit.monitoring.profile import build_profile
from mlkit.monitoring.sketch import NumericSketch, numeric_values

BASE = {
    "version": 1,
    "project": {"name": "churn", "package": "churn"},
    "data": {"train": "data/train.csv", "target": "label"},
    "model": {"name": "churn", "task": "classification", "estimator": "xgboost.XGBClassifier"},
}


def load(tmp_path: Path, monitoring: dict):
    (tmp_path / "mlkit.yaml").write_text(yaml.safe_dump({**BASE, "monitoring": monitoring}))
    return load_config(tmp_path)[0]


def test_monitoring_defaults_and_a_policy_from_mlkit_yaml(tmp_path):
    assert load(tmp_path, {}).monitoring == MonitoringSection()
    policy = load(
        tmp_path,
        {"drift_share": 0.2, "numeric_test": "psi", "thresholds": {"psi": 0.25}, "metric_floors": ["f1 >= 0.8"]},
    ).monitoring
    assert (policy.drift_share, policy.numeric_test, policy.thresholds.psi) == (0.2, "psi", 0.25)
    assert policy.thresholds.ks == 0.05
    assert policy.parsed_floors() == [("f1", ">=", 0.8)]


@pytest.mark.parametrize(
    ("monitoring", "message"),
    [
        ({"drift_share": 0}, "mlkit.yaml: monitoring.drift_share: Input should be greater than 0"),
        ({"numeric_test": "t"}, "mlkit.yaml: monitoring.numeric_test: must be 'auto', 'ks', 'wasserstein' or 'psi'"),
        (
            {"metric_floors": ["f1 > high"]},
            "mlkit.yaml: monitoring.metric_floors: 'f1 > high' must look like 'f1 >= 0.85' "
            "(operators >=, >, <=, <, ==)",
        ),
        (
            {"thresholds": {"kl": 0.1}},
            "mlkit.yaml: monitoring.thresholds.kl: unknown field; allowed: ks, chi2, wasserstein, jensenshannon, psi",
        ),
    ],
)
def test_a_bad_monitoring_setting_names_its_field(tmp_path, monitoring, message):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, monitoring)
    assert caught.value.message == message


def test_policy_crossed_is_exit_code_5():
    assert ExitCode.DRIFT == 5
    assert MonitoringPolicyError("crossed").exit_code == ExitCode.DRIFT


def _assess(current: pd.DataFrame, policy: MonitoringSection, metrics=()) -> A.Assessment:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({f"x{i}": rng.normal(0, 1, 2000) for i in range(4)})
    profile = build_profile(reference, numeric=list(reference.columns), categorical=[], task="regression")
    sketches = {}
    for feature in profile.features:
        if feature.name in current.columns:
            sketch = NumericSketch.empty(feature.edges)
            sketch.update(*numeric_values(current[feature.name]))
            sketches[feature.name] = sketch
    return A.assess(
        profile, sketches, policy, columns=list(current.columns), ignored_columns=["label"], metrics=metrics
    )


def _current(shifted: int, n: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({f"x{i}": rng.normal(2.0 if i < shifted else 0.0, 1, n) for i in range(4)})


def test_the_share_of_drifted_features_crosses_at_drift_share():
    assert _assess(_current(1), MonitoringSection()).reasons == []
    crossed = _assess(_current(1), MonitoringSection(drift_share=0.25))
    assert crossed.reasons == ["1 of 4 features drifted (x0), share 0.25 >= 0.25"]
    assert crossed.crossed and [f.name for f in crossed.drifted] == ["x0"]


def test_a_missing_column_always_crosses_and_an_extra_one_is_only_reported():
    current = _current(0).drop(columns=["x3"]).assign(extra=1.0, label=0)
    result = _assess(current, MonitoringSection())
    assert [(f.kind, f.feature, f.crosses) for f in result.findings] == [
        ("missing_column", "x3", True),
        ("extra_column", "extra", False),
    ]
    assert result.reasons == ["columns missing from the current data: x3"]


def test_data_quality_crosses_only_when_the_policy_says_so():
    current = _current(0)
    current.loc[current.index[:100], "x1"] = np.nan
    current.loc[current.index[100:200], "x2"] = 50.0
    findings = _assess(current, MonitoringSection()).findings
    assert [(f.kind, f.feature, f.crosses) for f in findings] == [
        ("missing_share", "x1", False),
        ("out_of_range", "x2", False),
    ]
    assert findings[0].detail == "missing share 0.0% -> 20.0%"
    strict = _assess(current, MonitoringSection(fail_on_data_quality=True, drift_share=1.0))
    assert strict.reasons == [
        "data quality: x1: missing share 0.0% -> 20.0%; x2: 20.2% of values outside the "
        "training range [-2.907, 3.145] (current [-2.905, 50])"
    ]


def test_a_metric_below_its_floor_crosses():
    checks = A.metric_checks(
        ["f1", "accuracy", "roc_auc"],
        {"f1": 0.61, "accuracy": 0.7},
        {"f1": 0.93, "accuracy": 0.95},
        [("f1", ">=", 0.85)],
    )
    assert [(c.name, c.current, c.training, c.floor, c.passed) for c in checks] == [
        ("f1", 0.61, 0.93, "f1 >= 0.85", False),
        ("accuracy", 0.7, 0.95, None, None),
    ]
    result = _assess(_current(0), MonitoringSection(), metrics=checks)
    assert result.reasons == ["f1 0.61 fails the floor f1 >= 0.85"]
