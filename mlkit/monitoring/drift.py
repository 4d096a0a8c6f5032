"""Distribution tests between a reference profile and a summary of current data, computed on the summaries alone.

Numeric columns (on the reference's bin edges, see :mod:`mlkit.monitoring.sketch`):

``ks``
    Two-sample Kolmogorov–Smirnov: D is the largest gap between the two empirical CDFs, evaluated at the
    reference's edges (exact there, so exact for discrete columns kept value by value; for continuous columns
    the edges are the reference's percentiles, finer in the tails, and D can only be underestimated by the
    mass inside one bin). The p-value is the two-sample Kolmogorov distribution at the effective size
    n·m/(n+m) (its limiting form above 10,000).
``wasserstein``
    The earth mover's distance between the two distributions divided by the reference's standard deviation,
    so a value of 0.1 means "the mass moved by a tenth of a standard deviation on average". Inside the
    reference range the CDFs are taken linear within each bin (step-wise for discrete columns); outside it
    the distance is exact (the summary keeps the total distance of current values beyond the range).
``psi``
    The population stability index over the reference's deciles (or its values when discrete), values
    below and above the reference range counted in the outer groups.

Categorical columns (on the union of the categories, the reference's rare ones as ``other``, new ones
together as a new-categories bucket):

``chi2``
    Pearson's chi-square test of homogeneity of the 2 × k table of counts; its p-value.
``jensenshannon``
    The Jensen–Shannon distance (natural logarithm, from 0 to sqrt(ln 2) ≈ 0.83) of the two frequency
    vectors.

Which one decides (``auto``): with few rows (at most ``small_sample`` in the smaller of the two samples)
a hypothesis test (KS, chi-square) decides, because at that size distances are noisy and have no threshold
that means the same thing at every size, while a test keeps its false-positive rate at alpha. With many
rows every hypothesis test rejects even a shift nobody cares about (its power grows with n), so an effect
size with a fixed threshold decides: the normalised Wasserstein distance for numbers, the Jensen–Shannon
distance for categories. PSI is always reported, and chosen when the policy asks for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from mlkit.monitoring.profile import FeatureProfile
from mlkit.monitoring.sketch import CategoricalSketch, NumericSketch

NumericTest = Literal["ks", "wasserstein", "psi"]
CategoricalTest = Literal["chi2", "jensenshannon"]
TestName = Literal["ks", "wasserstein", "psi", "chi2", "jensenshannon"]

P_VALUE_TESTS = ("ks", "chi2")
"""Tests whose statistic is a p-value: drift when it falls *below* the threshold."""

DEFAULT_THRESHOLDS: dict[str, float] = {"ks": 0.05, "chi2": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.2}
SMALL_SAMPLE = 1000
_PSI_GROUPS = 10
_PSI_FLOOR = 1e-4
_STD_FLOOR = 1e-3
_KS_ASYMPTOTIC = 10_000
NEW_BUCKET = "(new categories)"
OTHER_BUCKET = "(other)"


@dataclass
class Statistic:
    """One test on one column: its value, the threshold it was held against, and the verdict."""

    test: str
    value: float
    threshold: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        return {"test": self.test, "value": _finite(self.value), "threshold": self.threshold, "drifted": self.drifted}


def choose_test(
    kind: str,
    n_reference: int,
    n_current: int,
    *,
    numeric_test: str = "auto",
    categorical_test: str = "auto",
    small_sample: int = SMALL_SAMPLE,
) -> str:
    """The deciding test for a column of ``kind`` at these sizes (see the module docstring)."""
    small = min(n_reference, n_current) <= small_sample
    if kind == "numeric":
        return numeric_test if numeric_test != "auto" else ("ks" if small else "wasserstein")
    return categorical_test if categorical_test != "auto" else ("chi2" if small else "jensenshannon")


def compare(
    reference: FeatureProfile, current: NumericSketch | CategoricalSketch, thresholds: dict[str, float] | None = None
) -> dict[str, Statistic]:
    """Every test that applies to the column's kind, each with its verdict at ``thresholds``."""
    limits = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    if reference.kind == "numeric":
        assert isinstance(current, NumericSketch)
        values = {
            "ks": ks_pvalue(reference, current),
            "wasserstein": wasserstein_normed(reference, current),
            "psi": psi(reference, current),
        }
    else:
        assert isinstance(current, CategoricalSketch)
        ref_counts, cur_counts = category_table(reference, current)
        values = {"chi2": chi2_pvalue(ref_counts, cur_counts), "jensenshannon": jensen_shannon(ref_counts, cur_counts)}
    return {
        name: Statistic(name, value, limits[name], drifted(name, value, limits[name])) for name, value in values.items()
    }


def drifted(test: str, value: float, threshold: float) -> bool:
    if value != value:  # NaN: nothing to compare (an empty side)
        return False
    return value < threshold if test in P_VALUE_TESTS else value > threshold


# --- numeric --------------------------------------------------------------------------------------


def ks_statistic(reference: FeatureProfile, current: NumericSketch) -> float:
    ref, cur = reference.sketch().cdf_below_edges(), current.cdf_below_edges()
    gaps = [abs(a - b) for a, b in zip(ref, cur, strict=True)]
    # and just above the last edge, where the reference's CDF reaches 1
    if current.count:
        gaps.append(current.above / current.count)
    return max(gaps) if gaps and current.count and reference.count else math.nan


def ks_pvalue(reference: FeatureProfile, current: NumericSketch) -> float:
    d = ks_statistic(reference, current)
    n, m = reference.count, current.count
    if d != d or not n or not m:
        return math.nan
    effective = n * m / (n + m)
    if effective > _KS_ASYMPTOTIC:
        # the limiting Kolmogorov distribution: accurate at this size, and scipy.special alone is light
        from scipy import special

        return float(min(1.0, max(0.0, special.kolmogorov(math.sqrt(effective) * d))))
    from scipy import stats

    return float(min(1.0, max(0.0, stats.kstwo.sf(d, max(1, round(effective))))))


def wasserstein(reference: FeatureProfile, current: NumericSketch) -> float:
    """The earth mover's distance, in the column's units."""
    if not reference.count or not current.count:
        return math.nan
    edges = reference.edges
    ref_cdf, cur_cdf = reference.sketch().cdf_below_edges(), current.cdf_below_edges()
    distance = (current.below_distance + current.above_distance) / current.count
    for j in range(1, len(edges)):
        width = edges[j] - edges[j - 1]
        if reference.discrete:
            # both CDFs are constant on [e_{j-1}, e_j): the value they reach at e_{j-1}, i.e. P(X < e_j)
            distance += abs(ref_cdf[j] - cur_cdf[j]) * width
        else:
            distance += _linear_area(ref_cdf[j - 1] - cur_cdf[j - 1], ref_cdf[j] - cur_cdf[j], width)
    # the current values equal to or above e_k that are not beyond it sit at e_k: no distance
    return distance


def wasserstein_normed(reference: FeatureProfile, current: NumericSketch) -> float:
    distance = wasserstein(reference, current)
    return distance / max(reference.std or 0.0, _STD_FLOOR)


def psi(reference: FeatureProfile, current: NumericSketch) -> float:
    import numpy as np

    if not reference.count or not current.count:
        return math.nan
    ref_counts = np.asarray(reference.counts, dtype=np.float64)
    cur_counts = np.asarray(current.counts, dtype=np.float64)
    groups = _psi_groups(ref_counts, reference.discrete)
    ref_share = np.add.reduceat(ref_counts, groups) / ref_counts.sum()
    cur_share = np.add.reduceat(cur_counts, groups) / cur_counts.sum()
    return _psi(ref_share, cur_share)


def _psi_groups(ref_counts: Any, discrete: bool) -> Any:
    """Start index of each group of slots: every value when discrete, else about equal reference deciles.

    Slot 0 (below the range) joins the first group and the last slot (at or above the maximum) the last.
    """
    import numpy as np

    if discrete or len(ref_counts) <= _PSI_GROUPS + 2:
        return np.arange(len(ref_counts))
    share = np.cumsum(ref_counts) / ref_counts.sum()
    starts = [0]
    for cut in np.linspace(0, 1, _PSI_GROUPS + 1)[1:-1]:
        index = int(np.searchsorted(share, cut, side="right")) + 1
        if starts[-1] < index < len(ref_counts) - 1:
            starts.append(index)
    return np.asarray(starts)


def _psi(ref_share: Any, cur_share: Any) -> float:
    import numpy as np

    ref_share = np.clip(ref_share, _PSI_FLOOR, None)
    cur_share = np.clip(cur_share, _PSI_FLOOR, None)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def _linear_area(a: float, b: float, width: float) -> float:
    """The integral of |f| over a segment of ``width`` on which f runs linearly from a to b."""
    if a * b >= 0:
        return (abs(a) + abs(b)) / 2 * width
    return (a * a + b * b) / (2 * (abs(a) + abs(b))) * width


# --- categorical ----------------------------------------------------------------------------------


def category_table(reference: FeatureProfile, current: CategoricalSketch) -> tuple[list[float], list[float]]:
    """Aligned counts: the reference's kept categories, its ``other``, and one bucket for categories the
    reference never had (when it kept all of them) or does not list (then they go to ``other``)."""
    keys = list(reference.categories)
    ref = [float(reference.categories[k]) for k in keys]
    cur = [float(current.counts.get(k, 0)) for k in keys]
    unlisted = sum(n for k, n in current.counts.items() if k not in reference.categories) + current.overflow
    if reference.other:
        ref.append(float(reference.other))
        cur.append(float(unlisted))
    elif unlisted:
        ref.append(0.0)
        cur.append(float(unlisted))
    return ref, cur


def new_categories(reference: FeatureProfile, current: CategoricalSketch) -> dict[str, int]:
    """Categories of the current data the reference never had, with their counts (only knowable when the
    reference kept all its categories)."""
    if reference.other:
        return {}
    return {
        k: n
        for k, n in sorted(current.counts.items(), key=lambda item: (-item[1], item[0]))
        if k not in reference.categories
    }


def chi2_pvalue(ref_counts: list[float], cur_counts: list[float]) -> float:
    """Pearson's chi-square test of homogeneity of the 2 x k table (no continuity correction)."""
    import numpy as np
    from scipy import special

    table = np.asarray([ref_counts, cur_counts], dtype=np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if not table.size or not table[0].sum() or not table[1].sum():
        return math.nan
    if table.shape[1] < 2:
        return 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return float(special.chdtrc(table.shape[1] - 1, statistic))


def jensen_shannon(ref_counts: list[float], cur_counts: list[float]) -> float:
    import numpy as np

    p = np.asarray(ref_counts, dtype=np.float64)
    q = np.asarray(cur_counts, dtype=np.float64)
    if not p.sum() or not q.sum():
        return math.nan
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: Any) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / m[mask])))

    return math.sqrt(max((kl(p) + kl(q)) / 2, 0.0))


def _finite(value: float) -> float | None:
    return None if value != value or math.isinf(value) else round(float(value), 6)
