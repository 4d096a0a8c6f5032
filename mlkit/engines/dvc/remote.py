"""DVC remotes: their configuration, push and pull, and reading single objects from them."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlkit import constants as C
from mlkit.engines.dvc.cache import cache_for, complete
from mlkit.engines.dvc.links import no_reflink_unless, reflink_works, skip_unsupported_reflink
from mlkit.engines.dvc.progress import ProgressCallback, forward_progress
from mlkit.engines.dvc.repo import DEFAULT_LOCK_TIMEOUT_S, ENV_REMOTE_NAME, locked, open_repo, transfer_stats, translate
from mlkit.errors import OperationError, UsageError, first_line


@dataclass(frozen=True)
class RemoteInfo:
    name: str
    url: str
    default: bool
    endpoint_url: str | None = None


def push(root: Path, *, remote: str | None = None, jobs: int | None = None,
         progress: ProgressCallback | None = None, lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S) -> int:
    """Upload the workspace's data sets to the remote; returns how many files were transferred."""
    from dvc.exceptions import UploadError

    with open_repo(root) as repo, locked(repo, lock_timeout):
        name, destination = _usable_remote(repo, remote)
        with no_reflink_unless(reflink_works(Path(repo.cache.local.path), destination)), \
                forward_progress(progress):
            try:
                found = repo.cloud.get_remote(name)
                if found.worktree or found.fs.version_aware:
                    return int(repo.push(remote=name, jobs=jobs) or 0)
                # Repo.push first writes every entry into DVC's sqlite data index (one commit per
                # folder level: seconds for 10,000 files); the object transfer below is the same
                # upload without that bookkeeping, which only version-aware remotes need.
                used = {hash_info for ids in repo.used_objs(remote=name, jobs=jobs).values()
                        for hash_info in ids}
                result = repo.cloud.push(used, jobs=jobs, remote=name)
                if result.failed:
                    raise UploadError(len(result.failed))
                return len(result.transferred)
            except UploadError as exc:
                raise OperationError(
                    f"{first_line(exc)} to the DVC remote {name!r}",
                    hint="check the remote's storage and run `mlkit data push` again") from exc
            except Exception as exc:
                raise translate(exc, f"pushing to the DVC remote {name!r}") from exc


def pull(root: Path, targets: Sequence[Path] = (), *, remote: str | None = None, jobs: int | None = None,
         force: bool = False, progress: ProgressCallback | None = None,
         lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S) -> dict[str, Any]:
    """Download data sets from the remote into the cache and link them into the workspace."""
    with open_repo(root) as repo, locked(repo, lock_timeout):
        skip_unsupported_reflink(repo)
        name, source = _usable_remote(repo, remote, write=False)
        with no_reflink_unless(reflink_works(source, Path(repo.cache.local.path))), \
                forward_progress(progress):
            try:
                found = repo.cloud.get_remote(name)
                if found.worktree or found.fs.version_aware:
                    stats = repo.pull(targets=[str(t) for t in targets] or None, remote=name, jobs=jobs,
                                      force=force)
                    return transfer_stats(root, stats)
                # as in push: the objects straight from the remote, without Repo.fetch's sqlite
                # data-index bookkeeping; listings of folders are fetched before their files
                used = {hash_info for ids in repo.used_objs(targets=[str(t) for t in targets] or None,
                                                            remote=name, jobs=jobs).values()
                        for hash_info in ids}
                fetched = repo.cloud.pull(used, jobs=jobs, remote=name)
                stats = repo.checkout(targets=[str(t) for t in targets] or None, force=force)
            except Exception as exc:
                raise translate(exc, f"pulling from the DVC remote {name!r}", root) from exc
    stats["stats"] = {**stats.get("stats", {}), "fetched": len(fetched.transferred)}
    return transfer_stats(root, stats)


def remote_holds(repo: Any, items: Sequence[tuple[str, str]], remote: str | None) -> dict[str, bool] | None:
    """md5 -> whether ``remote`` holds it (directories: all files); None when no remote is configured."""
    from dvc.config import NoRemoteError

    try:
        odbs = {name: repo.cloud.get_remote_odb(remote, "status", hash_name=name)
                for name in {n for _, n in items}}
    except NoRemoteError:
        return None
    except Exception as exc:
        raise translate(exc, "reading the DVC remote") from exc
    try:
        return {md5: complete(repo, odbs[name], cache_for(repo, name), md5, name) for md5, name in items}
    except Exception as exc:
        raise translate(exc, "reading the DVC remote") from exc


def remotes(root: Path) -> list[RemoteInfo]:
    """The remotes DVC's merged configuration knows, the default first."""
    with open_repo(root) as repo:
        default = repo.config["core"].get("remote")
        found = [RemoteInfo(name=name, url=str(conf.get("url", "")), default=name == default,
                            endpoint_url=conf.get("endpointurl"))
                 for name, conf in repo.config["remote"].items()]
    return sorted(found, key=lambda r: (not r.default, r.name))


def add_remote(root: Path, name: str, url: str, *, default: bool = False, endpoint_url: str | None = None,
               force: bool = False) -> Path:
    """Write a remote to the project's `.dvc/config` (the file git shares); returns that file."""
    from dvc.config import ConfigError as DvcConfigError

    with open_repo(root) as repo:
        if name in repo.config["remote"] and not force:
            raise UsageError(f"a DVC remote named {name!r} already exists",
                             hint="pass --force to replace it, or list them with `mlkit data remote list`")
        try:
            with repo.config.edit("repo") as conf:
                entry: dict[str, Any] = {"url": url}
                if endpoint_url:
                    entry["endpointurl"] = endpoint_url
                conf["remote"][name] = entry
                if default:
                    conf["core"]["remote"] = name
        except DvcConfigError as exc:
            raise UsageError(f"DVC rejected remote {name!r}: {first_line(exc)}",
                             hint="check the URL, e.g. /mnt/storage/dvc or s3://bucket/path") from exc
        return Path(repo.config.files["repo"])


def _usable_remote(repo: Any, remote: str | None, *, write: bool = True) -> tuple[str, Path | None]:
    """The remote's name and, for a local directory remote, its checked path."""
    from dvc.config import NoRemoteError

    try:
        found = repo.cloud.get_remote(remote)
    except NoRemoteError:
        if remote:
            raise UsageError(f"no DVC remote named {remote!r}",
                             hint="list them with `mlkit data remote list`") from None
        raise UsageError("no DVC remote configured",
                         hint="run `mlkit data remote add NAME URL --default`") from None
    except Exception as exc:
        raise translate(exc, "opening the DVC remote") from exc
    if found.fs.protocol not in ("local", "file"):
        return found.name, None
    path = Path(found.path)
    other = (f"or set {C.ENV_DATA_REMOTE} to another one" if found.name == ENV_REMOTE_NAME
             else f"or `mlkit data remote add {found.name} URL --default --force`")
    if not path.is_dir():
        raise UsageError(f"the DVC remote {found.name!r} points to {path}, which does not exist",
                         hint=f"create it (`mkdir -p {path}`) {other}")
    if write and not _writable(path):
        raise UsageError(f"the DVC remote {found.name!r} at {path} is not writable",
                         hint="fix its permissions or choose another remote with "
                              + (f"{C.ENV_DATA_REMOTE}" if found.name == ENV_REMOTE_NAME
                                 else "`mlkit data remote add`"))
    return found.name, path


def _writable(directory: Path) -> bool:
    # os.access is not enough: it says yes to root on read-only mounts
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".mlkit-probe-"):
            return True
    except OSError:
        return False


def fetch_raw(root: Path, md5: str, destination: Path, remote: str | None = None) -> bool:
    """Copy the object ``md5`` from the remote to ``destination`` as stored, without DVC's hash check.

    DVC deletes an object that fails its check; mlkit inspects it instead, so a corrupted copy in the
    remote is reported as such. Returns False when the remote does not hold the object.
    """
    with open_repo(root) as repo:
        odb = _remote_odb(repo, remote)
        path = odb.oid_to_path(md5)
        if not odb.fs.exists(path):
            return False
        odb.fs.get_file(path, str(destination))
    return True


def fetch(root: Path, paths: Sequence[Path], remote: str | None = None) -> None:
    """Bring the objects of the given tracked paths from the remote into the cache (checked by DVC)."""
    with open_repo(root) as repo:
        try:
            repo.fetch(targets=[str(Path(p).resolve()) for p in paths], remote=remote)
        except Exception as exc:
            raise OperationError(f"fetching data from the DVC remote failed: {first_line(exc)}",
                                 hint="check the remote with `mlkit data remote list`") from exc


def _remote_odb(repo: Any, remote: str | None) -> Any:
    try:
        return repo.cloud.get_remote_odb(remote)
    except Exception as exc:
        raise OperationError(f"no usable DVC remote: {first_line(exc)}",
                             hint="add one with `mlkit data remote add NAME URL --default`") from exc
