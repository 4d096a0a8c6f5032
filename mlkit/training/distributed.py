"""Training on a Dask cluster (``training.backend: dask``): the same model, fitted elsewhere.

- XGBoost estimators (``model.estimator: xgboost.*``): the workers read the DVC-tracked data themselves
  (from the DVC remote, or the DVC cache or workspace on shared storage), apply the feature hook per
  partition, split off the test rows with a seeded per-partition draw, and keep the training rows; the
  client holds only the test split, a seeded sample of at most :data:`SAMPLE_ROWS` training rows (to fit
  the preprocessor and build the reference profile) and the model, never the whole table. The training
  partitions are cut into one contiguous run per worker (workers sorted by address) and each run is
  pinned to its worker, so a rerun on the same cluster sums the same histograms in the same order and
  gives the same model. ``xgboost.dask`` trains the booster; it comes back into the project's own
  estimator class, so the logged model is the same scikit-learn pipeline a local run logs.
- Other scikit-learn estimators fit under joblib's Dask backend: their ``n_jobs`` parallel work (trees
  of a forest, folds of a search) runs on the cluster, on rows read here (dask.dataframe, then pandas).

The cluster's shape (workers, threads, memory, versions) and where the data were read are recorded in
the run's lineage (:class:`mlkit.lineage.Backend`); a worker lost mid-run is one :class:`WorkerLostError`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlkit import constants as C
from mlkit import data
from mlkit import lineage as L
from mlkit.errors import MlkitError, OperationError, UsageError, first_line
from mlkit.training import datasets, xgb
from mlkit.training.estimators import is_xgboost
from mlkit.training.fitted import FittedModel

CONNECT_TIMEOUT_S = 15.0
SAMPLE_ROWS = 100_000  # training rows brought to the client: preprocessor statistics, reference profile
_INSTALL_HINT = "pip install 'mlkit[dask]'"
_LOST_HINT = (
    "run it again; check the workers' memory limits and logs (`dask worker` output): "
    "a worker killed for using too much memory is the usual cause"
)


class WorkerLostError(OperationError):
    """A Dask worker went away while the run needed it."""


def check(scheduler: str | None) -> None:
    """Fail early, before a run is created, when the dask backend cannot work at all."""
    import importlib.util

    if importlib.util.find_spec("distributed") is None or importlib.util.find_spec("dask") is None:
        raise UsageError("training.backend: dask needs dask.distributed, which is not installed", hint=_INSTALL_HINT)
    if not scheduler:
        raise UsageError(
            f"{C.CONFIG_FILE}: training.scheduler: is required when training.backend is dask",
            hint=f"set training.scheduler: tcp://HOST:8786 or {C.ENV_DASK_SCHEDULER}",
        )


@contextmanager
def connect(scheduler: str, timeout: float = CONNECT_TIMEOUT_S) -> Iterator[Any]:
    """A client on the scheduler, with one clear error when it does not answer, and one when a worker
    is lost while it is open (see :class:`WorkerLostError`)."""
    from distributed import Client

    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # a lost worker is reported once, by the error below
    try:
        try:
            client = Client(scheduler, timeout=timeout)  # xgboost.dask looks for the default client
        except (OSError, TimeoutError) as exc:
            raise OperationError(
                f"Dask scheduler {scheduler} is unreachable: {first_line(exc)}",
                hint=f"start it (`dask scheduler`, `dask worker {scheduler}`) or fix "
                f"training.scheduler / {C.ENV_DASK_SCHEDULER}",
            ) from None
        try:
            started = set(_workers(client))
            try:
                yield client
            except MlkitError:
                raise
            except Exception as exc:
                lost = _lost_worker(exc, client, started)
                if lost is None:
                    raise
                raise lost from exc
        finally:
            client.close()
    finally:
        quiet.setLevel(level)


def describe_cluster(scheduler: str, *, source: str) -> L.Backend:
    """The cluster's shape now, as the run's lineage records it; fails when it has no workers."""
    import dask
    import distributed

    with connect(scheduler) as client:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        packages = [w.get("packages", {}) for w in client.get_versions(check=False).get("workers", {}).values()]
    threads = sorted({int(w.get("nthreads", 0)) for w in workers.values()})
    limits = [int(w.get("memory_limit") or 0) for w in workers.values()]
    versions = {"dask": dask.__version__, "distributed": distributed.__version__}
    for name in ("dask", "distributed"):
        seen = sorted({str(p.get(name)) for p in packages if p.get(name)})
        if seen:
            versions[f"workers.{name}"] = ",".join(seen)
    return L.Backend(
        name="dask",
        source=source,
        scheduler=L.scheduler_host_port(scheduler),
        workers=len(workers),
        threads_per_worker=",".join(str(t) for t in threads),
        memory_per_worker=min(limits) if limits and min(limits) > 0 else None,
        versions=versions,
    )


def keeps_rows_on_workers(config: Any) -> bool:
    """Whether training reads and keeps the rows on the workers: built-in XGBoost estimators on the
    dask backend do."""
    model = config.model
    return (
        config.training.backend == "dask"
        and not model.entrypoint
        and bool(model.estimator)
        and str(model.estimator).startswith("xgboost.")
    )


def read_table(path: Path) -> Any:
    """A CSV or Parquet file read in parallel blocks with dask.dataframe, as one pandas DataFrame (for
    estimators that fit in the client under joblib's Dask backend).

    Row order and dtypes match pandas' own reader (the index is renumbered, blocks each start at 0), so
    the split and preprocessing that follow are the same as in process.
    """
    import dask.dataframe as dd

    if not path.exists():
        return datasets.read_table(path)  # raises the same "run `mlkit data pull`" error
    try:
        if path.suffix in (".parquet", ".pq"):
            frame = dd.read_parquet(str(path))
        else:
            # dtypes from a sample as large as a block, so every block agrees with pandas' inference
            frame = dd.read_csv(str(path), blocksize="64MB", sample=64_000_000)
        result = frame.compute(scheduler="threads")
    except Exception:
        return datasets.read_table(path)  # pandas' reader gives the precise, user-facing error
    return result.reset_index(drop=True)


# --- rows on the workers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterFrame:
    """Training rows that stay on the workers: a lazy dask DataFrame (features and the encoded target),
    its partition lengths, and a seeded sample of at most :data:`SAMPLE_ROWS` rows held here.

    It answers what the code around the fit asks of a feature table without holding it: ``len`` (every
    row), ``columns``, ``frame[name]`` (the sample's column: dtypes, the reference profile).
    """

    frame: Any
    features: list[str]
    target: str
    lengths: tuple[int, ...]
    sample: Any  # pandas, features and target

    def __len__(self) -> int:
        return sum(self.lengths)

    @property
    def columns(self) -> Any:
        return self.sample[self.features].columns

    def __getitem__(self, name: str) -> Any:
        return self.sample[self.features][name]


@dataclass(frozen=True)
class ClusterTarget:
    """The encoded target of a :class:`ClusterFrame`; iterating gives the sample's values."""

    rows: ClusterFrame

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows.sample[self.rows.target].tolist())


def load_split(project: Any, say: Any, split_warnings: Callable[..., list[str]]) -> datasets.Splits:
    """Read, hook, check and split the training data on the cluster; only the test split, a sample of
    the training rows and a few raw rows (the model's signature and example) come to this process.
    ``split_warnings(y_test, task, classes)`` says when the test split is too small to trust."""
    config, params = project.config, project.params
    _refuse_in_memory_only_params(params)
    scheduler = str(config.training.scheduler)
    source = config.data.train
    location = worker_location(project.root, source)
    say(f"the Dask workers read {source} from {location.where}")
    with connect(scheduler):
        frame = datasets.read_on_workers(location, Path(source).suffix)
        raw = _typed_head(frame)
        if config.data.hook:
            frame = datasets.hook_on_partitions(frame, config.data.hook, project.root, raw)
        frame, classes = _prepared(frame, config, source)
        train, test = _split_off_test(project, frame, classes)
        train_rows, test_rows = train.map_partitions(len), None
        import dask

        total = int(dask.compute(train_rows.sum())[0])
        fraction = 1.0 if total <= SAMPLE_ROWS else SAMPLE_ROWS / total
        sampled = train.sample(frac=fraction, random_state=params.seed) if fraction < 1 else train
        lengths, sample, test_rows = dask.compute(train_rows, sampled, test)
    target = config.data.target
    features = [c for c in sample.columns if c != target]
    kind = "int64" if classes is not None else "float64"
    X_test, y_test = test_rows[features].reset_index(drop=True), test_rows[target].to_numpy(dtype=kind)
    rows = ClusterFrame(train, features, target, tuple(int(n) for n in lengths), sample.reset_index(drop=True))
    mapping = datasets.Dataset(None, None, classes).label_mapping
    labels = json.dumps(mapping, sort_keys=True) if mapping else ""
    warnings = split_warnings(y_test, config.model.task, classes)
    for warning in warnings:
        say(f"warning: {warning}")
    return datasets.Splits(rows, ClusterTarget(rows), X_test, y_test, classes, labels, raw, warnings)


def _refuse_in_memory_only_params(params: Any) -> None:
    if params.cv_folds >= 2:
        raise UsageError(
            f"params.cv_folds: {params.cv_folds}: cross-validation is not available when the rows stay on the "
            "Dask workers (XGBoost on the dask backend)",
            hint="set cv_folds: 0 in params.yaml, or train with training.backend: local",
        )
    if params.early_stopping_rounds:
        raise UsageError(
            "params.early_stopping_rounds: early stopping is not available when the rows stay on the Dask "
            "workers (XGBoost on the dask backend)",
            hint="remove early_stopping_rounds from params.yaml, or train with training.backend: local",
        )


def _typed_head(frame: Any, rows: int = 100) -> Any:
    """The first rows (read on a worker), with the dtypes of the whole table as dask inferred them."""
    head = frame.head(rows, npartitions=-1)
    try:
        return head.astype(dict(frame.dtypes))
    except (TypeError, ValueError):
        return head


def _prepared(frame: Any, config: Any, source: str) -> tuple[Any, list[Any] | None]:
    """The checks of :func:`datasets.prepare`, computed on the workers; the target encoded in place."""
    import dask
    import numpy as np

    target, drop = config.data.target, config.data.drop
    datasets.check_columns([str(c) for c in frame.columns], target=target, drop=drop, source=source)
    frame = frame.drop(columns=list(drop)) if drop else frame
    column = frame[target]
    if config.model.task != "classification":
        if not np.issubdtype(column.dtype, np.number):
            raise UsageError(
                f"{source}: target column {target!r} is not numeric; model.task is regression",
                hint="use model.task: classification, or a numeric target",
            )
        rows, missing = dask.compute(frame.map_partitions(len).sum(), column.isna().sum())
        _check_rows(int(rows), int(missing), source, target)
        return frame.assign(**{target: column.astype("float64")}), None
    rows, missing, values = dask.compute(frame.map_partitions(len).sum(), column.isna().sum(), column.drop_duplicates())
    _check_rows(int(rows), int(missing), source, target)
    classes = sorted(values.tolist(), key=lambda v: (str(type(v)), v))
    if len(classes) < 2:
        raise UsageError(
            f"{source}: target column {target!r} has a single class {classes[0]!r}",
            hint="classification needs at least two classes",
        )
    index = {value: i for i, value in enumerate(classes)}
    encoded = column.map(index, meta=(target, "int64"))
    return frame.assign(**{target: encoded}), classes


def _check_rows(rows: int, missing: int, source: str, target: str) -> None:
    if rows == 0:
        raise UsageError(f"{source}: the data has no rows", hint="check the file, then `mlkit data add` it")
    if missing:
        raise UsageError(
            f"{source}: target column {target!r} has {missing} missing value(s)",
            hint="drop or fill those rows (e.g. in the data.hook function)",
        )


def _split_off_test(project: Any, frame: Any, classes: list[Any] | None) -> tuple[Any, Any]:
    """(train, test): a seeded draw per partition (the same partitions give the same split), or the
    separate test file, read on the workers too."""
    config, params = project.config, project.params
    if not config.data.test:
        train, test = frame.random_split([1 - params.test_size, params.test_size], random_state=params.seed)
        return train, test
    location = worker_location(project.root, config.data.test)
    test = datasets.read_on_workers(location, Path(config.data.test).suffix)
    if config.data.hook:
        test = datasets.hook_on_partitions(test, config.data.hook, project.root, _typed_head(test))
    target = config.data.target
    test = test.drop(columns=list(config.data.drop)) if config.data.drop else test
    if classes is not None:
        index = {value: i for i, value in enumerate(classes)}
        unseen = [v for v in test[target].drop_duplicates().compute().tolist() if v not in index]
        if unseen:
            raise UsageError(
                f"{config.data.test}: target {target!r} has classes not in the training data: "
                + ", ".join(sorted(map(str, unseen))[:5]),
                hint="check data.test",
            )
        test = test.assign(**{target: test[target].map(index, meta=(target, "int64"))})
    else:
        test = test.assign(**{target: test[target].astype("float64")})
    return frame, test


def data_read(project: Any) -> dict[str, str]:
    """Input path -> where the workers read it, for the lineage (nothing when rows are read here)."""
    config = project.config
    if not keeps_rows_on_workers(config):
        return {}
    inputs = [config.data.train] + ([config.data.test] if config.data.test else [])
    return {path: worker_location(project.root, path).where for path in inputs}


# --- the fit ------------------------------------------------------------------------------------------


def fit_model(
    model: Any,
    X: Any,
    y: Any,
    *,
    preprocessor: Any | None,
    scheduler: str,
    eval_sets: Sequence[tuple[str, Any, Any]] = (),
    early_stopping_rounds: int | None = None,
) -> FittedModel:
    """Fit ``preprocessor`` (in process) and ``model`` (on the cluster) into one scikit-learn Pipeline.

    With rows on the cluster (:class:`ClusterFrame`), the preprocessor is fitted on their sample and
    transforms every partition on the worker that holds it.
    """
    from sklearn.pipeline import Pipeline

    with connect(scheduler) as client:
        if not is_xgboost(model):  # scikit-learn estimators, and whole pipelines from an entrypoint
            if isinstance(X, ClusterFrame):
                raise UsageError("only XGBoost estimators train on rows kept on the Dask workers")
            if preprocessor is not None:
                pipeline = Pipeline([("preprocess", preprocessor), ("model", model)])
            else:
                pipeline = model if isinstance(model, Pipeline) else Pipeline([("model", model)])
            _fit_with_joblib_dask(pipeline, X, y)
            return FittedModel(pipeline)
        workers = _workers(client)
        if isinstance(X, ClusterFrame):
            if preprocessor is not None:
                preprocessor.fit(X.sample[X.features], X.sample[X.target].to_numpy())
            train = _placed_partitions(client, workers, X, preprocessor)
        else:
            transformed = preprocessor.fit_transform(X, y) if preprocessor is not None else X
            train = _placed(client, workers, transformed, y)
        names = [name for name, _, _ in eval_sets]
        sets = []
        for _, ex, ey in eval_sets:
            if ex is X:
                sets.append(train)
            else:
                shown = preprocessor.transform(ex) if preprocessor is not None else ex
                sets.append(_placed(client, workers, shown, ey))
        history = _fit_xgboost(client, model, train, sets, names, early_stopping_rounds)
    steps = ([("preprocess", preprocessor)] if preprocessor is not None else []) + [("model", model)]
    fitted = FittedModel(Pipeline(steps))
    fitted.history_ = history
    fitted.best_iteration_ = xgb.best_iteration(model) if early_stopping_rounds else None
    return fitted


# --- helpers ----------------------------------------------------------------------------------------


def _lost_worker(exc: BaseException, client: Any, started: set[str]) -> WorkerLostError | None:
    """The one-line error for ``exc`` when a worker went away (or the error says one did)."""
    lost_types: tuple[type[BaseException], ...] = ()
    try:
        from distributed.client import FutureCancelledError
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker

        lost_types = (FutureCancelledError, CommClosedError, KilledWorker)
    except ImportError:
        pass
    try:
        now = set(client.scheduler_info(n_workers=-1)["workers"])
    except Exception:
        if not isinstance(exc, lost_types):
            return None
        return WorkerLostError(
            f"the Dask scheduler {client.scheduler.address} went away during the run",
            hint="start it again and run again; check its log",
        )
    gone = sorted(started - now)
    if not gone and not isinstance(exc, lost_types):
        return None
    which = f" ({', '.join(gone)})" if gone else ""
    return WorkerLostError(
        f"a Dask worker was lost during the run{which}; {len(now)} of {len(started)} workers left",
        hint=_LOST_HINT,
    )


def _fit_with_joblib_dask(pipeline: Any, X: Any, y: Any) -> None:
    """joblib's Dask backend finds the default client that `connect` opened."""
    import joblib

    with joblib.parallel_backend("dask"):
        pipeline.fit(X, y)


def _workers(client: Any) -> list[str]:
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    if not workers:
        raise OperationError(
            f"Dask scheduler {client.scheduler.address} has no workers",
            hint=f"start some: `dask worker {client.scheduler.address}`",
        )
    return workers


def _placed(client: Any, workers: list[str], X: Any, y: Any | None) -> tuple[Any, Any]:
    """(X, y) as dask arrays with one contiguous block per worker, each block pinned to its worker."""
    import dask
    import dask.array as da
    import numpy as np

    X = _dense(X)
    bounds = np.linspace(0, X.shape[0], num=len(workers) + 1).astype(int)
    x_blocks, y_blocks = [], []
    for index, worker in enumerate(workers):
        start, stop = int(bounds[index]), int(bounds[index + 1])
        if stop <= start:
            continue
        [x_future] = client.scatter([X[start:stop]], workers=[worker], broadcast=False)
        x_blocks.append(da.from_delayed(dask.delayed(x_future), shape=(stop - start, X.shape[1]), dtype=X.dtype))
        if y is not None:
            part = np.asarray(y)[start:stop]
            [y_future] = client.scatter([part], workers=[worker], broadcast=False)
            y_blocks.append(da.from_delayed(dask.delayed(y_future), shape=(stop - start,), dtype=part.dtype))
    return da.concatenate(x_blocks), (da.concatenate(y_blocks) if y is not None else None)


def _placed_partitions(
    client: Any, workers: list[str], rows: ClusterFrame, preprocessor: Any | None
) -> tuple[Any, Any]:
    """(X, y) as dask arrays over the partitions of ``rows``, each transformed on the worker it is
    pinned to: contiguous runs of partitions, one run per worker in address order."""
    import dask
    import dask.array as da
    import numpy as np

    columns = len(preprocessor.get_feature_names_out()) if preprocessor is not None else len(rows.features)
    parts = rows.frame.to_delayed()
    y_dtype = np.dtype("int64" if _is_integer(rows.sample[rows.target].dtype) else "float64")
    count = len(parts)
    x_blocks, y_blocks = [], []
    for index, (part, length) in enumerate(zip(parts, rows.lengths, strict=True)):
        if not length:
            continue
        worker = workers[index * len(workers) // count]
        x_task = dask.delayed(_transform_partition)(part, preprocessor, rows.features)
        y_task = dask.delayed(_target_partition)(part, rows.target, y_dtype)
        x_future, y_future = client.compute([x_task, y_task], workers=[worker], allow_other_workers=False)
        x_blocks.append(da.from_delayed(dask.delayed(x_future), shape=(length, columns), dtype=np.float32))
        y_blocks.append(da.from_delayed(dask.delayed(y_future), shape=(length,), dtype=y_dtype))
    return da.concatenate(x_blocks), da.concatenate(y_blocks)


def _transform_partition(part: Any, preprocessor: Any | None, features: list[str]) -> Any:
    values = preprocessor.transform(part[features]) if preprocessor is not None else part[features]
    return _dense(values)


def _target_partition(part: Any, target: str, dtype: Any) -> Any:
    return part[target].to_numpy(dtype=dtype)


def _is_integer(dtype: Any) -> bool:
    from pandas.api import types

    return bool(types.is_integer_dtype(dtype))


def _dense(X: Any) -> Any:
    import numpy as np

    if hasattr(X, "toarray"):
        X = X.toarray()
    return np.ascontiguousarray(np.asarray(X, dtype=np.float32))


def _fit_xgboost(
    client: Any,
    model: Any,
    train: tuple[Any, Any],
    eval_sets: list[tuple[Any, Any]],
    names: list[str],
    early_stopping_rounds: int | None,
) -> dict[str, list[float]]:
    """Train the booster on the cluster with xgboost.dask, then load it into ``model`` itself."""
    from xgboost import XGBClassifier
    from xgboost import dask as dxgb

    dask_class = dxgb.DaskXGBClassifier if isinstance(model, XGBClassifier) else dxgb.DaskXGBRegressor
    params = model.get_params()
    if early_stopping_rounds is not None:
        params["early_stopping_rounds"] = early_stopping_rounds
    params.pop("n_jobs", None)  # each worker uses its own threads
    distributed_model = dask_class(**params)
    distributed_model.client = client
    X_d, y_d = train
    distributed_model.fit(X_d, y_d, eval_set=eval_sets or None, verbose=False)
    history = xgb.iteration_history(distributed_model, names)
    with tempfile.TemporaryDirectory(prefix="mlkit-dask-") as scratch:
        saved = os.path.join(scratch, "model.json")
        distributed_model.save_model(saved)
        model.load_model(saved)
    return history


def environment_source(backend: str, file_backend: Any, environ: Mapping[str, str]) -> str:
    """What chose ``backend``, given what mlkit.yaml says (None when it says nothing) and the environment:
    ``default``, ``mlkit.yaml``, the ``MLKIT_DASK_SCHEDULER`` variable, or ``--set`` (an override)."""
    from_env = bool(environ.get(C.ENV_DASK_SCHEDULER))
    if backend == "dask":
        if from_env and file_backend != "dask":
            return C.ENV_DASK_SCHEDULER
        return C.CONFIG_FILE if file_backend == "dask" else "--set"
    if from_env or file_backend not in (None, "local"):
        return "--set"  # local, over what the file or the environment said
    return C.CONFIG_FILE if file_backend == "local" else "default"


def worker_location(root: Path, relative: str, environ: Any = None) -> Any:
    """Where Dask workers read the DVC-tracked input ``relative``: its object in the DVC remote (with the
    remote's filesystem options from DVC's configuration, config.local included), else its object in the
    DVC cache, else the workspace file; the last two need storage the workers share with this machine.

    S3 credentials neither DVC's configuration nor the options hold are taken from this process's
    environment (``AWS_ACCESS_KEY_ID``...), so workers without their own can read the object; they travel
    inside the read tasks and are never logged (``where`` shows none).
    """
    import os

    from mlkit.engines import dvc

    record = data.recorded(root, relative, base=root)
    if not record.is_dir:
        found = dvc.remote_object(root, record.md5)
        if found is not None:
            env = os.environ if environ is None else environ
            options = dict(found.storage_options)
            if found.url.startswith("s3://") and not options.get("key") and env.get("AWS_ACCESS_KEY_ID"):
                options["key"] = env["AWS_ACCESS_KEY_ID"]
                options["secret"] = env.get("AWS_SECRET_ACCESS_KEY")
                if env.get("AWS_SESSION_TOKEN"):
                    options["token"] = env["AWS_SESSION_TOKEN"]
            return dvc.ObjectLocation(found.url, options, found.where)
        cached = dvc.cache_object(root, record.md5)
        if cached.is_file():
            return dvc.ObjectLocation(str(cached), {}, f"DVC cache ({cached})")
    path = (root / relative).resolve()
    return dvc.ObjectLocation(str(path), {}, f"shared storage ({path})")
