"""Reading current data in chunks: CSV and Parquet give the same rows, the prediction log by day window."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from mlkit.errors import UsageError
from mlkit.monitoring import reader


def test_since_spans():
    assert reader.parse_since("7d") == timedelta(days=7)
    assert reader.parse_since(" 12h ") == timedelta(hours=12)
    assert reader.parse_since("30m") == timedelta(minutes=30)
    assert reader.parse_since("2w") == timedelta(weeks=2)
    for bad in ("0d", "7", "d", "1y", "-1d"):
        with pytest.raises(UsageError) as caught:
            reader.parse_since(bad)
        assert caught.value.message == f"--since {bad!r}: must look like 7d, 12h, 30m or 2w"


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_chunks_of_a_file_hold_every_row_once_and_categories_stay_text(tmp_path, suffix):
    frame = pd.DataFrame({"x": range(1000), "code": ["007", "010", "100", "042"] * 250, "y": 1.5})
    path = tmp_path / f"data{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path, index=False)
    source = reader.open_file(path)
    assert source.columns == ["x", "code", "y"]
    parts = list(reader.chunks(source, ["x", "code"], categorical=["code"], chunk_rows=300))
    assert [len(p) for p in parts] == [300, 300, 300, 100]
    joined = pd.concat(parts, ignore_index=True)
    assert list(joined.columns) == ["x", "code"]
    assert joined["x"].tolist() == list(range(1000))
    assert joined["code"].tolist()[:4] == ["007", "010", "100", "042"]


def test_a_file_that_is_not_a_table_is_bad_input(tmp_path):
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(UsageError) as caught:
        reader.open_file(tmp_path / "data.json")
    assert caught.value.message == "data.json: not a .csv or .parquet file"


def test_the_log_window_takes_the_days_it_covers(tmp_path):
    now = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
    folder = tmp_path / ".mlkit" / "predictions"
    for day in ("2026-03-01", "2026-03-03", "2026-03-10", "2026-03-11", "not-a-date"):
        (folder / f"date={day}").mkdir(parents=True)
        pd.DataFrame({"_prediction": ["a"], "x": [1.0]}).to_parquet(folder / f"date={day}" / "part-0.parquet")
    source, start = reader.open_log(tmp_path, timedelta(days=7), now)
    assert start == datetime(2026, 3, 3, 12, 0, tzinfo=timezone.utc)
    assert [p.parent.name for p in source.files] == ["date=2026-03-03", "date=2026-03-10"]
    assert source.columns == ["_prediction", "x"] and source.log
    assert source.description == "prediction log since 2026-03-03T12:00:00Z (2 file(s))"
    with pytest.raises(UsageError) as caught:
        reader.open_log(tmp_path, timedelta(hours=1), datetime(2026, 4, 1, tzinfo=timezone.utc))
    assert caught.value.message == "no prediction log since 2026-03-31T23:00:00Z in .mlkit/predictions"
    assert caught.value.hint == "serve the model with `mlkit serve NAME@STAGE`, or pass --current FILE"
