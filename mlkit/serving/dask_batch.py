"""`mlkit predict` on the project's Dask cluster (``training.backend: dask``).

The client reads nothing but the model directory and the input's first bytes; the cluster does the
rest: ``dask.dataframe`` reads the input in partitions, each partition goes through the model on a
worker, and the workers write the output (a folder of Parquet files, or one CSV file written partition
after partition). So the client never holds the table, and the output has the input's rows in order
with the same ``prediction`` column as the in-process path.

The model travels as the bytes of its directory (a few hundred kB, once per run); each worker process
writes them to a folder of its own and loads them once per model (keyed by the directory's SHA-256),
through the same loader as `mlkit serve` (:func:`mlkit.engines.mlflow_direct.load_mlkit_model`). The workers
need mlkit and the model's requirements installed, as they do for training; the input and the output
paths must be reachable from the workers (a shared folder, or the same machine).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

from mlkit import constants as C
from mlkit.engines import mlflow_direct as direct
from mlkit.errors import OperationError, UsageError, first_line
from mlkit.serving import PREDICTION_COLUMN
from mlkit.serving import mlkit_model as M

PARQUET = (".parquet", ".pq")
PART_NAME = "part-{:06d}.parquet"  # zero-padded: any reader that sorts names keeps the row order
_PART = re.compile(r"part-\d{6}\.parquet")

_MODELS: dict[str, Any] = {}  # per worker process: the models loaded so far, by their directory's SHA-256
_MODELS_LOCK = threading.Lock()


def model_files(folder: Path) -> dict[str, bytes]:
    """Every file of a model directory by its relative path (what is shipped to the workers)."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def files_digest(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def worker_model(files: dict[str, bytes], key: str) -> Any:
    """The model of ``files`` loaded in this worker process, once (checked against ``key`` first)."""
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is not None:
            return model
        if files_digest(files) != key:
            raise ValueError("the model's files changed on their way to this worker")
        folder = Path(tempfile.mkdtemp(prefix="mlkit-model-"))
        atexit.register(shutil.rmtree, folder, True)
        for name, data in files.items():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        model = direct.load_mlkit_model(folder)
        if model is None:
            raise ValueError("not a model that takes raw rows")
        _MODELS[key] = model
        return model


def score_partition(frame: Any, files: dict[str, bytes], key: str, label_dtype: str) -> Any:
    """One partition with its ``prediction`` column (runs on a worker)."""
    import pandas as pd

    out = frame.copy()
    if len(frame) == 0:
        out[PREDICTION_COLUMN] = pd.Series([], dtype=label_dtype, index=frame.index)
        return out
    import pyarrow as pa

    model = worker_model(files, key)
    # through Arrow, as the in-process path reads its chunks: the same pandas types and missing values
    # (dask's string columns hold pd.NA, which scikit-learn's imputers do not take for a gap)
    rows = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None).to_pandas()
    predicted = model.predict_frame(model.conform(rows, extra="ignore"))
    out[PREDICTION_COLUMN] = pd.Series(predicted.tolist(), index=frame.index).astype(label_dtype)
    return out


def scheduler_address(project: Any) -> str | None:
    """The Dask scheduler `mlkit predict` uses: the training one when ``training.backend`` is dask."""
    training = project.config.training
    if training.backend != "dask":
        return None
    scheduler = training.scheduler or os.environ.get(C.ENV_DASK_SCHEDULER)
    if not scheduler:
        raise UsageError(
            f"{C.CONFIG_FILE}: training.scheduler: is required when training.backend is dask",
            hint=f"set training.scheduler: tcp://HOST:8786 or {C.ENV_DASK_SCHEDULER}",
        )
    return str(scheduler)


def predict_on_cluster(
    folder: Path, source: Path, target: Path, *, scheduler: str, chunk_bytes: int, say: Any
) -> tuple[int, int, int]:
    """Score ``source`` into ``target`` on the cluster at ``scheduler``; (rows, partitions, workers)."""
    import dask
    import dask.dataframe as dd
    import pandas as pd

    # here, not at the top: `mlkit predict` in process need not load the training package
    from mlkit.training import distributed

    if target.is_dir() and any(not _PART.fullmatch(p.name) for p in target.iterdir()):
        raise UsageError(f"{target}: a folder that is not an earlier output", hint="choose another -o path")
    files = model_files(folder)
    key = files_digest(files)
    config = json.loads(files[M.CONFIG_FILE].decode())
    types: dict[str, str] = {c["name"]: c["type"] for c in config["columns"]}
    classes = config.get("classes")
    label_dtype = "float64" if classes is None else _label_dtype(classes)
    with distributed.connect(scheduler, timeout=15) as client:  # one error for a scheduler or a worker lost
        workers = len(client.scheduler_info(n_workers=-1)["workers"])
        if not workers:
            raise OperationError(
                f"Dask scheduler {scheduler} has no workers", hint=f"start some: `dask worker {scheduler}`"
            )
        say(f"scoring {source} on the Dask cluster at {scheduler} ({workers} workers)")
        frame = _read(dd, source, types, chunk_bytes)
        if PREDICTION_COLUMN in frame.columns:
            raise UsageError(f"{source}: already has a {PREDICTION_COLUMN!r} column", hint="rename or drop that column")
        missing = [c["name"] for c in config["columns"] if c.get("required", True) and c["name"] not in frame.columns]
        if missing:
            raise UsageError(
                f"{source}: missing column {missing[0]!r}: expected {M.EXPECTED[types[missing[0]]]}",
                hint="the file must have the model's input columns",
            )
        meta = frame._meta.copy()
        meta[PREDICTION_COLUMN] = pd.Series([], dtype=label_dtype, index=meta.index)
        shipped = client.scatter([files], broadcast=True)[0]  # one object on every worker, not one per file
        scored = frame.map_partitions(score_partition, shipped, key, label_dtype, meta=meta)
        partitions = int(scored.npartitions)
        temporary = target.with_name(f".{target.name}.partial")
        try:
            if target.suffix.lower() in PARQUET:
                write = scored.to_parquet(
                    str(temporary), write_index=False, name_function=PART_NAME.format, compute=False
                )
            else:
                write = scored.to_csv(str(temporary), single_file=True, index=False, compute=False)
            # the row count comes from the same scored partitions: the input is read once. A CSV
            # written as one file is a low-level graph, which dask joins with the expression by
            # materializing the graph (tasks, not data) and says so in a warning
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Computing mixed collections", category=UserWarning)
                _, rows = dask.compute(write, scored.map_partitions(len).sum())
        except ValueError as exc:  # a mistyped value, named with its column, raised on a worker
            _remove(temporary)
            raise UsageError(
                f"{source}: {first_line(exc)}", hint="the file must have the model's input columns"
            ) from None
        except Exception:
            _remove(temporary)
            raise
        _replace(temporary, target)
        return int(rows), partitions, workers


def _read(dd: Any, source: Path, types: dict[str, str], chunk_bytes: int) -> Any:
    try:
        if source.suffix.lower() in PARQUET:
            return dd.read_parquet(str(source), split_row_groups=True)  # a partition per row group
        import csv

        with open(source, newline="", encoding="utf-8") as stream:
            header = next(csv.reader(stream), [])
        # as in process: numbers the model takes as doubles are read as such, everything else as text,
        # which the model checks like any request (a file written by pandas has 2024.0 in an integer
        # column with gaps), and the output keeps the input's text as it was
        import pyarrow.csv as pcsv

        dtypes = {name: _pandas_type(types.get(name, M.STRING)) for name in header}
        nulls = list(pcsv.ConvertOptions().null_values)  # the same missing values as the in-process reader
        return dd.read_csv(str(source), blocksize=chunk_bytes, dtype=dtypes, keep_default_na=False, na_values=nulls)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{source}: cannot read: {first_line(exc)}", hint="check the file") from None


def _pandas_type(kind: str) -> str:
    return {M.DOUBLE: "float64", M.BOOLEAN: "boolean"}.get(kind, "string")


def _label_dtype(classes: list[Any]) -> str:
    if all(isinstance(c, bool) for c in classes):
        return "boolean"
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "int64"
    if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in classes):
        return "float64"
    return "string"


def _replace(temporary: Path, target: Path) -> None:
    """The finished output in place of ``target``: a file is replaced, like in process; a folder only
    when it holds nothing but the part files of an earlier run (mlkit deletes only what it wrote)."""
    if target.is_dir():
        if not temporary.is_dir() or any(not _PART.fullmatch(p.name) for p in target.iterdir()):
            _remove(temporary)
            raise UsageError(f"{target}: a folder that is not an earlier output", hint="choose another -o path")
        shutil.rmtree(target)
    elif target.exists() and temporary.is_dir():
        target.unlink()
    os.replace(temporary, target)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
