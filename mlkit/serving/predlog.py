"""The prediction log: what the server answered, appended off the request path to local Parquet files.

Layout (read by monitoring; keep it stable)::

    <project>/.mlkit/predictions/date=YYYY-MM-DD/part-<uuid>.parquet

One row per predicted row, with ``_request_id`` (str), ``_time`` (UTC timestamp), ``_model`` (str),
``_version`` (str), ``_latency_ms`` (float), ``_prediction`` (the label, as a string), then the raw input
columns under their own names and with the model's input types. Files appear whole (written under a
dot-prefixed temporary name, then renamed); readers such as ``pyarrow.dataset`` skip the temporary
ones. Disk use is bounded: past the limit the oldest files go first, and only ``part-*.parquet`` files
of this layout are ever deleted.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import chain, repeat
from pathlib import Path
from typing import Any

from mlkit import constants as C

FOLDER = "predictions"
PARTITION_PREFIX = "date="
FILE_PREFIX = "part-"
META_COLUMNS = ("_request_id", "_time", "_model", "_version", "_latency_ms", "_prediction")


def log_folder(root: Path) -> Path:
    """Where the prediction log of the project at ``root`` lives."""
    return root / C.STATE_DIR / FOLDER


@dataclass
class Entry:
    """One answered request."""

    request_id: str
    time: datetime
    model: str
    version: str
    latency_ms: float
    predictions: list[str]
    columns: Mapping[str, Sequence[Any]]
    types: Mapping[str, str]  # column -> long / double / string / boolean

    def as_batch(self) -> BatchEntry:
        return BatchEntry(
            time=self.time,
            model=self.model,
            version=self.version,
            request_ids=[self.request_id],
            counts=[len(self.predictions)],
            latencies_ms=[self.latency_ms],
            predictions=self.predictions,
            columns=self.columns,
            types=self.types,
        )


@dataclass
class BatchEntry:
    """The requests of one model call, with the column lists the call was built from: the serving path
    hands over one entry per call, and the writer turns a second's worth of them into one Arrow column
    per input column."""

    time: datetime
    model: str
    version: str
    request_ids: list[str]
    counts: list[int]  # rows of each request, in order
    latencies_ms: list[float]
    predictions: Any  # one label per row (a sequence or an array), or a DataFrame of class probabilities
    columns: Mapping[str, Sequence[Any]]  # the input rows, one list per column (a missing column: all null)
    types: Mapping[str, str]

    def __len__(self) -> int:
        return sum(self.counts)


class PredictionLog:
    """Collects entries on the serving thread (a list append) and writes them from its own thread."""

    def __init__(
        self,
        folder: Path,
        *,
        sample: float = 1.0,
        max_bytes: int = 1024 * 1024 * 1024,
        flush_seconds: float = 1.0,
        flush_rows: int = 20_000,
        max_pending_rows: int = 200_000,
        on_written: Callable[[int, int], None] | None = None,
    ) -> None:
        self.folder = folder
        self.sample = sample
        self.max_bytes = max_bytes
        self.flush_seconds = flush_seconds
        self.flush_rows = flush_rows
        self.max_pending_rows = max_pending_rows
        self._on_written = on_written or (lambda _written, _dropped: None)
        self._pending: list[Entry | BatchEntry] = []
        self._pending_rows = 0
        self._dropped = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="mlkit-prediction-log", daemon=True)

    def start(self) -> PredictionLog:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def wants(self) -> bool:
        """Whether the next request is in the sample."""
        return self.sample >= 1.0 or random.random() < self.sample

    def append(self, entry: Entry | BatchEntry) -> None:
        rows = len(entry) if isinstance(entry, BatchEntry) else len(entry.predictions)
        with self._lock:
            if self._pending_rows + rows > self.max_pending_rows:
                self._dropped += rows  # the disk is slower than the traffic: shed, never block a request
                return
            self._pending.append(entry)
            self._pending_rows += rows
            if self._pending_rows >= self.flush_rows:
                self._wake.set()

    def close(self) -> None:
        """Write what is pending and stop the writer thread."""
        self._stop = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        import pyarrow.parquet  # noqa: F401  # now, while the model loads, not on the first flush under load

        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            stopping = self._stop
            self.flush()
            if stopping:
                return

    def flush(self) -> None:
        with self._lock:
            entries, self._pending, self._pending_rows = self._pending, [], 0
            dropped, self._dropped = self._dropped, 0
        written = 0
        if entries:
            # one file per day and version; a version's entries share its types mapping (the same object)
            groups: dict[tuple[Any, str, str, int], list[Entry | BatchEntry]] = {}
            for entry in entries:
                key = (entry.time.date(), entry.model, entry.version, id(entry.types))
                groups.setdefault(key, []).append(entry)
            for (day, _model, _version, _types), group in groups.items():
                written += self._write(day.isoformat(), group[0].types, group)
            self._bound_disk()
        if written or dropped:
            self._on_written(written, dropped)

    def _write(self, day: str, types: Mapping[str, str], entries: list[Entry | BatchEntry]) -> int:
        import pyarrow.parquet as pq

        table = _table([e.as_batch() if isinstance(e, Entry) else e for e in entries], types)
        partition = self.folder / f"{PARTITION_PREFIX}{day}"
        partition.mkdir(parents=True, exist_ok=True)
        name = f"{FILE_PREFIX}{uuid.uuid4().hex}.parquet"
        temporary = partition / f".{name}.tmp"
        # dictionary encoding only where values repeat (labels, versions, text categories): tried on
        # every numeric column it costs the writer more CPU than everything else together
        repeated = ["_model", "_version", "_prediction", *(n for n, kind in types.items() if kind == "string")]
        pq.write_table(table, temporary, use_dictionary=repeated)
        os.replace(temporary, partition / name)
        return table.num_rows

    def _bound_disk(self) -> None:
        files = log_files(self.folder)
        total = sum(size for _, _, size in files)
        for path, _, size in files:
            if total <= self.max_bytes:
                break
            try:
                path.unlink()
                total -= size
            except OSError:
                continue
        for partition in self.folder.glob(f"{PARTITION_PREFIX}*"):
            with contextlib.suppress(OSError):
                partition.rmdir()  # only when empty


def log_files(folder: Path) -> list[tuple[Path, float, int]]:
    """The log's files, oldest partition (then oldest file) first: (path, mtime, size)."""
    out = []
    for path in folder.glob(f"{PARTITION_PREFIX}*/{FILE_PREFIX}*.parquet"):
        try:
            stat = path.stat()
        except OSError:
            continue
        out.append((path, stat.st_mtime, stat.st_size))
    out.sort(key=lambda item: (item[0].parent.name, item[1]))
    return out


def _schema(types: Mapping[str, str]) -> Any:
    import pyarrow as pa

    meta = [
        pa.field("_request_id", pa.string()),
        pa.field("_time", pa.timestamp("us", tz="UTC")),
        pa.field("_model", pa.string()),
        pa.field("_version", pa.string()),
        pa.field("_latency_ms", pa.float64()),
        pa.field("_prediction", pa.string()),
    ]
    return pa.schema(meta + [pa.field(name, _arrow_type(kind)) for name, kind in types.items()])


def _arrow_type(kind: str) -> Any:
    import pyarrow as pa

    return {"long": pa.int64(), "double": pa.float64(), "boolean": pa.bool_()}.get(kind, pa.string())


def _table(entries: list[BatchEntry], types: Mapping[str, str]) -> Any:
    """One table for the entries of one day, model version and schema: every column converted once."""
    import pyarrow as pa

    counts = list(chain.from_iterable(e.counts for e in entries))
    rows = [len(e) for e in entries]

    def per_request(values: Any) -> list[Any]:
        return list(chain.from_iterable(repeat(v, n) for v, n in zip(values, counts, strict=True)))

    def per_entry(values: Any) -> list[Any]:
        return list(chain.from_iterable(repeat(v, n) for v, n in zip(values, rows, strict=True)))

    arrays = [
        pa.array(per_request(chain.from_iterable(e.request_ids for e in entries)), pa.string()),
        pa.array(per_entry(e.time for e in entries), pa.timestamp("us", tz="UTC")),
        pa.array(per_entry(e.model for e in entries), pa.string()),
        pa.array(per_entry(e.version for e in entries), pa.string()),
        pa.array(per_request(chain.from_iterable(e.latencies_ms for e in entries)), pa.float64()),
        pa.array(list(chain.from_iterable(_labels(e.predictions) for e in entries)), pa.string()),
    ]
    merged: dict[str, list[Any]] = {name: [] for name in types}
    for entry, n in zip(entries, rows, strict=True):  # entry by entry: one list extension per column
        columns = entry.columns
        for name, values in merged.items():
            got = columns.get(name)
            values.extend(got if got is not None else repeat(None, n))
    arrays += [_arrow_column(merged[name], kind) for name, kind in types.items()]
    return pa.Table.from_arrays(arrays, schema=_schema(types))


def _labels(predictions: Any) -> list[str]:
    """One label per row as a string (for probabilities: the most probable label)."""
    if hasattr(predictions, "idxmax"):
        predictions = predictions.idxmax(axis=1)
    values = predictions.tolist() if hasattr(predictions, "tolist") else list(predictions)
    return values if all(type(v) is str for v in values) else [str(v) for v in values]


def _arrow_column(values: list[Any], kind: str) -> Any:
    """One input column with the model's type; NaN is a null (pyarrow's pandas rules)."""
    import pyarrow as pa

    arrow_type = {"long": pa.int64(), "double": pa.float64(), "boolean": pa.bool_()}.get(kind, pa.string())
    try:
        return pa.array(values, arrow_type, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass  # integral floats in a long column (JSON's 2024.0), or what a CSV request carried
    if kind == "long":
        return pa.array([None if v is None or v != v else int(v) for v in values], pa.int64())
    if kind == "double":
        return pa.array([None if v is None else float(v) for v in values], pa.float64(), from_pandas=True)
    if kind == "boolean":
        return pa.array([None if v is None else bool(v) for v in values], pa.bool_())
    return pa.array([None if v is None or (isinstance(v, float) and v != v) else str(v) for v in values], pa.string())


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def monotonic_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
