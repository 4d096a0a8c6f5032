"""How the core reports progress: a callback the caller passes in, never printing of its own."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]
"""Receives one human-readable status line at a time (the CLI prints them on stderr)."""


def silent(_message: str) -> None:
    """The default callback: the library says nothing unless its caller listens."""


def or_silent(progress: Progress | None) -> Progress:
    return progress if progress is not None else silent
