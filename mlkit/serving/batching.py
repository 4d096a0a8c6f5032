"""Adaptive micro-batching: concurrent requests share one call into the model.

The policy: a single prediction thread runs one batch at a time. While it works, new requests queue
up, and the next batch takes all of them (up to ``max_rows``), so batches grow with the load and shrink
back to single requests when the load goes. The bounded wait ``max_wait_ms`` is added only while the
traffic is concurrent (the previous batch held more than one request): then a short pause fills the
batch further; a lone client never waits for company. The model used is read once per batch, so a hot
swap never splits a batch and every request in flight finishes on the version its batch started on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlkit.serving.payload import Rows


@dataclass
class _Job:
    rows: Rows
    probabilities: bool
    future: asyncio.Future[Any] = field(repr=False)
    request_id: str = ""
    started: float = 0.0  # time.perf_counter() at the request's arrival
    log: bool = False  # whether the prediction log wants this request


@dataclass
class Scored:
    """What one model call answered, for the prediction log: handed over once per call, not per request."""

    loaded: Any
    columns: dict[str, list[Any]]  # the rows of every request of the call, one list per column
    predictions: Any  # labels (an array) or a DataFrame of probabilities, one per row
    request_ids: list[str]
    counts: list[int]  # rows of each request, in order
    latencies_ms: list[float]  # arrival to prediction, per request


class BatchError(Exception):
    """A request's rows made the model fail even when predicted alone."""


class MicroBatcher:
    """``await submit(rows, probabilities)`` -> (predictions for those rows, the LoadedModel that made them)."""

    def __init__(
        self,
        current: Callable[[], Any],
        *,
        max_rows: int = 512,
        max_wait_ms: float = 2.0,
        on_batch: Callable[[int, int], None] | None = None,
        on_scored: Callable[[Scored], None] | None = None,
    ) -> None:
        self._current = current
        self.max_rows = max_rows
        self.max_wait = max_wait_ms / 1000.0
        self._on_batch = on_batch or (lambda _rows, _requests: None)
        self._on_scored = on_scored  # called on the prediction thread, never on the event loop
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mlkit-predict")
        self._last_requests = 1
        self._task: asyncio.Task[None] | None = None

    def start(self) -> MicroBatcher:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    async def submit(
        self, rows: Rows, probabilities: bool, *, request_id: str = "", started: float = 0.0, log: bool = False
    ) -> tuple[Any, Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(rows, probabilities, future, request_id, started, log))
        result: tuple[Any, Any] = await future
        return result

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            batch, rows = [first], first.rows.count
            rows = self._take_waiting(batch, rows)
            if self._last_requests > 1 and self.max_wait > 0 and rows < self.max_rows:
                deadline = loop.time() + self.max_wait
                while rows < self.max_rows:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(self._queue.get(), remaining)
                    except asyncio.TimeoutError:
                        break
                    batch.append(job)
                    rows = self._take_waiting(batch, rows + job.rows.count)
            self._last_requests = len(batch)
            model = self._current()
            try:
                outcomes = await loop.run_in_executor(self._executor, _predict_batch, model, batch, self._on_scored)
            except BaseException as exc:  # cancelled while predicting: answer the waiting requests
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("stopped"))
                raise
            self._on_batch(rows, len(batch))
            for job, outcome in zip(batch, outcomes, strict=True):
                if job.future.done():
                    continue
                if isinstance(outcome, Exception):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result((outcome, model))

    def _take_waiting(self, batch: list[_Job], rows: int) -> int:
        while rows < self.max_rows and not self._queue.empty():
            job = self._queue.get_nowait()
            batch.append(job)
            rows += job.rows.count
        return rows


def _predict_batch(loaded: Any, batch: list[_Job], on_scored: Callable[[Scored], None] | None = None) -> list[Any]:
    """One model call per kind of answer (labels, probabilities); each request gets its own slice."""
    outcomes: list[Any] = [None] * len(batch)
    for probabilities in (False, True):
        indices = [i for i, job in enumerate(batch) if job.probabilities is probabilities]
        if not indices:
            continue
        jobs = [batch[i] for i in indices]
        try:
            columns, result = _predict(loaded, [job.rows for job in jobs], probabilities)
        except Exception:
            if len(indices) == 1:
                outcomes[indices[0]] = _failure(loaded, batch[indices[0]].rows, probabilities)
                continue
            # one request's rows broke the batch: the others must not pay for it
            for i in indices:
                outcomes[i] = _failure(loaded, batch[i].rows, probabilities)
            continue
        start = 0
        for i in indices:
            count = batch[i].rows.count
            outcomes[i] = (
                result.iloc[start : start + count] if hasattr(result, "iloc") else result[start : start + count]
            )
            start += count
        if on_scored is not None and any(job.log for job in jobs):
            on_scored(_scored(loaded, columns, result, jobs))
    return outcomes


def _scored(loaded: Any, columns: dict[str, list[Any]], result: Any, jobs: list[_Job]) -> Scored:
    now = time.perf_counter()
    if not all(job.log for job in jobs):  # a sample of the requests: only their rows
        import numpy as np

        keep = np.repeat([job.log for job in jobs], [job.rows.count for job in jobs])
        result = result[keep] if not hasattr(result, "iloc") else result.iloc[np.flatnonzero(keep)]
        jobs = [job for job in jobs if job.log]
        columns = _merge(loaded.model.types, [job.rows for job in jobs])
    return Scored(
        loaded=loaded,
        columns=columns,
        predictions=result,
        request_ids=[job.request_id for job in jobs],
        counts=[job.rows.count for job in jobs],
        latencies_ms=[(now - job.started) * 1000.0 for job in jobs],
    )


def _predict(loaded: Any, parts: list[Rows], probabilities: bool) -> tuple[dict[str, list[Any]], Any]:
    """(the rows as one list per column, the model's answer): the lists are the call's own, and the
    model only reads them (it gets a DataFrame built from them), so the log can keep them."""
    model = loaded.model
    merged = _merge(model.types, parts)
    return merged, model.predict_frame(model.frame_from_columns(merged), probabilities=probabilities)


def _merge(types: Any, parts: list[Rows]) -> dict[str, list[Any]]:
    if len(parts) == 1:
        return parts[0].columns
    merged = {}
    for name in types:
        if any(name in part.columns for part in parts):
            values: list[Any] = []
            for part in parts:
                values += part.columns.get(name, [None] * part.count)
            merged[name] = values
    return merged


def _failure(loaded: Any, rows: Rows, probabilities: bool) -> Any:
    try:
        return _predict(loaded, [rows], probabilities)[1]
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return BatchError(f"the model could not score these rows: {type(exc).__name__}: {message}")
