"""The reference profile: contents, determinism, size, round trip; summaries merged chunk by chunk."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlkit import tags
from mlkit.errors import UsageError
from mlkit.monitoring.profile import ReferenceProfile, build_profile, profile_column, write_reference
from mlkit.monitoring.sketch import CategoricalSketch, NumericSketch, category_key, numeric_values


def frame(seed: int = 0, n: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "children": rng.integers(0, 4, n),
            "plan": rng.choice(["basic", "pro"], n),
            "score": rng.uniform(0, 1, n),
        }
    )
    data.loc[data.index[:50], "age"] = np.nan
    data.loc[data.index[:10], "plan"] = None
    return data


def profile(seed: int = 0) -> ReferenceProfile:
    data = frame(seed)
    predictions = np.asarray([0, 1] * 100)
    return build_profile(
        data,
        numeric=["age", "children", "score"],
        categorical=["plan"],
        task="classification",
        predictions=predictions,
        target=np.asarray([0] * 700 + [1] * 300),
        classes=["no", "yes"],
        metrics={"f1": 0.9, "roc_auc": float("nan")},
    )


def test_profile_holds_each_feature_the_predictions_the_class_balance_and_metrics():
    result = profile()
    assert result.feature_names == ["age", "children", "plan", "score"]
    age, children, plan, _ = result.features
    assert (age.kind, age.count, age.missing, age.discrete) == ("numeric", 950, 50, False)
    assert age.edges[0] == age.minimum and age.edges[-1] == age.maximum
    assert sum(age.counts) == 950 and age.counts[0] == 0
    assert (children.discrete, children.edges) == (True, [0.0, 1.0, 2.0, 3.0])
    assert (plan.kind, plan.missing, sorted(plan.categories), plan.other) == ("categorical", 10, ["basic", "pro"], 0)
    assert result.prediction is not None and result.prediction.categories == {"no": 100, "yes": 100}
    assert result.target is not None and result.target.categories == {"no": 700, "yes": 300}
    assert result.classes == ["no", "yes"]
    assert result.metrics["f1"] == 0.9


def test_profile_json_is_deterministic_small_and_round_trips():
    first, second = profile(), profile()
    assert first.to_json() == second.to_json() and first.sha256 == second.sha256
    assert profile(seed=1).sha256 != first.sha256
    assert len(first.to_json()) < 16_000
    again = ReferenceProfile.from_json(first.to_json())
    assert again.sha256 == first.sha256
    assert json.loads(first.to_json())["metrics"] == {"f1": 0.9, "roc_auc": None}


def test_write_reference_writes_the_artifact_and_returns_its_hash_tag(tmp_path):
    data = frame()
    written = write_reference(
        tmp_path, data, numeric=["age"], categorical=["plan"], task="regression", predictions=np.asarray([1.5, 2.5])
    )
    text = (tmp_path / tags.PROFILE_ARTIFACT).read_text()
    assert written == {tags.PROFILE_SHA256: ReferenceProfile.from_json(text).sha256}


def test_an_unreadable_profile_is_bad_input():
    with pytest.raises(UsageError) as caught:
        ReferenceProfile.from_json('{"format": 99}', source="monitoring/reference_profile.json")
    assert caught.value.message == (
        "monitoring/reference_profile.json: not a readable reference profile (format 99 is not 1)"
    )
    assert caught.value.hint == "train the model again with this mlkit version to record a new profile"


def test_rare_categories_beyond_the_top_are_summed_as_other():
    values = pd.Series([f"c{i:03d}" for i in range(150)] + ["c000"] * 10)
    result = profile_column("code", values, "categorical")
    assert len(result.categories) == 100 and result.categories["c000"] == 11
    assert (result.other, result.unique, result.count) == (50, 150, 160)


def test_summaries_merged_chunk_by_chunk_equal_one_summary_of_everything():
    data = frame(3, 5000)
    reference = profile_column("age", frame(0)["age"], "numeric")
    whole, parts = NumericSketch.empty(reference.edges), NumericSketch.empty(reference.edges)
    whole.update(*numeric_values(data["age"]))
    for start in range(0, 5000, 333):
        parts.update(*numeric_values(data["age"].iloc[start : start + 333]))
    assert parts.counts == whole.counts and parts.missing == whole.missing == 50
    assert (parts.below, parts.above) == (whole.below, whole.above)
    assert parts.mean == pytest.approx(whole.mean) and parts.std == pytest.approx(whole.std)
    categories = CategoricalSketch()
    for start in range(0, 5000, 333):
        categories.update(data["plan"].iloc[start : start + 333])
    assert categories.counts == {k: int(v) for k, v in data["plan"].value_counts().items()}


def test_one_spelling_per_category_and_text_in_a_numeric_column_is_counted():
    assert [category_key(v) for v in (5, 5.0, "5", np.int64(5), True, 2.5)] == ["5", "5", "5", "5", "True", "2.5"]
    values, unparsable = numeric_values(pd.Series(["1.5", "x", None, "3"], dtype=object))
    assert unparsable == 1 and np.isnan(values[1]) and values[3] == 3.0


def test_infinite_values_count_as_missing_so_the_profile_stays_valid_json():
    result = profile_column("ratio", pd.Series([1.0, np.inf, 2.0, -np.inf, 3.0]), "numeric")
    assert (result.count, result.missing, result.minimum, result.maximum) == (3, 2, 1.0, 3.0)
    assert json.loads(ReferenceProfile(task="regression", rows=5, features=[result]).to_json())["rows"] == 5
