"""The prediction log's layout, written from its own thread, and its disk budget."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pyarrow.dataset as ds

from mlkit.serving.predlog import META_COLUMNS, Entry, PredictionLog, log_files

TYPES = {"usage": "double", "tenure": "long", "region": "string", "member": "boolean"}


def _entry(request_id: str, when: datetime, rows: int = 2, version: str = "1") -> Entry:
    return Entry(
        request_id=request_id,
        time=when,
        model="plans",
        version=version,
        latency_ms=1.5,
        predictions=["basic"] * rows,
        columns={
            "usage": [1.0, None] + [2.0] * (rows - 2),
            "tenure": [3, 4.0] + [5] * (rows - 2),  # an integral float from JSON is still a long
            "region": ["east", None] + ["west"] * (rows - 2),
            "member": [True, None] + [False] * (rows - 2),
        },
        types=TYPES,
    )


def test_rows_land_in_day_partitions_with_the_fixed_columns(tmp_path):
    day1 = datetime(2026, 3, 1, 23, 59, tzinfo=timezone.utc)
    log = PredictionLog(tmp_path / "predictions", flush_seconds=60).start()
    log.append(_entry("a", day1))
    log.append(_entry("b", day1 + timedelta(minutes=2), version="2"))
    log.close()
    names = sorted(path.parent.name for path, _, _ in log_files(tmp_path / "predictions"))
    assert names == ["date=2026-03-01", "date=2026-03-02"]
    table = ds.dataset(tmp_path / "predictions", format="parquet", partitioning="hive").to_table()
    assert table.column_names == [*META_COLUMNS, "usage", "tenure", "region", "member", "date"]
    rows = sorted(table.to_pylist(), key=lambda r: (r["_request_id"], r["usage"] is None))
    assert [(r["_request_id"], r["_version"], r["usage"], r["tenure"], r["region"], r["member"]) for r in rows] == [
        ("a", "1", 1.0, 3, "east", True),
        ("a", "1", None, 4, None, None),
        ("b", "2", 1.0, 3, "east", True),
        ("b", "2", None, 4, None, None),
    ]
    assert str(table.schema.field("tenure").type) == "int64"
    assert str(table.schema.field("_time").type) == "timestamp[us, tz=UTC]"


def test_the_oldest_files_go_when_the_budget_is_spent(tmp_path):
    folder = tmp_path / "predictions"
    log = PredictionLog(folder, flush_seconds=60, max_bytes=1).start()
    log.close()
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    one = PredictionLog(folder, flush_seconds=60)
    for day in range(3):
        one.append(_entry(f"r{day}", start + timedelta(days=day), rows=50))
        one.flush()
        time.sleep(0.01)
    assert len(log_files(folder)) == 3
    size = log_files(folder)[0][2]
    (folder / "notes.txt").write_text("not ours")
    budget = PredictionLog(folder, flush_seconds=60, max_bytes=size * 2 + size // 2)
    budget.append(_entry("r3", start + timedelta(days=3), rows=50))
    budget.flush()
    kept = [p.parent.name for p, _, _ in log_files(folder)]
    assert kept == ["date=2026-03-03", "date=2026-03-04"]
    assert not (folder / "date=2026-03-01").exists()
    assert (folder / "notes.txt").read_text() == "not ours"


def test_a_full_queue_sheds_rows_instead_of_blocking(tmp_path):
    counted: list[tuple[int, int]] = []
    log = PredictionLog(
        tmp_path / "p",
        flush_seconds=60,
        max_pending_rows=3,
        on_written=lambda written, dropped: counted.append((written, dropped)),
    )
    now = datetime.now(timezone.utc)
    log.append(_entry("kept", now))
    log.append(_entry("shed", now))
    log.flush()
    assert counted == [(2, 2)]


def test_a_model_call_is_logged_whole_with_the_types_of_the_schema(tmp_path):
    """The serving path logs one entry per model call; its rows read back like per-request entries."""
    import numpy as np

    from mlkit.serving.predlog import BatchEntry

    when = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    columns = {"usage": [1.0, None, 2.0], "tenure": [3, None, 5.0], "region": ["east", None, "west"]}
    log = PredictionLog(tmp_path / "predictions", flush_seconds=60).start()
    log.append(_entry("single", when, rows=2))
    log.append(
        BatchEntry(
            time=when,
            model="plans",
            version="1",
            request_ids=["a", "b"],
            counts=[2, 1],
            latencies_ms=[1.0, 2.0],
            predictions=np.array(["basic", "premium", "basic"], dtype=object),
            columns=columns,
            types=TYPES,
        )
    )
    log.close()
    table = ds.dataset(tmp_path / "predictions", format="parquet", partitioning="hive").to_table()
    assert str(table.schema.field("tenure").type) == "int64"
    rows = [r for r in table.to_pylist() if r["_request_id"] != "single"]
    assert [(r["_request_id"], r["_latency_ms"], r["_prediction"]) for r in rows] == [
        ("a", 1.0, "basic"),
        ("a", 1.0, "premium"),
        ("b", 2.0, "basic"),
    ]
    assert [(r["usage"], r["tenure"], r["region"], r["member"]) for r in rows] == [
        (1.0, 3, "east", None),
        (None, None, None, None),
        (2.0, 5, "west", None),
    ]
    assert len(table) == 5


def test_a_model_call_hands_its_sampled_requests_to_the_log_once():
    """One `on_scored` per call, on the prediction thread, holding only the requests the sample kept."""
    import asyncio
    import threading
    from types import SimpleNamespace

    import numpy as np

    from mlkit.serving.batching import MicroBatcher, Scored
    from mlkit.serving.payload import Rows

    class Model:
        def __init__(self) -> None:
            self.types = {"x": "long", "y": "string"}
            self.classes = None

        def frame_from_columns(self, columns):
            return columns

        def predict_frame(self, frame, probabilities=False):
            return np.asarray(frame["x"]) * 10

    loaded = SimpleNamespace(model=Model(), version="3")
    handed: list[tuple[Scored, str]] = []

    async def scenario() -> None:
        batcher = MicroBatcher(
            lambda: loaded,
            max_rows=100,
            max_wait_ms=0,
            on_scored=lambda scored: handed.append((scored, threading.current_thread().name)),
        ).start()
        first = asyncio.ensure_future(batcher.submit(Rows({"x": [1]}, 1), False, request_id="r1", log=True))
        await asyncio.sleep(0)
        rest = [
            asyncio.ensure_future(
                batcher.submit(Rows({"x": [i, i], "y": ["a", None]}, 2), False, request_id=f"r{i}", log=i % 2 == 0)
            )
            for i in range(2, 6)
        ]
        await asyncio.gather(first, *rest)
        await batcher.stop()

    asyncio.run(scenario())
    assert [(s.request_ids, s.counts) for s, _ in handed] == [(["r1"], [1]), (["r2", "r4"], [2, 2])]
    assert all(thread.startswith("mlkit-predict") for _, thread in handed)
    sampled = handed[1][0]
    assert sampled.columns == {"x": [2, 2, 4, 4], "y": ["a", None, "a", None]}
    assert sampled.predictions.tolist() == [20, 20, 40, 40]
    assert all(latency >= 0 for latency in sampled.latencies_ms)
