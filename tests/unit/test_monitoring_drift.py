"""The drift tests on summaries: agreement with scipy's raw-data tests, detection of known shifts, and the
false-positive rate on samples of one distribution."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlkit.config import MonitoringSection
from mlkit.monitoring import drift
from mlkit.monitoring.assess import compare_feature
from mlkit.monitoring.profile import profile_column
from mlkit.monitoring.sketch import CategoricalSketch, NumericSketch, numeric_values

NUMERIC = ("normal", "skewed", "counts", "uniform")
CATEGORICAL = ("plan", "region")


def sample(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "normal": rng.normal(10.0 + shift, 2.0, n),
            "skewed": rng.lognormal(0.0, 0.8, n),
            "counts": rng.poisson(3.0, n).astype(float),
            "uniform": rng.uniform(-1.0, 1.0, n),
            "plan": rng.choice(["basic", "plus", "pro", "team", "enterprise"], n, p=[0.4, 0.3, 0.15, 0.1, 0.05]),
            "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]),
        }
    )


def summarise(reference, values, chunk: int = 997):
    """The current column summarised chunk by chunk, like monitor reads a file."""
    sketch = reference.empty_sketch()
    series = pd.Series(values)
    for start in range(0, len(series), chunk):
        part = series.iloc[start : start + chunk]
        if isinstance(sketch, NumericSketch):
            sketch.update(*numeric_values(part))
        else:
            sketch.update(part)
    return sketch


def flagged(reference_frame: pd.DataFrame, current_frame: pd.DataFrame, policy: MonitoringSection) -> list[str]:
    out = []
    for name in reference_frame.columns:
        kind = "numeric" if name in NUMERIC else "categorical"
        reference = profile_column(name, reference_frame[name], kind)
        if compare_feature(reference, summarise(reference, current_frame[name]), policy).drifted:
            out.append(name)
    return out


def test_ks_and_wasserstein_on_summaries_agree_with_scipy_on_raw_data():
    rng = np.random.default_rng(7)
    ref_values, cur_values = rng.normal(0, 1, 100_000), rng.normal(0.3, 1.1, 100_000)
    reference = profile_column("x", pd.Series(ref_values), "numeric")
    current = summarise(reference, cur_values, chunk=65_536)
    assert drift.ks_statistic(reference, current) == pytest.approx(
        stats.ks_2samp(ref_values, cur_values).statistic, abs=0.002
    )
    assert drift.wasserstein(reference, current) == pytest.approx(
        stats.wasserstein_distance(ref_values, cur_values), rel=0.02
    )


def test_on_a_discrete_column_ks_and_wasserstein_are_exact():
    rng = np.random.default_rng(3)
    ref_values, cur_values = rng.poisson(3.0, 5000).astype(float), rng.poisson(3.4, 4000).astype(float)
    reference = profile_column("x", pd.Series(ref_values), "numeric")
    current = summarise(reference, cur_values)
    assert reference.discrete
    assert drift.ks_statistic(reference, current) == pytest.approx(
        stats.ks_2samp(ref_values, cur_values).statistic, abs=1e-12
    )
    assert drift.wasserstein(reference, current) == pytest.approx(
        stats.wasserstein_distance(ref_values, cur_values), rel=1e-9
    )


def test_values_beyond_the_training_range_count_exactly_in_the_wasserstein_distance():
    ref_values = np.linspace(0.0, 1.0, 1001)
    cur_values = np.concatenate([np.linspace(0.0, 1.0, 1001), np.full(1001, 5.0)])
    reference = profile_column("x", pd.Series(ref_values), "numeric")
    current = summarise(reference, cur_values)
    assert (current.below, current.above) == (0, 1001)
    assert drift.wasserstein(reference, current) == pytest.approx(
        stats.wasserstein_distance(ref_values, cur_values), rel=0.01
    )


def test_categorical_tests_agree_with_scipy_and_new_categories_get_their_own_bucket():
    reference = profile_column("plan", pd.Series(["a"] * 50 + ["b"] * 30 + ["c"] * 20), "categorical")
    current = CategoricalSketch()
    current.update(pd.Series(["a"] * 40 + ["b"] * 30 + ["c"] * 10 + ["z"] * 20))
    ref_counts, cur_counts = drift.category_table(reference, current)
    assert (ref_counts, cur_counts) == ([50.0, 30.0, 20.0, 0.0], [40.0, 30.0, 10.0, 20.0])
    table = np.asarray([ref_counts, cur_counts])
    assert drift.chi2_pvalue(ref_counts, cur_counts) == pytest.approx(
        stats.chi2_contingency(table, correction=False).pvalue
    )
    assert drift.jensen_shannon(ref_counts, cur_counts) == pytest.approx(jensenshannon(table[0] / 100, table[1] / 100))
    assert drift.new_categories(reference, current) == {"z": 20}


def test_the_test_is_chosen_by_kind_and_size():
    assert drift.choose_test("numeric", 5000, 1000) == "ks"
    assert drift.choose_test("numeric", 5000, 1001) == "wasserstein"
    assert drift.choose_test("categorical", 800, 100_000) == "chi2"
    assert drift.choose_test("categorical", 5000, 5000) == "jensenshannon"
    assert drift.choose_test("numeric", 5000, 5000, numeric_test="psi") == "psi"
    assert drift.choose_test("categorical", 10, 10, categorical_test="jensenshannon") == "jensenshannon"


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(11)
    reference = profile_column("x", pd.Series(rng.normal(0, 1, 20_000)), "numeric")
    assert drift.psi(reference, summarise(reference, rng.normal(0, 1, 20_000))) < 0.01
    assert drift.psi(reference, summarise(reference, rng.normal(1.0, 1, 20_000))) > 0.5


@pytest.mark.parametrize("size", [500, 20_000])
def test_a_mean_shift_in_one_column_is_the_only_drift_found(size):
    rng = np.random.default_rng(5)
    reference, current = sample(rng, max(size, 2000)), sample(rng, size)
    current["normal"] = current["normal"] + 0.5 * 2.0  # half a standard deviation
    assert flagged(reference, current, MonitoringSection()) == ["normal"]


def test_a_new_category_is_found_and_named():
    rng = np.random.default_rng(9)
    reference, current = sample(rng, 2000), sample(rng, 500)
    current.loc[current.index[:60], "plan"] = "student"
    name = "plan"
    profile = profile_column(name, reference[name], "categorical")
    result = compare_feature(profile, summarise(profile, current[name]), MonitoringSection())
    assert result.drifted and result.test == "chi2"
    assert result.new_categories == {"student": 60}


def false_positive_rate(n_reference: int, n_current: int, policy: MonitoringSection, seeds: int = 50) -> float:
    verdicts = flags = 0
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        reference, current = sample(rng, n_reference), sample(rng, n_current)
        flags += len(flagged(reference, current, policy))
        verdicts += len(reference.columns)
    return flags / verdicts


def test_false_positive_rate_of_the_hypothesis_tests_is_at_their_level():
    policy = MonitoringSection()
    rate = false_positive_rate(2000, 500, policy)
    assert rate <= policy.thresholds.ks + 0.03, rate


def test_false_positive_rate_of_the_distances_on_large_samples_is_zero():
    rate = false_positive_rate(20_000, 20_000, MonitoringSection(), seeds=20)
    assert rate == 0.0


def test_an_empty_current_column_decides_nothing():
    reference = profile_column("x", pd.Series([1.0, 2.0, 3.0]), "numeric")
    current = summarise(reference, [math.nan, math.nan])
    statistics = drift.compare(reference, current)
    assert all(math.isnan(s.value) and not s.drifted for s in statistics.values())
    assert current.missing == 2
