"""Every call mlkit makes into DVC's Python API lives in this module.

DVC's Python API (`dvc.repo.Repo`) is not a documented, stable interface, so the surface mlkit uses is
kept small and in one place: a DVC upgrade breaks here, and the tests of this module say where.
Rules followed throughout: a fresh ``Repo`` per operation (long-lived ones go stale), absolute paths
(DVC resolves relative ones against the process's working directory), and DVC's logger kept off stdout.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stdout, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlkit import constants as C
from mlkit.errors import MlkitError, OperationError, UsageError, first_line


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


# The remote MLKIT_DATA_REMOTE names, under this name, is the default for the process (CI jobs get the
# remote's URL from a secret this way); DVC's files are left as they are.
ENV_REMOTE_NAME = "mlkit_data_remote"  # DVC lowercases remote names


def environment_remote(environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """DVC settings that make ``$MLKIT_DATA_REMOTE`` the default remote, or None when it is not set.

    A local path is made absolute against the working directory, as the shell that set it would read it.
    """
    url = (os.environ if environ is None else environ).get(C.ENV_DATA_REMOTE, "").strip()
    if not url:
        return None
    if "://" not in url:
        url = str(Path(url).expanduser().resolve())
    return {"core": {"remote": ENV_REMOTE_NAME}, "remote": {ENV_REMOTE_NAME: {"url": url}}}


@contextmanager
def open_repo(root: Path, config: dict[str, Any] | None = None) -> Iterator[Any]:
    """A fresh DVC ``Repo`` for one operation, closed afterwards (``config`` overrides settings, and so
    does ``$MLKIT_DATA_REMOTE``)."""
    from dvc.repo import Repo

    quiet_dvc_logger()
    from_environment = environment_remote()
    if from_environment is not None:
        config = {**from_environment, **(config or {})}
    repo = Repo(str(root), config=config)
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


# --- data sets: add, push, pull, checkout, status, remotes, gc -----------------------------------
#
# DVC internals these functions depend on (a DVC upgrade is checked against this list):
#   Repo.add/push/pull/checkout/gc/used_objs, Repo.index.stages, Repo.cloud.get_remote/get_remote_odb,
#   Repo.config.edit, dvc.repo.lock_repo and dvc.lock.LockError, HashFileDB.cache_types/all/oids_exist,
#   dvc_data Tree.load, dvc_objects.fs.system.reflink, and the Tqdm classes of dvc.progress,
#   dvc.fs.callbacks and dvc_data.callbacks (progress is forwarded from them).

DEFAULT_LOCK_TIMEOUT_S = 60.0
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


@dataclass(frozen=True)
class Output:
    """A data set a `.dvc` file tracks, as DVC's index has it."""

    path: str  # relative to the project root, posix
    dvc_file: str
    md5: str
    hash_name: str
    size: int | None
    nfiles: int | None


@dataclass(frozen=True)
class RemoteInfo:
    name: str
    url: str
    default: bool
    endpoint_url: str | None = None


def add(root: Path, paths: Sequence[Path], *, progress: ProgressCallback | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S) -> list[str]:
    """``dvc add`` absolute ``paths`` under DVC's lock; returns the `.dvc` files written (relative).

    All or nothing: when any path fails, every `.dvc` file and `.gitignore` this call touched is put
    back as it was, so a failed add leaves nothing behind.
    """
    with open_repo(root) as repo, _locked(repo, lock_timeout):
        _skip_unsupported_reflink(repo)
        touched = [*(Path(f"{p}.dvc") for p in paths), *(Path(p).parent / ".gitignore" for p in paths)]
        snapshot = _snapshot(touched)
        try:
            with _forward_progress(progress):
                stages = repo.add([str(p) for p in paths])
        except BaseException as exc:
            _restore(snapshot)
            if isinstance(exc, Exception):
                raise _translate(exc, "adding data to DVC") from exc
            raise
    return [Path(stage.path).resolve().relative_to(root.resolve()).as_posix() for stage in stages]


def outputs(root: Path) -> list[Output]:
    """Every data set tracked by a `.dvc` file (pipeline outputs in dvc.yaml are not data sets)."""
    with open_repo(root) as repo:
        return _outputs(repo, root)


def describe(root: Path, *, remote: str | None = None,
             check_remote: bool = True) -> list[tuple[Output, bool, bool | None]]:
    """Each data set with whether the cache and the remote hold it (None: no remote), on one ``Repo``."""
    with open_repo(root) as repo:
        found = _outputs(repo, root)
        items = [(o.md5, o.hash_name) for o in found]
        cached = _in_cache(repo, items)
        remote_has = _in_remote(repo, items, remote) if check_remote and items else None
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
            found.append(Output(
                path=Path(out.fs_path).resolve().relative_to(root.resolve()).as_posix(),
                dvc_file=dvc_file, md5=out.hash_info.value, hash_name=out.hash_info.name,
                size=out.meta.size, nfiles=out.meta.nfiles))
    return sorted(found, key=lambda o: o.path)


def push(root: Path, *, remote: str | None = None, jobs: int | None = None,
         progress: ProgressCallback | None = None, lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S) -> int:
    """Upload the workspace's data sets to the remote; returns how many files were transferred."""
    from dvc.exceptions import UploadError

    with open_repo(root) as repo, _locked(repo, lock_timeout):
        name, destination = _usable_remote(repo, remote)
        with _no_reflink_unless(_reflink_works(Path(repo.cache.local.path), destination)), \
                _forward_progress(progress):
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
                raise _translate(exc, f"pushing to the DVC remote {name!r}") from exc


def pull(root: Path, targets: Sequence[Path] = (), *, remote: str | None = None, jobs: int | None = None,
         force: bool = False, progress: ProgressCallback | None = None,
         lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S) -> dict[str, Any]:
    """Download data sets from the remote into the cache and link them into the workspace."""
    with open_repo(root) as repo, _locked(repo, lock_timeout):
        _skip_unsupported_reflink(repo)
        name, source = _usable_remote(repo, remote, write=False)
        with _no_reflink_unless(_reflink_works(source, Path(repo.cache.local.path))), \
                _forward_progress(progress):
            try:
                found = repo.cloud.get_remote(name)
                if found.worktree or found.fs.version_aware:
                    stats = repo.pull(targets=[str(t) for t in targets] or None, remote=name, jobs=jobs,
                                      force=force)
                    return _stats(root, stats)
                # as in push: the objects straight from the remote, without Repo.fetch's sqlite
                # data-index bookkeeping; listings of folders are fetched before their files
                used = {hash_info for ids in repo.used_objs(targets=[str(t) for t in targets] or None,
                                                            remote=name, jobs=jobs).values()
                        for hash_info in ids}
                fetched = repo.cloud.pull(used, jobs=jobs, remote=name)
                stats = repo.checkout(targets=[str(t) for t in targets] or None, force=force)
            except Exception as exc:
                raise _translate(exc, f"pulling from the DVC remote {name!r}", root) from exc
    stats["stats"] = {**stats.get("stats", {}), "fetched": len(fetched.transferred)}
    return _stats(root, stats)


def checkout_workspace(root: Path, targets: Sequence[Path] = (), *, force: bool = False,
                       lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S) -> dict[str, Any]:
    """Make the workspace match the `.dvc` files, from the cache (no network)."""
    with open_repo(root) as repo, _locked(repo, lock_timeout):
        _skip_unsupported_reflink(repo)
        try:
            stats = repo.checkout(targets=[str(t) for t in targets] or None, force=force)
        except Exception as exc:
            raise _translate(exc, "checking data out of the DVC cache", root) from exc
    return _stats(root, stats)


def in_cache(root: Path, items: Sequence[tuple[str, str]]) -> dict[str, bool]:
    """md5 -> whether the local cache holds it, for ``(md5, hash name)`` pairs (directories: all files)."""
    with open_repo(root) as repo:
        return _in_cache(repo, items)


def _in_cache(repo: Any, items: Sequence[tuple[str, str]]) -> dict[str, bool]:
    return {md5: _complete(repo, _cache_for(repo, name), None, md5, name) for md5, name in items}


def _in_remote(repo: Any, items: Sequence[tuple[str, str]], remote: str | None) -> dict[str, bool] | None:
    from dvc.config import NoRemoteError

    try:
        odbs = {name: repo.cloud.get_remote_odb(remote, "status", hash_name=name)
                for name in {n for _, n in items}}
    except NoRemoteError:
        return None
    except Exception as exc:
        raise _translate(exc, "reading the DVC remote") from exc
    try:
        return {md5: _complete(repo, odbs[name], _cache_for(repo, name), md5, name) for md5, name in items}
    except Exception as exc:
        raise _translate(exc, "reading the DVC remote") from exc


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


def gc(root: Path, *, dry_run: bool, lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S) -> list[tuple[str, int]]:
    """Remove cache objects the workspace's data sets do not use; returns ``(object, bytes)`` removed.

    With ``dry_run`` nothing is removed and the same list says what would go. Other git revisions are
    not consulted (DVC's ``gc --workspace``): their data stays reachable through the remote.
    """
    with open_repo(root) as repo, _locked(repo, lock_timeout):
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
            raise _translate(exc, "collecting garbage in the DVC cache") from exc
        left = {oid for odb in (repo.cache.local, repo.cache.legacy) for oid in odb.all()}
    return sorted(item for item in unused if item[0] not in left)


def _complete(repo: Any, odb: Any, fallback: Any, md5: str, name: str) -> bool:
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


def _cache_for(repo: Any, hash_name: str) -> Any:
    return repo.cache.legacy if hash_name == "md5-dos2unix" else repo.cache.local


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
        raise _translate(exc, "opening the DVC remote") from exc
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


@contextmanager
def _locked(repo: Any, timeout: float) -> Iterator[None]:
    """Hold DVC's repository lock for the whole operation, waiting at most ``timeout`` seconds for it."""
    from dvc.lock import LockError
    from dvc.repo import lock_repo

    deadline = time.monotonic() + timeout
    while True:
        holder = lock_repo(repo)
        try:
            holder.__enter__()  # DVC itself retries for a few seconds before raising LockError
            break
        except LockError:
            if time.monotonic() >= deadline:
                raise OperationError(
                    f"another process holds DVC's lock on this project (waited {timeout:g}s)",
                    hint="let the other `mlkit data` or `dvc` command finish, then run this again; if none "
                    "is running, delete .dvc/tmp/lock") from None
            time.sleep(0.2)
    try:
        yield
    except BaseException:
        if not holder.__exit__(*sys.exc_info()):
            raise
    else:
        holder.__exit__(None, None, None)


def _skip_unsupported_reflink(repo: Any) -> None:
    """Drop ``reflink`` from the cache's link types when this filesystem cannot do it.

    DVC tries each link type per file, and a failed reflink costs creating and deleting the file:
    for 10,000 small files that doubles the time of an add. With ``hardlink`` first DVC also moves
    data into the cache with one link per file instead of a copy.
    """
    for odb in {id(o): o for o in (repo.cache.local, repo.cache.legacy)}.values():
        types = list(odb.cache_types or [])
        if types and types[0] == "reflink" and len(types) > 1 and not _reflink_works(Path(odb.path)):
            odb.cache_types = types[1:]


def _reflink_works(source_dir: Path | None, target_dir: Path | None = None) -> bool:
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
def _no_reflink_unless(works: bool) -> Iterator[None]:
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


@contextmanager
def _forward_progress(report: ProgressCallback | None) -> Iterator[None]:
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
                report(ProgressEvent(key=id(self), description=self._mlkit_desc,
                                     completed=float(getattr(self, "n", 0)),
                                     total=float(total) if total else None, unit=self._mlkit_unit,
                                     finished=finished))

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


def _stats(root: Path, stats: Any) -> dict[str, Any]:
    stats = dict(stats or {})

    def rel(items: Any) -> list[str]:
        out = []
        for item in items or []:
            path = Path(str(item))
            path = path if path.is_absolute() else root / path
            try:
                out.append(path.resolve().relative_to(root.resolve()).as_posix().rstrip("/"))
            except ValueError:
                out.append(str(item))
        return sorted(out)

    counts = stats.get("stats") or {}
    return {"fetched": int(counts.get("fetched", 0) or 0), "added": rel(stats.get("added")),
            "modified": rel(stats.get("modified")), "deleted": rel(stats.get("deleted"))}


def _relative_to(root: Path, path: str) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path


def _translate(exc: BaseException, doing: str, root: Path | None = None) -> Exception:
    """A DVC exception as an mlkit error with a hint; mlkit's own errors pass through."""
    from dvc.exceptions import CheckoutError, ConfirmRemoveError, DvcException, OutputDuplicationError
    from dvc.output import OutputAlreadyTrackedError

    if isinstance(exc, MlkitError):
        return exc
    if isinstance(exc, OutputAlreadyTrackedError):
        return UsageError(f"{first_line(exc)}; DVC cannot track what git tracks",
                          hint="run `git rm -r --cached PATH` first, then `mlkit data add PATH`")
    if isinstance(exc, OutputDuplicationError):
        return UsageError(first_line(exc), hint="a pipeline stage produces it: run the pipeline instead")
    if isinstance(exc, ConfirmRemoveError) or str(exc).startswith("Can't remove the following unsaved"):
        paths = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
        return UsageError(f"{', '.join(paths) or 'data'} has changes DVC has not recorded; checkout would "
                          "overwrite them", hint="keep them with `mlkit data add PATH`, or discard them with "
                          "--force")
    if isinstance(exc, CheckoutError):
        # DVC names the targets relative to the working directory
        missing = ", ".join(sorted(_relative_to(root, os.path.abspath(str(t))) for t in exc.target_infos)
                            ) if root else "some data"
        if doing.startswith("pulling"):
            return OperationError(f"{doing} failed: {missing} is in neither the cache nor the remote",
                                  hint="push it from a machine that has it (`mlkit data push`), "
                                  "then pull again")
        return OperationError(f"{doing} failed: {missing} is not in the cache",
                              hint="run `mlkit data pull` to fetch it from the remote")
    if isinstance(exc, DvcException):
        return OperationError(f"{doing} failed: {first_line(exc)}",
                              hint="run again with --debug for DVC's traceback")
    return OperationError(f"{doing} failed: {first_line(exc, with_type=True)}",
                          hint="run again with --debug for the traceback")


# --- reproduction: a throwaway worktree that borrows the project's cache -------------------------


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

