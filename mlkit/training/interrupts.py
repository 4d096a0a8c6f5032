"""Interrupts (Ctrl-C, SIGTERM) during training, including those a native library swallows.

Python delivers SIGINT as KeyboardInterrupt in the main thread, but a native library running Python
callbacks can catch it and raise its own error instead (XGBoost does while building its DMatrix from a
data iterator). :func:`handle_signals` remembers that a signal arrived, so training can still end the
run KILLED and exit as interrupted.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_requested = threading.Event()


@contextmanager
def handle_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise KeyboardInterrupt and are remembered (main thread only)."""

    def interrupt(_signum: int, _frame: Any) -> None:
        _requested.set()
        raise KeyboardInterrupt

    previous: dict[signal.Signals, Any] = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, interrupt)
    except ValueError:  # not the main thread: signals stay as they are
        yield
        return
    _requested.clear()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _requested.clear()


def requested() -> bool:
    """Whether a signal arrived inside :func:`handle_signals`, even if its KeyboardInterrupt was swallowed."""
    return _requested.is_set()
