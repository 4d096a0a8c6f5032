"""Fixed-size summaries of one column that are filled chunk by chunk: the common currency of the reference
profile (built once at train time) and of the current data (read in chunks at monitoring time).

A numeric column is summarised on the reference's bin edges: ``edges`` e_0 < ... < e_k (quantiles of the
reference, e_0 its minimum and e_k its maximum; or its distinct values when it has few), and ``counts`` of
length k + 2 where ``counts[0]`` holds x < e_0, ``counts[i]`` holds e_{i-1} <= x < e_i and ``counts[k+1]``
holds x >= e_k. The cumulative sum through ``counts[j]`` is therefore exactly the number of values below
e_j, which is what the distribution tests need. Beyond the reference's range the sums of the distances
to e_0 and e_k are kept too, so the Wasserstein distance of mass outside the training range is exact.

A categorical column is summarised by its category counts (at most :data:`MAX_TRACKED` distinct values;
the rest fall into ``overflow``). Both summaries merge chunk by chunk, so memory is bounded by the number of
columns, never by the number of rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MAX_TRACKED = 10_000
"""Distinct categories counted one by one in current data; beyond that, counted as overflow."""


@dataclass
class NumericSketch:
    """Counts of one numeric column on fixed bin edges, plus moments and the tails beyond the edges."""

    edges: list[float]
    counts: list[int]
    missing: int = 0
    unparsable: int = 0  # present but not a number (a type change)
    below: int = 0  # x < e_0
    above: int = 0  # x > e_k (strictly)
    below_distance: float = 0.0  # sum of e_0 - x over x < e_0
    above_distance: float = 0.0  # sum of x - e_k over x > e_k
    total: float = 0.0
    total_squares: float = 0.0
    minimum: float | None = None
    maximum: float | None = None

    @classmethod
    def empty(cls, edges: list[float]) -> NumericSketch:
        return cls(edges=list(edges), counts=[0] * (len(edges) + 1))

    @property
    def count(self) -> int:
        """Values present (missing ones not counted)."""
        return int(sum(self.counts))

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        if not self.count:
            return math.nan
        mean = self.mean
        return math.sqrt(max(self.total_squares / self.count - mean * mean, 0.0))

    def update(self, values: Any, unparsable: int = 0) -> None:
        """Add a float64 array (NaN for missing)."""
        import numpy as np

        values = np.asarray(values, dtype=np.float64)
        # sorted once, the counts of every slot are one binary search per edge (not one per value)
        present = np.sort(values[~np.isnan(values)])
        self.missing += int(values.size - present.size)
        self.unparsable += int(unparsable)
        if not present.size:
            return
        edges = np.asarray(self.edges, dtype=np.float64)
        below_edge = np.searchsorted(present, edges, side="left")  # values < e_j, for every j
        binned = np.diff(below_edge, prepend=0, append=present.size)
        self.counts = [a + int(b) for a, b in zip(self.counts, binned.tolist(), strict=True)]
        under = present[: int(below_edge[0])]
        over = present[int(np.searchsorted(present, edges[-1], side="right")) :]
        self.below += int(under.size)
        self.above += int(over.size)
        self.below_distance += float(np.sum(edges[0] - under)) if under.size else 0.0
        self.above_distance += float(np.sum(over - edges[-1])) if over.size else 0.0
        self.total += float(np.sum(present))
        # not np.dot: a BLAS call wakes its thread pool for every chunk, which costs 100 times more here
        self.total_squares += float(np.sum(present * present))
        chunk_min, chunk_max = float(present[0]), float(present[-1])
        self.minimum = chunk_min if self.minimum is None else min(self.minimum, chunk_min)
        self.maximum = chunk_max if self.maximum is None else max(self.maximum, chunk_max)

    def cdf_below_edges(self) -> list[float]:
        """P(X < e_j) for every edge: the cumulative count through slot j, over the values present."""
        n = self.count
        out, running = [], 0
        for value in self.counts[:-1]:
            running += value
            out.append(running / n if n else math.nan)
        return out


@dataclass
class CategoricalSketch:
    """Counts of the categories of one column."""

    counts: dict[str, int] = field(default_factory=dict)
    missing: int = 0
    overflow: int = 0  # values whose category was not tracked (too many distinct values)

    @property
    def count(self) -> int:
        return int(sum(self.counts.values())) + self.overflow

    def update(self, series: Any) -> None:
        """Add a pandas Series of any dtype; categories are compared by :func:`category_key`."""
        missing = int(series.isna().sum())
        self.missing += missing
        if missing == len(series):
            return
        for value, number in series.value_counts(dropna=True, sort=False).items():
            key = category_key(value)
            if key in self.counts or len(self.counts) < MAX_TRACKED:
                self.counts[key] = self.counts.get(key, 0) + int(number)
            else:
                self.overflow += int(number)


def category_key(value: Any) -> str:
    """One spelling per category whatever the file format: ``5``, ``5.0`` and ``"5"`` are all ``"5"``."""
    item = getattr(value, "item", None)
    if callable(item):
        value = item()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def numeric_values(series: Any) -> tuple[Any, int]:
    """(float64 array with NaN for missing, number of present values that are not numbers).

    Infinite values count as missing: they have no place on a distribution's bins.
    """
    import numpy as np
    import pandas as pd
    from pandas.api import types

    if types.is_bool_dtype(series.dtype):
        series = series.astype("float64")
    if types.is_numeric_dtype(series.dtype):
        values, unparsable = series.to_numpy(dtype=np.float64, na_value=np.nan), 0
    else:
        coerced = pd.to_numeric(series, errors="coerce")
        unparsable = int((coerced.isna() & series.notna()).sum())
        values = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.isinf(values)
    if infinite.any():
        values = np.where(infinite, np.nan, values)
    return values, unparsable
