"""Every call mlkit makes into DVC's Python API lives in this package.

DVC's Python API (`dvc.repo.Repo`) is not a documented, stable interface, so the surface mlkit uses is
kept small and in one place: a DVC upgrade breaks here, and the tests of this package say where.
Rules followed throughout: a fresh ``Repo`` per operation (long-lived ones go stale), absolute paths
(DVC resolves relative ones against the process's working directory), and DVC's logger kept off stdout.

``repo``       opening a ``Repo``, ``dvc init``, the lock, settings from the environment, DVC's errors
``workspace``  tracking data sets (add, remove), listing, hashing and checking out the workspace copies
``remote``     remotes: configuration, push, pull, single objects
``cache``      what the local cache holds, garbage collection, sharing it with a worktree
``links``      copy-on-write clones, skipped where the filesystem cannot do them
``progress``   DVC's progress bars forwarded to the caller

DVC internals these modules depend on (a DVC upgrade is checked against this list):
  Repo.add/remove/push/pull/checkout/gc/used_objs, Repo.index.stages, Repo.cloud.get_remote/get_remote_odb,
  Repo.config.edit, dvc.repo.lock_repo and dvc.lock.LockError, HashFileDB.cache_types/all/oids_exist,
  dvc_data Tree.load and hashfile.build, dvc_objects.fs.system.reflink, and the Tqdm classes of
  dvc.progress, dvc.fs.callbacks and dvc_data.callbacks (progress is forwarded from them).

Everything here takes the folder of a DVC repository, not a loaded project: `mlkit init` runs DVC before
the project exists, and reproduction runs it in a throwaway worktree.
"""

from __future__ import annotations

from mlkit.engines.dvc.cache import gc, in_cache, share_cache
from mlkit.engines.dvc.progress import ProgressCallback, ProgressEvent
from mlkit.engines.dvc.remote import (
    ObjectLocation,
    RemoteInfo,
    add_remote,
    cache_object,
    fetch,
    fetch_raw,
    pull,
    push,
    remote_object,
    remotes,
    split_credentials,
)
from mlkit.engines.dvc.repo import (
    DEFAULT_LOCK_TIMEOUT_S,
    ENV_REMOTE_NAME,
    environment_remote,
    init_repo,
    open_repo,
    quiet_dvc_logger,
    working_directory,
)
from mlkit.engines.dvc.workspace import (
    Output,
    add,
    checkout_workspace,
    commit_stage,
    describe,
    outputs,
    remove,
    track,
    track_and_commit_stage,
    workspace_hashes,
)

__all__ = [
    "DEFAULT_LOCK_TIMEOUT_S",
    "ENV_REMOTE_NAME",
    "ObjectLocation",
    "Output",
    "ProgressCallback",
    "ProgressEvent",
    "RemoteInfo",
    "add",
    "add_remote",
    "cache_object",
    "checkout_workspace",
    "commit_stage",
    "describe",
    "environment_remote",
    "fetch",
    "fetch_raw",
    "gc",
    "in_cache",
    "init_repo",
    "open_repo",
    "outputs",
    "pull",
    "push",
    "quiet_dvc_logger",
    "remote_object",
    "remotes",
    "remove",
    "share_cache",
    "split_credentials",
    "track",
    "track_and_commit_stage",
    "working_directory",
    "workspace_hashes",
]
