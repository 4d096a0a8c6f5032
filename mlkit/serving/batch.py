"""`mlkit predict`: a CSV or Parquet file through the registered model, chunk by chunk.

Memory stays bounded whatever the file's size: pyarrow reads ``chunk_rows`` rows at a time (Parquet
row batches; CSV blocks of about the same size), each chunk is scored and appended to the output, and
nothing else is kept. The output holds the input rows in order with a ``prediction`` column added.
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlkit.engines import mlflow_direct as direct
from mlkit.errors import OperationError, UsageError, first_line
from mlkit.progress import Progress, or_silent
from mlkit.serving import PREDICTION_COLUMN, dask_batch
from mlkit.serving.source import LoadedModel, ModelSource

if TYPE_CHECKING:
    from mlkit.project import Project

PARQUET = (".parquet", ".pq")
CSV_SAMPLE_BYTES = 1 << 16  # the start of a CSV file, read to size its blocks to the row budget


@dataclass
class PredictResult:
    model: str
    version: str
    input: str
    output: str
    rows: int
    chunks: int
    seconds: float
    backend: str = "local"  # or "dask" (on the project's cluster)
    workers: int | None = None  # the cluster's workers, for the dask backend

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def predict_file(
    project: Project,
    ref: str,
    source: Path,
    target: Path,
    *,
    chunk_rows: int = 100_000,
    progress: Progress | None = None,
) -> PredictResult:
    """Score every row of ``source`` with the model ``ref`` points at; write them with predictions to ``target``."""
    say = or_silent(progress)
    started = time.perf_counter()
    for path, role in ((source, "input"), (target, "output")):
        if path.suffix.lower() not in (*PARQUET, ".csv"):
            raise UsageError(f"{path}: the {role} must be a .csv or .parquet file", hint="rename or convert it")
    if not source.is_file():
        raise UsageError(f"{source}: no such file", hint="check the input path")
    if source.resolve() == target.resolve():
        raise UsageError(f"{target}: the output would overwrite the input", hint="choose another -o path")
    models = ModelSource(project, ref)
    scheduler = dask_batch.scheduler_address(project)
    if scheduler is not None:
        return _predict_on_cluster(models, source, target, scheduler, chunk_rows, say, started)
    say(f"loading {models.label}")
    loaded = models.load(models.current_version())
    say(f"scoring {source} with {loaded.name} version {loaded.version}")
    rows = chunks = 0
    temporary = target.with_name(f".{target.name}.partial")
    writer: Any = None
    try:
        for batch in _read(source, loaded, chunk_rows):
            if PREDICTION_COLUMN in batch.schema.names:
                raise UsageError(
                    f"{source}: already has a {PREDICTION_COLUMN!r} column", hint="rename or drop that column"
                )
            scored = _score(loaded, batch, source, rows)
            if writer is None:
                writer = _writer(temporary, target.suffix.lower(), scored.schema)
            writer.write(scored)
            rows += batch.num_rows
            chunks += 1
            say(f"{rows} rows scored")
        if writer is None:
            raise UsageError(f"{source}: the file has no rows", hint="check the input file")
        writer.close()
        writer = None
        os.replace(temporary, target)
    finally:
        if writer is not None:
            writer.close()
        if temporary.exists():
            temporary.unlink()
    return PredictResult(
        loaded.name, loaded.version, str(source), str(target), rows, chunks, round(time.perf_counter() - started, 3)
    )


def _predict_on_cluster(
    models: ModelSource, source: Path, target: Path, scheduler: str, chunk_rows: int, say: Progress, started: float
) -> PredictResult:
    version = models.current_version()
    say(f"{models.label}: version {version}")
    with tempfile.TemporaryDirectory(prefix="mlkit-predict-") as scratch:
        folder = models.folder(version, Path(scratch))
        if direct.mlkit_flavor(folder) is None:
            raise OperationError(
                f"{models.ref.name} version {version} was logged before models took raw rows",
                hint="train again (`mlkit train`) and promote the new version",
            )
        rows, partitions, workers = dask_batch.predict_on_cluster(
            folder,
            source,
            target,
            scheduler=scheduler,
            chunk_bytes=_csv_block_size(source, chunk_rows) if source.suffix.lower() == ".csv" else 0,
            say=say,
        )
    say(f"{rows} rows scored in {partitions} partitions on {workers} workers")
    return PredictResult(
        models.ref.name,
        version,
        str(source),
        str(target),
        rows,
        partitions,
        round(time.perf_counter() - started, 3),
        backend="dask",
        workers=workers,
    )


def _read(source: Path, loaded: LoadedModel, chunk_rows: int) -> Iterator[Any]:
    import pyarrow as pa

    try:
        if source.suffix.lower() in PARQUET:
            import pyarrow.parquet as pq

            yield from pq.ParquetFile(source).iter_batches(batch_size=chunk_rows)
            return
        import pyarrow.csv as pcsv

        with open(source, newline="", encoding="utf-8") as stream:
            header = next(csv.reader(stream), [])
        arrow_types = {"double": pa.float64(), "boolean": pa.bool_()}
        # every column gets its type up front: inferred from the first block alone, a later block could
        # disagree (integers in the first rows, a fraction further down). Integer columns are read as
        # text and checked by the model like any request (a file written by pandas has 2024.0 where an
        # integer column had gaps), and the output keeps the input's text as it was.
        types = {name: arrow_types.get(loaded.model.types.get(name, "string"), pa.string()) for name in header}
        reader = pcsv.open_csv(
            source,
            read_options=pcsv.ReadOptions(block_size=_csv_block_size(source, chunk_rows)),
            convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=True),
        )
        yield from reader
    except (pa.ArrowInvalid, OSError) as exc:
        raise UsageError(f"{source}: cannot read: {first_line(exc)}", hint="check the file") from None


def _csv_block_size(source: Path, chunk_rows: int) -> int:
    """Bytes per CSV block for about ``chunk_rows`` rows, from the width of the file's first rows."""
    with open(source, "rb") as stream:
        sample = stream.read(CSV_SAMPLE_BYTES)
    lines = max(1, sample.count(b"\n") - 1)
    width = max(1, len(sample) // (lines + 1))
    longest = max((len(line) for line in sample.splitlines()), default=1)
    return max(chunk_rows * width, 4 * longest + 2)


def _score(loaded: LoadedModel, batch: Any, source: Path, offset: int) -> Any:
    import pyarrow as pa

    frame = batch.to_pandas()
    try:
        conformed = loaded.model.conform(frame, extra="ignore")
    except ValueError as exc:
        raise UsageError(f"{source}: {exc}", hint="the file must have the model's input columns") from None
    try:
        predicted = loaded.model.predict_frame(conformed)
    except Exception as exc:
        raise UsageError(
            f"{source}: rows {offset + 1}-{offset + batch.num_rows}: the model could not score them: "
            f"{first_line(exc, with_type=True)}",
            hint="check those rows",
        ) from None
    values = predicted.tolist()
    column = (
        pa.array(values) if loaded.model.classes is None else pa.array(values, type=_label_type(loaded.model.classes))
    )
    return pa.Table.from_batches([batch]).append_column(PREDICTION_COLUMN, column)


def _label_type(classes: list[Any]) -> Any:
    import pyarrow as pa

    if all(isinstance(c, bool) for c in classes):
        return pa.bool_()
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return pa.int64()
    if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in classes):
        return pa.float64()
    return pa.string()


def _writer(path: Path, suffix: str, schema: Any) -> Any:
    if suffix in PARQUET:
        import pyarrow.parquet as pq

        return pq.ParquetWriter(path, schema)
    import pyarrow.csv as pcsv

    return pcsv.CSVWriter(path, schema)
