"""Current data in chunks: a CSV or Parquet file, or the prediction log `mlkit serve` writes.

Parquet is read in batches with pyarrow (buffered reads, no pre-buffering of whole column chunks), CSV with
pandas' chunked reader, so memory stays bounded whatever the size of the file. Every chunk is a pandas
DataFrame.

The prediction log is ``<project>/.mlkit/predictions/date=YYYY-MM-DD/part-*.parquet``: columns
``_request_id``, ``_time`` (UTC), ``_model``, ``_version``, ``_latency_ms``, ``_prediction`` (text), then the
request's input columns under their own names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from mlkit.errors import UsageError, first_line

CHUNK_ROWS = 65_536
"""Rows per chunk of a CSV file."""
PARQUET_BATCH_ROWS = 16_384
"""Rows per batch of a Parquet file: Arrow decodes a batch of every column at once, so smaller batches than
for CSV keep the peak low (a 1M-row file with one row group read at 65,536 rows a batch took 150 MB more)."""
_PARQUET_BUFFER = 1 << 20
PREDICTIONS_DIR = "predictions"
LOG_PREDICTION = "_prediction"
LOG_TIME = "_time"
LOG_MODEL = "_model"
LOG_VERSION = "_version"
LOG_REQUEST_ID = "_request_id"
LOG_COLUMNS = (LOG_REQUEST_ID, LOG_TIME, LOG_MODEL, LOG_VERSION, "_latency_ms", LOG_PREDICTION)
_SINCE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass
class Source:
    """What was read: a description for the report and the columns it has."""

    description: str
    columns: list[str]
    files: list[Path]
    log: bool = False


def parse_since(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d`` or ``2w`` as a time span."""
    match = _SINCE.match(text)
    if not match or int(match.group(1)) == 0:
        raise UsageError(
            f"--since {text!r}: must look like 7d, 12h, 30m or 2w",
            hint="e.g. `mlkit monitor churn@production --since 7d`",
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def open_file(path: Path) -> Source:
    """A CSV or Parquet file to read in chunks; its columns are read now (a bad file fails early)."""
    if not path.is_file():
        raise UsageError(f"{path}: file not found", hint="pass an existing CSV or Parquet file to --current")
    try:
        if _is_parquet(path):
            import pyarrow.parquet as pq

            columns = list(pq.ParquetFile(path).schema_arrow.names)
        elif path.suffix == ".csv":
            import pandas as pd

            columns = [str(c) for c in pd.read_csv(path, nrows=0).columns]
        else:
            raise UsageError(
                f"{path.name}: not a .csv or .parquet file", hint="pass a CSV (with a header row) or a Parquet file"
            )
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(
            f"{path.name}: cannot read: {first_line(exc)}",
            hint="check the file format (CSV with a header row, or Parquet)",
        ) from None
    return Source(description=str(path), columns=columns, files=[path])


def open_log(root: Path, since: timedelta, now: datetime | None = None) -> tuple[Source, datetime]:
    """The prediction log files of the days within ``since`` of ``now``, and the start time."""
    now = now or datetime.now(timezone.utc)
    start = now - since
    folder = root / ".mlkit" / PREDICTIONS_DIR
    files: list[Path] = []
    if folder.is_dir():
        first_day = start.date()
        for day in sorted(folder.glob("date=*")):
            try:
                stamp = datetime.strptime(day.name[len("date=") :], "%Y-%m-%d").date()
            except ValueError:
                continue
            if first_day <= stamp <= now.date():
                files += sorted(day.glob("part-*.parquet"))
    if not files:
        raise UsageError(
            f"no prediction log since {start.strftime('%Y-%m-%dT%H:%M:%SZ')} in .mlkit/{PREDICTIONS_DIR}",
            hint="serve the model with `mlkit serve NAME@STAGE`, or pass --current FILE",
        )
    import pyarrow.parquet as pq

    names: list[str] = []
    for path in files:
        for name in pq.ParquetFile(path).schema_arrow.names:
            if name not in names:
                names.append(name)
    description = f"prediction log since {start.strftime('%Y-%m-%dT%H:%M:%SZ')} ({len(files)} file(s))"
    return Source(description=description, columns=names, files=files, log=True), start


def chunks(
    source: Source,
    columns: Sequence[str] | None = None,
    *,
    categorical: Sequence[str] = (),
    chunk_rows: int | None = None,
) -> Iterator[Any]:
    """DataFrames of at most ``chunk_rows`` rows (default :data:`CHUNK_ROWS` for CSV,
    :data:`PARQUET_BATCH_ROWS` for Parquet) holding ``columns`` (all when None) of ``source``.

    ``categorical`` columns of a CSV are read as text, so a category spelled with digits stays one category.
    """
    for path in source.files:
        wanted = None if columns is None else [c for c in columns if c in _columns_of(path, source)]
        if _is_parquet(path):
            yield from _parquet_chunks(path, wanted, chunk_rows or PARQUET_BATCH_ROWS)
        else:
            yield from _csv_chunks(
                path, wanted, [c for c in categorical if wanted is None or c in wanted], chunk_rows or CHUNK_ROWS
            )


def _columns_of(path: Path, source: Source) -> list[str]:
    if not source.log:
        return source.columns
    import pyarrow.parquet as pq

    return list(pq.ParquetFile(path).schema_arrow.names)


def _parquet_chunks(path: Path, columns: list[str] | None, chunk_rows: int) -> Iterator[Any]:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    # text stays in Arrow memory (no Python string per value), whatever pandas' default string type is
    text = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}
    try:
        handle = pq.ParquetFile(path, pre_buffer=False, buffer_size=_PARQUET_BUFFER)
        for batch in handle.iter_batches(batch_size=chunk_rows, columns=columns, use_threads=False):
            yield batch.to_pandas(types_mapper=text.get)
    except Exception as exc:
        raise UsageError(
            f"{path.name}: cannot read: {first_line(exc)}", hint="check that the Parquet file is complete"
        ) from None


def _csv_chunks(path: Path, columns: list[str] | None, categorical: list[str], chunk_rows: int) -> Iterator[Any]:
    import pandas as pd

    try:
        reader = pd.read_csv(path, usecols=columns, chunksize=chunk_rows, dtype=dict.fromkeys(categorical, str))
        with reader:
            yield from reader
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path.name}: the file is empty", hint="pass a CSV with a header row and data") from None
    except ValueError as exc:
        raise UsageError(
            f"{path.name}: cannot read: {first_line(exc)}", hint="check the file format (CSV with a header row)"
        ) from None


def _is_parquet(path: Path) -> bool:
    return path.suffix in (".parquet", ".pq")
