"""`mlkit.reproduction._compare`: metrics exactly or within --tolerance; the predictions fingerprint exactly,
and under --tolerance reported as not compared when it differs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mlkit import tags
from mlkit.reproduction import FINGERPRINT_NOT_COMPARED, Check, _compare

SHA = "a" * 64
OTHER_SHA = "b" * 64
ORIGINAL_RUN = "0" * 32
REBUILT_RUN = "1" * 32
F1 = 0.9123456789
F1_OFF = F1 + 1e-12


class FakeClient:
    """A stand-in for MLflow's client that serves the reproduced run's metrics."""

    def __init__(self, metrics: dict[str, float]) -> None:
        self.metrics = metrics

    def get_run(self, run_id: str) -> SimpleNamespace:
        assert run_id == REBUILT_RUN
        return SimpleNamespace(data=SimpleNamespace(metrics=dict(self.metrics)))


@pytest.fixture
def rebuilt_metrics() -> dict[str, float]:
    """The reproduced run's metrics; fill it in the test."""
    return {}


def compare(rebuilt: dict[str, float], original: dict[str, float], sha: str, tolerance: float) -> list[Check]:
    run = SimpleNamespace(info=SimpleNamespace(run_id=ORIGINAL_RUN), data=SimpleNamespace(metrics=original))
    outcome = SimpleNamespace(run_id=REBUILT_RUN, predictions_sha256=sha)
    return _compare(FakeClient(rebuilt), run, outcome, {tags.PREDICTIONS_SHA256: SHA}, tolerance)


def test_the_metric_really_is_off_by_about_1e_12() -> None:
    assert F1_OFF != F1
    assert 1e-13 < abs(F1_OFF - F1) < 1e-9


@pytest.mark.parametrize(
    ("tolerance", "equal"), [(0.0, False), (1e-9, True), (1e-13, False)], ids=["exact", "1e-9", "1e-13"]
)
def test_a_metric_off_by_1e_12(rebuilt_metrics: dict[str, float], tolerance: float, equal: bool) -> None:
    rebuilt_metrics.update({"f1": F1_OFF, "accuracy": 0.97})
    checks = compare(rebuilt_metrics, {"f1": F1, "accuracy": 0.97}, SHA, tolerance)
    assert checks == [
        Check("accuracy", 0.97, 0.97, True),
        Check("f1", F1, F1_OFF, equal),
        Check("predictions sha256", SHA, SHA, True, kind="fingerprint"),
    ]


def test_different_predictions_fail_an_exact_reproduction(rebuilt_metrics: dict[str, float]) -> None:
    rebuilt_metrics.update({"f1": F1})
    assert compare(rebuilt_metrics, {"f1": F1}, OTHER_SHA, 0.0) == [
        Check("f1", F1, F1, True),
        Check("predictions sha256", SHA, OTHER_SHA, False, kind="fingerprint"),
    ]


@pytest.mark.parametrize("tolerance", [1e-13, 1e-9, 1.0])
def test_under_tolerance_different_predictions_are_reported_as_not_compared(
    rebuilt_metrics: dict[str, float], tolerance: float
) -> None:
    rebuilt_metrics.update({"f1": F1})
    assert compare(rebuilt_metrics, {"f1": F1}, OTHER_SHA, tolerance) == [
        Check("f1", F1, F1, True),
        Check(FINGERPRINT_NOT_COMPARED, SHA, OTHER_SHA, True, kind="fingerprint"),
    ]
