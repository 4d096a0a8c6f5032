"""Interrupts (Ctrl-C, SIGTERM) during training, including those a native library swallows.

Python delivers SIGINT as KeyboardInterrupt in the main thread, but a native library running Python
callbacks can catch it and raise its own error instead (XGBoost does while building its DMatrix from a
data iterator). :func:`handle_signals` remembers that a signal arrived, so training can still end the
run KILLED and exit as interrupted.

Two kinds of work must not be cut short: ending a run after an interrupt (else it stays RUNNING), and
the last step of a run (registering its version, marking it FINISHED, writing the outputs), which is
either done whole or not begun. Inside :func:`handle_signals` only the first signal raises; later ones
are remembered while the clean-up runs. :func:`deferred` holds every signal until its block ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_requested = threading.Event()


@contextmanager
def handle_signals() -> Iterator[None]:
    """Within the block, the first SIGINT or SIGTERM raises KeyboardInterrupt and is remembered; later
    ones are only remembered, so the clean-up after the first is never cut short (main thread only)."""

    def interrupt(_signum: int, _frame: Any) -> None:
        if _requested.is_set():
            return  # already interrupted: the clean-up is running
        _requested.set()
        raise KeyboardInterrupt

    with _installed(interrupt) as installed:
        if installed:
            _requested.clear()
        try:
            yield
        finally:
            if installed:
                _requested.clear()


@dataclass
class Deferral:
    """What :func:`deferred` saw: ``signalled`` when a signal arrived inside its block."""

    signalled: bool = False


@contextmanager
def deferred() -> Iterator[Deferral]:
    """Within the block, SIGINT and SIGTERM are remembered and never raised: the block runs to its end.

    The caller looks at ``signalled`` afterwards and raises KeyboardInterrupt itself when the interrupt
    should still take effect. Outside the main thread nothing changes (signals go to the main thread).
    """
    held = Deferral()

    def remember(_signum: int, _frame: Any) -> None:
        held.signalled = True
        _requested.set()

    with _installed(remember):
        yield held


def requested() -> bool:
    """Whether a signal arrived inside :func:`handle_signals` or :func:`deferred`, even if its
    KeyboardInterrupt was swallowed."""
    return _requested.is_set()


@contextmanager
def _installed(handler: Any) -> Iterator[bool]:
    """``handler`` for SIGINT and SIGTERM within the block, the previous handlers restored after it;
    yields False (and installs nothing) outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous: dict[signal.Signals, Any] = {}
    try:
        for signum in _SIGNALS:
            previous[signum] = signal.signal(signum, handler)
        yield True
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
