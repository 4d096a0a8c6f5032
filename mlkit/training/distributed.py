"""Training on a Dask cluster (``training.backend: dask``): the same model, fitted elsewhere.

Everything around the fit stays in process and is identical to local training: the data are read (with
``dask.dataframe``), split and preprocessed exactly as locally, so lineage, evaluation, tracking and
registration do not know where the model was fitted. Only the fit moves:

- XGBoost estimators train with ``xgboost.dask`` on the cluster's workers. The preprocessed rows are
  cut into one contiguous block per worker and each block is placed on a fixed worker (sorted by
  address), so a rerun on the same cluster sums the same histograms in the same order and gives the
  same model. The booster comes back into the project's own estimator class, so the logged model is
  the same scikit-learn pipeline a local run logs.
- Other scikit-learn estimators fit under joblib's Dask backend: their ``n_jobs`` parallel work (trees
  of a forest, folds of a search) runs on the cluster.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlkit import constants as C
from mlkit.errors import OperationError, UsageError, first_line
from mlkit.training import datasets, xgb
from mlkit.training.estimators import is_xgboost
from mlkit.training.fitted import FittedModel

CONNECT_TIMEOUT_S = 15.0
_INSTALL_HINT = "pip install 'mlkit[dask]'"


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
    """A client on the scheduler, with one clear error when it does not answer."""
    from distributed import Client

    try:
        client = Client(scheduler, timeout=timeout)  # xgboost.dask looks for the default client
    except (OSError, TimeoutError) as exc:
        raise OperationError(
            f"Dask scheduler {scheduler} is unreachable: {first_line(exc)}",
            hint=f"start it (`dask scheduler`, `dask worker {scheduler}`) or fix "
            f"training.scheduler / {C.ENV_DASK_SCHEDULER}",
        ) from None
    try:
        yield client
    finally:
        client.close()


def read_table(path: Path) -> Any:
    """A CSV or Parquet file read in parallel blocks with dask.dataframe, as one pandas DataFrame.

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
    """Fit ``preprocessor`` (in process) and ``model`` (on the cluster) into one scikit-learn Pipeline."""
    from sklearn.pipeline import Pipeline

    with connect(scheduler) as client:
        if not is_xgboost(model):  # scikit-learn estimators, and whole pipelines from an entrypoint
            if preprocessor is not None:
                pipeline = Pipeline([("preprocess", preprocessor), ("model", model)])
            else:
                pipeline = model if isinstance(model, Pipeline) else Pipeline([("model", model)])
            _fit_with_joblib_dask(pipeline, X, y)
            return FittedModel(pipeline)
        transformed = preprocessor.fit_transform(X, y) if preprocessor is not None else X
        names = [name for name, _, _ in eval_sets]
        sets = [(preprocessor.transform(ex) if preprocessor is not None else ex, ey) for _, ex, ey in eval_sets]
        history = _fit_xgboost(client, model, transformed, y, sets, names, early_stopping_rounds)
    steps = ([("preprocess", preprocessor)] if preprocessor is not None else []) + [("model", model)]
    fitted = FittedModel(Pipeline(steps))
    fitted.history_ = history
    fitted.best_iteration_ = xgb.best_iteration(model) if early_stopping_rounds else None
    return fitted


# --- helpers ----------------------------------------------------------------------------------------


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


def _dense(X: Any) -> Any:
    import numpy as np

    if hasattr(X, "toarray"):
        X = X.toarray()
    return np.ascontiguousarray(np.asarray(X, dtype=np.float32))


def _fit_xgboost(
    client: Any,
    model: Any,
    X: Any,
    y: Any,
    eval_sets: list[tuple[Any, Any]],
    names: list[str],
    early_stopping_rounds: int | None,
) -> dict[str, list[float]]:
    """Train the booster on the cluster with xgboost.dask, then load it into ``model`` itself."""
    from xgboost import XGBClassifier
    from xgboost import dask as dxgb

    workers = _workers(client)
    dask_class = dxgb.DaskXGBClassifier if isinstance(model, XGBClassifier) else dxgb.DaskXGBRegressor
    params = model.get_params()
    if early_stopping_rounds is not None:
        params["early_stopping_rounds"] = early_stopping_rounds
    params.pop("n_jobs", None)  # each worker uses its own threads
    distributed_model = dask_class(**params)
    distributed_model.client = client
    X_d, y_d = _placed(client, workers, X, y)
    evals = [_placed(client, workers, ex, ey) for ex, ey in eval_sets]
    distributed_model.fit(X_d, y_d, eval_set=evals or None, verbose=False)
    history = xgb.iteration_history(distributed_model, names)
    with tempfile.TemporaryDirectory(prefix="mlkit-dask-") as scratch:
        saved = os.path.join(scratch, "model.json")
        distributed_model.save_model(saved)
        model.load_model(saved)
    return history
