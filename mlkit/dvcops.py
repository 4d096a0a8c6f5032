"""Every call mlkit makes into DVC's Python API lives in this module.

DVC's Python API (`dvc.repo.Repo`) is not a documented, stable interface, so the surface mlkit uses is
kept small and in one place: a DVC upgrade breaks here, and the tests of this module say where.
Rules followed throughout: a fresh ``Repo`` per operation (long-lived ones go stale), absolute paths
(DVC resolves relative ones against the process's working directory), and DVC's logger kept off stdout.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

from mlkit.errors import OperationError


def quiet_dvc_logger() -> None:
    """DVC logs to the root handlers even when a call fails; keep it out of mlkit's output."""
    logger = logging.getLogger("dvc")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False
    logger.setLevel(logging.CRITICAL)


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Some DVC calls resolve targets against the process's working directory; run them from ``path``."""
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextmanager
def open_repo(root: Path) -> Iterator[Any]:
    """A fresh DVC ``Repo`` for one operation, closed afterwards."""
    from dvc.repo import Repo

    quiet_dvc_logger()
    repo = Repo(str(root))
    try:
        yield repo
    finally:
        repo.close()


def init_repo(root: Path, *, remote: Path | str | None, link_types: str, scm: bool = True,
              remote_name: str = "local") -> None:
    """``dvc init`` with mlkit's defaults: no analytics, autostage, link-based cache, default remote."""
    from dvc.repo import Repo

    quiet_dvc_logger()
    with redirect_stdout(io.StringIO()):  # DVC prints its own "next steps" text on init
        repo = Repo.init(str(root), no_scm=not scm)
    try:
        with repo.config.edit() as conf:
            conf["core"]["analytics"] = False
            if scm:
                conf["core"]["autostage"] = True
            conf["cache"]["type"] = link_types
            if remote is not None:
                conf["remote"][remote_name] = {"url": str(remote)}
                conf["core"]["remote"] = remote_name
    finally:
        repo.close()


def track(root: Path, paths: Sequence[Path]) -> list[str]:
    """``dvc add`` the given absolute paths; returns the `.dvc` files written (relative to root)."""
    with open_repo(root) as repo:
        stages = repo.add([str(Path(p).resolve()) for p in paths])
    return [Path(stage.path).resolve().relative_to(root.resolve()).as_posix() for stage in stages]


def commit_stage(root: Path, stage: str) -> None:
    """Record the current deps and outs of a pipeline stage in dvc.lock without running it."""
    with open_repo(root) as repo:
        _commit_stage(repo, root, stage)


def track_and_commit_stage(root: Path, paths: Sequence[Path], stage: str | None) -> list[str]:
    """`track` then `commit_stage` on one ``Repo`` (what a new project needs, opened once)."""
    with open_repo(root) as repo:
        stages = repo.add([str(Path(p).resolve()) for p in paths]) if paths else []
        if stage is not None:
            _commit_stage(repo, root, stage)
    return [Path(s.path).resolve().relative_to(root.resolve()).as_posix() for s in stages]


def _commit_stage(repo: Any, root: Path, stage: str) -> None:
    with working_directory(root):
        try:
            repo.commit(stage, force=True)
        except Exception as exc:
            raise OperationError(f"could not record stage {stage!r} in dvc.lock: {exc}") from exc


def workspace_hashes(root: Path, items: Sequence[tuple[Path, str]]) -> dict[str, str]:
    """Absolute path -> hash of the workspace copy, for ``(path, hash name)`` pairs.

    Reads DVC's state database first (hashes keyed by inode, mtime and size), so only files DVC has not
    hashed in their current form are read; those new hashes are saved back for the next call. Nothing is
    written to the cache. Directories get DVC's ``<md5>.dir`` tree hash.
    """
    from dvc_data.hashfile.build import build
    from dvc_objects.fs.local import LocalFileSystem

    fs = LocalFileSystem()
    hashes: dict[str, str] = {}
    with open_repo(root) as repo:
        odb = repo.cache.local
        for path, hash_name in items:
            _, _, obj = build(odb, str(path), fs, hash_name, dry_run=True, ignore=repo.dvcignore)
            hashes[str(path)] = obj.hash_info.value
    return hashes
