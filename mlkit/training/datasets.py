"""Loading the project's data: DVC-tracked CSV or Parquet, the feature hook, the target and its labels."""

from __future__ import annotations

import difflib
import functools
import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlkit import allowed_code
from mlkit import constants as C
from mlkit.errors import MlkitError, OperationError, UsageError, first_line


@dataclass
class Dataset:
    """Features and (encoded) target; ``classes`` maps each integer label back to the original value."""

    features: Any  # pandas.DataFrame
    target: Any  # numpy array: int labels for classification, floats for regression
    classes: list[Any] | None = None

    @property
    def label_mapping(self) -> dict[str, Any] | None:
        return None if self.classes is None else {str(i): _plain(c) for i, c in enumerate(self.classes)}


@dataclass(frozen=True)
class Splits:
    """The training and test splits, with what preparing them learned about the labels (on the Dask backend
    ``X_train`` and ``y_train`` stay on the cluster)."""

    X_train: Any
    y_train: Any
    X_test: Any
    y_test: Any
    classes: Any
    label_mapping: str
    raw: Any  # the training file's rows before the hook, target included
    warnings: list[str] = field(default_factory=list)


def read_table(path: Path) -> Any:
    """A CSV or Parquet file as a DataFrame; a missing file means the data was not pulled."""
    import pandas as pd

    if not path.exists():
        raise UsageError(
            f"{path.name}: data file not found at {path}",
            hint="run `mlkit data pull` (or `dvc pull`) to fetch the data",
        )
    try:
        if path.suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise UsageError(
            f"{path.name}: the data file is empty", hint="check the file, then `mlkit data add` it"
        ) from None
    except Exception as exc:
        raise UsageError(
            f"{path.name}: cannot read: {first_line(exc)}",
            hint="check the file format (CSV with a header row, or Parquet)",
        ) from None


def read_columns(path: Path) -> list[str] | None:
    """The column names of a CSV (its header line) or Parquet file (its schema), without reading the
    rows; None when the file is missing or the header cannot be read (reading the data reports why)."""
    try:
        if path.suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return [str(name) for name in pq.read_schema(path).names]
        import csv

        with path.open(newline="", encoding="utf-8-sig") as stream:
            return [name.strip() for name in next(csv.reader(stream), [])] or None
    except Exception:
        return None


def check_columns(columns: list[str], *, target: str, drop: list[str], source: str) -> None:
    """Refuse a target or dropped columns the data does not have, listing every column, closest first."""
    if target not in columns:
        raise _not_in_data("data.target", [target], columns, source)
    unknown = [c for c in drop if c not in columns]
    if unknown:
        raise _not_in_data("data.drop", unknown, columns, source)


def _not_in_data(field: str, missing: list[str], columns: list[str], source: str) -> UsageError:
    close: list[str] = []
    for name in missing:
        close += [c for c in difflib.get_close_matches(name, columns, n=3) if c not in close]
    what = f"column {missing[0]!r}" if len(missing) == 1 else "columns " + ", ".join(map(repr, missing))
    verb = "is" if len(missing) == 1 else "are"
    suggestion = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    ordered = close + [c for c in columns if c not in close]
    return UsageError(
        f"{C.CONFIG_FILE}: {field}: {what} {verb} not in {source}{suggestion}; "
        f"columns ({len(columns)}): " + ", ".join(ordered),
        hint=f"fix {field} in {C.CONFIG_FILE}",
    )


def apply_hook(frame: Any, hook: str, root: Path) -> Any:
    """Call ``package.module:function`` from the project's ``src/`` on the frame (no install needed)."""
    import pandas as pd

    with _project_imports(root, hook.partition(":")[0].split(".")[0]):
        function = _import_callable(hook, "data.hook")
        try:
            result = function(frame)
        except MlkitError:
            raise
        except Exception as exc:
            raise OperationError(
                f"{C.CONFIG_FILE}: data.hook: {hook} failed{_where_in_project(exc, root)}: "
                + first_line(exc, with_type=True),
                hint="fix the hook or the data it expects; run again with --debug for the traceback",
            ) from exc
    if not isinstance(result, pd.DataFrame):
        raise UsageError(
            f"{C.CONFIG_FILE}: data.hook: {hook} returned {type(result).__name__}, not a DataFrame",
            hint="make the hook return the DataFrame to train on",
        )
    return result


def _where_in_project(exc: BaseException, root: Path) -> str:
    """`` at src/pkg/module.py:LINE``: the innermost frame of the traceback in the project's own code."""
    import traceback

    src = (root / "src").resolve()
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename)
        if path.is_absolute() and path.resolve().is_relative_to(src):
            return f" at {path.resolve().relative_to(root.resolve()).as_posix()}:{frame.lineno}"
    return ""


def load_callable(spec: str, root: Path, field: str) -> Any:
    """``package.module:function`` imported from the project's ``src/`` (for model.entrypoint).

    It is imported now, so a wrong path fails before any work; each call runs inside the same import
    context, so what the function imports from its own package when called is found too.
    """
    top_level = spec.partition(":")[0].split(".")[0]
    with _project_imports(root, top_level):
        function = _import_callable(spec, field)

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _project_imports(root, top_level):
            return function(*args, **kwargs)

    return call


def _import_callable(spec: str, field: str) -> Any:
    """Import ``package.module:function``; ``field`` names the setting in error messages."""
    module_name, _, function_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(
            f"{C.CONFIG_FILE}: {field}: cannot import {module_name!r} from src/ ({exc})",
            hint=f"check {field} and the files under src/",
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise UsageError(
            f"{C.CONFIG_FILE}: {field}: {module_name} has no function {function_name!r}",
            hint=f"check {field}",
        )
    # `from subprocess import call` in an allowed module does not make `call` the project's code
    allowed_code.defined_in(function, spec, field)
    return function


def prepare(
    frame: Any, *, target: str, drop: list[str], task: str, source: str, classes: list[Any] | None = None
) -> Dataset:
    """Split off the target, check it, and encode class labels as 0..k-1 (XGBoost needs integers).

    ``classes``: the training data's classes, for a separate test file (which may hold only some of them).
    """
    import numpy as np

    if len(frame) == 0:
        raise UsageError(f"{source}: the data has no rows", hint="check the file, then `mlkit data add` it")
    columns = [str(c) for c in frame.columns]
    check_columns(columns, target=target, drop=drop, source=source)
    y = frame[target]
    missing = int(y.isna().sum())
    if missing:
        raise UsageError(
            f"{source}: target column {target!r} has {missing} missing value(s)",
            hint="drop or fill those rows (e.g. in the data.hook function)",
        )
    features = frame.drop(columns=[target, *drop])
    if task == "classification" and classes is not None:
        return Dataset(features, encode_labels(y.tolist(), classes, source, target), classes)
    if task == "classification":
        classes = sorted(y.unique().tolist(), key=lambda v: (str(type(v)), v))
        if len(classes) < 2:
            raise UsageError(
                f"{source}: target column {target!r} has a single class {classes[0]!r}",
                hint="classification needs at least two classes",
            )
        index = {value: i for i, value in enumerate(classes)}
        encoded = np.asarray([index[v] for v in y.tolist()], dtype=np.int64)
        return Dataset(features, encoded, classes)
    try:
        values = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(
            f"{source}: target column {target!r} is not numeric; model.task is regression",
            hint="use model.task: classification, or a numeric target",
        ) from None
    return Dataset(features, values, None)


def encode_labels(values: Any, classes: list[Any], source: str, target: str) -> Any:
    """Encode a second file's target with the training classes."""
    import numpy as np

    index = {value: i for i, value in enumerate(classes)}
    unseen = sorted({str(v) for v in values if v not in index})
    if unseen:
        raise UsageError(
            f"{source}: target {target!r} has classes not in the training data: " + ", ".join(unseen[:5]),
            hint="check data.test",
        )
    return np.asarray([index[v] for v in values], dtype=np.int64)


@contextmanager
def _project_imports(root: Path, top_level: str) -> Iterator[None]:
    """Import from ``root/src`` first; forget the package afterwards so another root (a reproduction
    worktree) gets its own copy."""
    src = str((root / "src").resolve())
    # list(): a snapshot, since the tracking thread may be importing modules at the same moment
    stale = [name for name in list(sys.modules) if name == top_level or name.startswith(top_level + ".")]
    saved = {name: sys.modules.pop(name) for name in stale}
    # sys.path is rebound, never changed in place: the tracking thread may be walking the list in an
    # import right now, and an in-place remove shifts the entries under it so it skips one (seen as
    # "No module named 'packaging'" when site-packages was the entry skipped)
    previous = sys.path
    sys.path = [src, *previous]
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path = previous
        for name in [n for n in list(sys.modules) if n == top_level or n.startswith(top_level + ".")]:
            del sys.modules[name]
        sys.modules.update(saved)


# --- the Dask backend: rows read by the workers ---------------------------------------------------------


def read_on_workers(location: Any, suffix: str) -> Any:
    """A lazy dask DataFrame over ``location`` (see :func:`worker_location`): the workers read the blocks.

    Only the Parquet footer, or the first block of a CSV (for the dtypes), is read here.
    """
    import dask.dataframe as dd

    options = location.storage_options or None
    if suffix in (".parquet", ".pq"):
        return dd.read_parquet(location.url, storage_options=options)
    return dd.read_csv(location.url, storage_options=options, blocksize="64MB", sample=16_000_000)


def hook_on_partitions(frame: Any, hook: str, root: Path, head: Any) -> Any:
    """``frame`` (dask) with the feature hook applied to every partition on the workers.

    The hook's module travels by value (the workers need not have the project's ``src/``), so it sees
    one partition at a time: on the Dask backend a hook must be row-local (no statistics over all rows,
    no sorting or de-duplication across rows). ``head``, a few rows in process, checks the hook and gives
    the columns and dtypes it returns.
    """
    import cloudpickle

    top_level = hook.partition(":")[0].split(".")[0]
    with _project_imports(root, top_level):
        function = _import_callable(hook, "data.hook")
        package = sys.modules[top_level]
        cloudpickle.register_pickle_by_value(package)
        try:
            shipped = cloudpickle.dumps(function)
        finally:
            cloudpickle.unregister_pickle_by_value(package)
    meta = apply_hook(head, hook, root).iloc[:0]
    return frame.map_partitions(_call_shipped_hook, shipped, hook, meta=meta)


def _call_shipped_hook(part: Any, shipped: bytes, hook: str) -> Any:
    import cloudpickle
    import pandas as pd

    result = cloudpickle.loads(shipped)(part)
    if not isinstance(result, pd.DataFrame):
        raise TypeError(f"data.hook {hook} returned {type(result).__name__}, not a DataFrame")
    return result


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value
