"""The local DVC cache: what it holds, garbage collection, and lending it to a throwaway worktree."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlkit.engines.dvc.repo import DEFAULT_LOCK_TIMEOUT_S, locked, open_repo, translate


def in_cache(root: Path, items: Sequence[tuple[str, str]]) -> dict[str, bool]:
    """md5 -> whether the local cache holds it, for ``(md5, hash name)`` pairs (directories: all files)."""
    with open_repo(root) as repo:
        return cache_holds(repo, items)


def cache_holds(repo: Any, items: Sequence[tuple[str, str]]) -> dict[str, bool]:
    """`in_cache` on an open ``Repo``."""
    return {md5: complete(repo, cache_for(repo, name), None, md5, name) for md5, name in items}


def gc(root: Path, *, dry_run: bool, lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S) -> list[tuple[str, int]]:
    """Remove cache objects the workspace's data sets do not use; returns ``(object, bytes)`` removed.

    With ``dry_run`` nothing is removed and the same list says what would go. Other git revisions are
    not consulted (DVC's ``gc --workspace``): their data stays reachable through the remote.
    """
    with open_repo(root) as repo, locked(repo, lock_timeout):
        try:
            used = {hi.value for ids in repo.used_objs().values() for hi in ids}
            unused = []
            for odb in {id(o): o for o in (repo.cache.local, repo.cache.legacy)}.values():
                for oid in odb.all():
                    if oid not in used:
                        path = odb.oid_to_path(oid)
                        unused.append((oid, os.path.getsize(path) if os.path.isfile(path) else 0))
            if dry_run or not unused:
                return sorted(unused)
            repo.gc(workspace=True, force=True)
        except Exception as exc:
            raise translate(exc, "collecting garbage in the DVC cache") from exc
        left = {oid for odb in (repo.cache.local, repo.cache.legacy) for oid in odb.all()}
    return sorted(item for item in unused if item[0] not in left)


def complete(repo: Any, odb: Any, fallback: Any, md5: str, name: str) -> bool:
    """Whether ``odb`` holds ``md5``; for a directory, its listing and every file in it."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

    if not odb.exists(md5):
        return False
    if not md5.endswith(".dir"):
        return True
    tree = None
    for source in (fallback, odb):
        if source is None:
            continue
        try:
            tree = Tree.load(source, HashInfo(name, md5))
            break
        except (FileNotFoundError, ValueError):
            continue
    if tree is None:
        return False
    oids = {hash_info.value for _, _, hash_info in tree if hash_info}
    return len(set(odb.oids_exist(list(oids)))) == len(oids)


def cache_for(repo: Any, hash_name: str) -> Any:
    """The cache holding objects of ``hash_name`` (DVC 2's dos2unix hashes live in the legacy one)."""
    return repo.cache.legacy if hash_name == "md5-dos2unix" else repo.cache.local


def share_cache(worktree: Path, project_root: Path) -> None:
    """Make the DVC repo at ``worktree`` use ``project_root``'s cache (links from it, no copies).

    Written to the worktree's ``.dvc/config.local``, which git does not track.
    """
    with open_repo(project_root) as main:
        cache_dir = main.cache.local.path
        # DVC keeps objects under <cache dir>/files/md5; cache.dir names the folder above
        base = Path(cache_dir).parents[1]
        link_types = main.cache.local.cache_types
    with open_repo(worktree) as repo, repo.config.edit("local") as conf:
        conf["cache"]["dir"] = str(base)
        conf["cache"]["type"] = ",".join(link_types)
