"""The data sets of a workspace: tracking them (``dvc add``), listing them, hashing and checking them out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlkit.engines.dvc.cache import cache_holds
from mlkit.engines.dvc.links import skip_unsupported_reflink
from mlkit.engines.dvc.progress import ProgressCallback, forward_progress
from mlkit.engines.dvc.remote import remote_holds
from mlkit.engines.dvc.repo import (
    DEFAULT_LOCK_TIMEOUT_S,
    locked,
    open_repo,
    transfer_stats,
    translate,
    working_directory,
)
from mlkit.errors import OperationError


def track(root: Path, paths: Sequence[Path]) -> list[str]:
    """``dvc add`` the given absolute paths; returns the `.dvc` files written (relative to root)."""
    return track_and_commit_stage(root, paths, None)


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
            hashes[str(path)] = str(obj.hash_info.value)
    return hashes


@dataclass(frozen=True)
class Output:
    """A data set a `.dvc` file tracks, as DVC's index has it."""

    path: str  # relative to the project root, posix
    dvc_file: str
    md5: str
    hash_name: str
    size: int | None
    nfiles: int | None


def add(
    root: Path,
    paths: Sequence[Path],
    *,
    progress: ProgressCallback | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S,
) -> list[str]:
    """``dvc add`` absolute ``paths`` under DVC's lock; returns the `.dvc` files written (relative).

    All or nothing: when any path fails, every `.dvc` file and `.gitignore` this call touched is put
    back as it was, so a failed add leaves nothing behind.
    """
    with open_repo(root) as repo, locked(repo, lock_timeout):
        skip_unsupported_reflink(repo)
        touched = [*(Path(f"{p}.dvc") for p in paths), *(Path(p).parent / ".gitignore" for p in paths)]
        snapshot = _snapshot(touched)
        try:
            with forward_progress(progress):
                stages = repo.add([str(p) for p in paths])
        except BaseException as exc:
            _restore(snapshot)
            if isinstance(exc, Exception):
                raise translate(exc, "adding data to DVC") from exc
            raise
    return [Path(stage.path).resolve().relative_to(root.resolve()).as_posix() for stage in stages]


def remove(
    root: Path, dvc_files: Sequence[Path], *, keep_outs: bool = False, lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S
) -> None:
    """``dvc remove`` absolute ``dvc_files``: each file and its outputs' `.gitignore` lines go (a `.gitignore`
    left empty is deleted), and the workspace copies too unless ``keep_outs``. The cache is not touched."""
    with open_repo(root) as repo, locked(repo, lock_timeout):
        for dvc_file in dvc_files:
            try:
                repo.remove(str(dvc_file), outs=not keep_outs)
            except Exception as exc:
                raise translate(exc, "removing data from DVC", root) from exc


def outputs(root: Path) -> list[Output]:
    """Every data set tracked by a `.dvc` file (pipeline outputs in dvc.yaml are not data sets)."""
    with open_repo(root) as repo:
        return _outputs(repo, root)


def describe(
    root: Path, *, remote: str | None = None, check_remote: bool = True
) -> list[tuple[Output, bool, bool | None]]:
    """Each data set with whether the cache and the remote hold it (None: no remote), on one ``Repo``."""
    with open_repo(root) as repo:
        found = _outputs(repo, root)
        items = [(o.md5, o.hash_name) for o in found]
        cached = cache_holds(repo, items)
        remote_has = remote_holds(repo, items, remote) if check_remote and items else None
    return [(o, cached[o.md5], None if remote_has is None else remote_has[o.md5]) for o in found]


def _outputs(repo: Any, root: Path) -> list[Output]:
    found = []
    for stage in repo.index.stages:
        if not stage.is_data_source or stage.path.endswith(("dvc.yaml", "dvc.lock")):
            continue
        dvc_file = Path(stage.path).resolve().relative_to(root.resolve()).as_posix()
        for out in stage.outs:
            if not out.hash_info or not out.hash_info.value:
                continue
            found.append(
                Output(
                    path=Path(out.fs_path).resolve().relative_to(root.resolve()).as_posix(),
                    dvc_file=dvc_file,
                    md5=out.hash_info.value,
                    hash_name=out.hash_info.name,
                    size=out.meta.size,
                    nfiles=out.meta.nfiles,
                )
            )
    return sorted(found, key=lambda o: o.path)


def checkout_workspace(
    root: Path, targets: Sequence[Path] = (), *, force: bool = False, lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S
) -> dict[str, Any]:
    """Make the workspace match the `.dvc` files, from the cache (no network)."""
    with open_repo(root) as repo, locked(repo, lock_timeout):
        skip_unsupported_reflink(repo)
        try:
            stats = repo.checkout(targets=[str(t) for t in targets] or None, force=force)
        except Exception as exc:
            raise translate(exc, "checking data out of the DVC cache", root) from exc
    return transfer_stats(root, stats)


def _snapshot(paths: Sequence[Path]) -> dict[Path, bytes | None]:
    return {p: (p.read_bytes() if p.is_file() else None) for p in dict.fromkeys(paths)}


def _restore(snapshot: dict[Path, bytes | None]) -> None:
    for path, content in snapshot.items():
        try:
            if content is None:
                path.unlink(missing_ok=True)
            elif not path.is_file() or path.read_bytes() != content:
                path.write_bytes(content)
        except OSError:
            pass
