"""DVC's progress bars, forwarded to mlkit's caller as :class:`ProgressEvent` calls instead of drawn."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

_PROGRESS_MIN_BYTES = 8 * 2**20  # byte bars of smaller files are not worth showing


@dataclass(frozen=True)
class ProgressEvent:
    """One update of one of DVC's progress bars, forwarded to mlkit's caller."""

    key: int  # tells bars apart
    description: str
    completed: float
    total: float | None
    unit: str  # "file", "B", "entry", ...
    finished: bool = False


ProgressCallback = Callable[[ProgressEvent], None]


@contextmanager
def forward_progress(report: ProgressCallback | None) -> Iterator[None]:
    """Turn DVC's progress bars into :class:`ProgressEvent` calls while the block runs.

    DVC draws tqdm bars itself (and only on a terminal); mlkit's core prints nothing, so each of
    DVC's bar classes is swapped for a silent subclass that reports to ``report``.
    """
    if report is None:
        yield
        return
    import dvc.fs.callbacks
    import dvc.progress
    import dvc_data.callbacks

    patched = [(dvc.progress, "Tqdm"), (dvc.fs.callbacks, "Tqdm"), (dvc_data.callbacks, "Tqdm")]
    originals = [getattr(module, name) for module, name in patched]
    for (module, name), original in zip(patched, originals, strict=True):
        setattr(module, name, _reporting_bar(original, report))
    try:
        yield
    finally:
        for (module, name), original in zip(patched, originals, strict=True):
            setattr(module, name, original)


def _reporting_bar(base: type, report: ProgressCallback) -> type:
    class ReportingBar(base):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._mlkit_desc = str(kwargs.get("desc") or "")
            self._mlkit_unit = "B" if kwargs.get("bytes") else str(kwargs.get("unit") or "it")
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def _mlkit_report(self, finished: bool = False) -> None:
            total = getattr(self, "total", None) or None
            if self._mlkit_unit == "B" and (total or 0) < _PROGRESS_MIN_BYTES:
                return
            with suppress(Exception):  # a broken display must not break the data operation
                report(
                    ProgressEvent(
                        key=id(self),
                        description=self._mlkit_desc,
                        completed=float(getattr(self, "n", 0)),
                        total=float(total) if total else None,
                        unit=self._mlkit_unit,
                        finished=finished,
                    )
                )

        def update(self, n: float | None = 1) -> bool | None:
            self.n = getattr(self, "n", 0) + (n or 0)
            self._mlkit_report()
            return True

        def set_description_str(self, desc: str | None = None, refresh: bool = True) -> None:
            self._mlkit_desc = desc or self._mlkit_desc

        def reset(self, total: float | None = None) -> None:
            self.n = 0
            if total is not None:
                self.total = total

        def close(self) -> None:
            if not getattr(self, "_mlkit_closed", False):
                self._mlkit_closed = True
                self._mlkit_report(finished=True)
            super().close()

    return ReportingBar
