"""Copy-on-write clones (reflinks): probed once per operation, skipped where the filesystem cannot do them."""

from __future__ import annotations

import errno
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def skip_unsupported_reflink(repo: Any) -> None:
    """Drop ``reflink`` from the cache's link types when this filesystem cannot do it.

    DVC tries each link type per file, and a failed reflink costs creating and deleting the file:
    for 10,000 small files that doubles the time of an add. With ``hardlink`` first DVC also moves
    data into the cache with one link per file instead of a copy.
    """
    for odb in {id(o): o for o in (repo.cache.local, repo.cache.legacy)}.values():
        types = list(odb.cache_types or [])
        if types and types[0] == "reflink" and len(types) > 1 and not reflink_works(Path(odb.path)):
            odb.cache_types = types[1:]


def reflink_works(source_dir: Path | None, target_dir: Path | None = None) -> bool:
    """Whether a copy-on-write clone works from ``source_dir`` to ``target_dir`` (default: the same)."""
    from dvc_objects.fs.system import reflink

    if source_dir is None:
        return True  # not a local directory: leave DVC's own behaviour alone
    target_dir = target_dir or source_dir
    try:
        source_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=source_dir, prefix=".mlkit-probe-") as probe:
            probe.write(b"probe")
            probe.flush()
            clone = target_dir / f".mlkit-probe-{os.getpid()}-{time.monotonic_ns()}"
            try:
                reflink(probe.name, str(clone))
            except OSError:
                return False
            clone.unlink(missing_ok=True)
            return True
    except OSError:
        return False


@contextmanager
def no_reflink_unless(works: bool) -> Iterator[None]:
    """Make DVC's copies skip the clone attempt (a create and a delete per file) where it cannot work."""
    import dvc_objects.fs.system as system

    if works:
        yield
        return
    original = system.reflink

    def _unsupported(src: str, dst: str) -> None:
        raise OSError(errno.EOPNOTSUPP, "reflink is not supported here")

    system.reflink = _unsupported
    try:
        yield
    finally:
        system.reflink = original
