"""Versioned data sets: what DVC recorded for each tracked input, and the operations on them.

Every call into DVC goes through :mod:`mlkit.engines.dvc`; this module holds the mlkit-side logic (which
paths are tracked, whether the workspace copy matches what was recorded, the errors users see).

The operations behind `mlkit data` take the :class:`~mlkit.project.Project`. Reading what DVC recorded
(:func:`input_md5s`, :func:`recorded`) takes a folder instead: it also runs on a throwaway worktree of an
older commit, whose settings are never loaded.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlkit import constants as C
from mlkit.engines import dvc, git
from mlkit.engines.dvc import ProgressCallback
from mlkit.errors import UsageError, first_line
from mlkit.project import Project
from mlkit.training import datasets
from mlkit.uris import redact

DVC_SUFFIX = ".dvc"


@dataclass(frozen=True)
class Recorded:
    """One output as a `.dvc` file records it."""

    path: str  # relative to the project root, posix
    dvc_file: str  # relative to the project root, posix
    md5: str  # for directories DVC's ``<md5>.dir``
    hash_name: str  # "md5" (DVC 3) or "md5-dos2unix" (files written by DVC 2)
    size: int | None
    nfiles: int | None

    @property
    def is_dir(self) -> bool:
        return self.md5.endswith(".dir")


def input_md5s(root: Path, paths: Sequence[str]) -> dict[str, str]:
    """Relative path -> md5 DVC recorded for each DVC-tracked input (directories keep DVC's `.dir` md5).

    ``paths`` are relative to ``root`` (as in mlkit.yaml) or absolute.

    The workspace copy of each input must be present and unchanged since it was added. Two cheap checks
    come before any hashing: mlkit's own record of inode, mtime and size per data set (written when it
    last verified the data; no DVC import at all when it matches), then DVC's state database (hashes
    keyed the same way). Only data neither has seen in its current form is hashed, once.
    """
    root = Path(root).resolve()
    records = [recorded(root, path, base=root) for path in paths]
    for record in records:
        if not (root / record.path).exists():
            raise UsageError(
                f"{record.path} is tracked by DVC but missing from the workspace",
                hint="run `mlkit data pull` to fetch it from the remote",
            )
    changed = [
        r
        for r in records
        if r.size is not None
        and not r.is_dir
        and (root / r.path).is_file()
        and os.stat(root / r.path).st_size != r.size
    ]
    known = _StatRecord(root)
    unknown = [r for r in records if not known.matches(r)]
    if unknown and not changed:
        actual = dvc.workspace_hashes(root, [(root / r.path, r.hash_name) for r in unknown])
        changed = [r for r in unknown if actual.get(str(root / r.path)) != r.md5]
        if not changed:
            known.remember(unknown)
    if changed:
        first = changed[0].path
        raise UsageError(
            f"{first} was modified since it was added to DVC",
            hint=f"run `mlkit data add {first}` to record the new version",
        )
    return {record.path: record.md5 for record in records}


def recorded(root: Path, path: str, base: Path | None = None) -> Recorded:
    """What the `.dvc` file next to ``path`` records for it; UsageError when DVC does not track it."""
    relative = relative_path(root, path, base)
    dvc_file = root / (relative + DVC_SUFFIX)
    if not dvc_file.is_file():
        raise UsageError(
            f"{relative} is not tracked by DVC (no {relative + DVC_SUFFIX})",
            hint=f"run `mlkit data add {relative}` to track it",
        )
    for out in _outs(dvc_file):
        if (dvc_file.parent / out.get("path", "")).resolve() == (root / relative).resolve():
            return _record(relative, dvc_file.relative_to(root).as_posix(), out)
    raise UsageError(
        f"{relative + DVC_SUFFIX} does not record an output for {relative}",
        hint=f"run `mlkit data add {relative}` to track it",
    )


def relative_path(root: Path, path: str | os.PathLike[str], base: Path | None = None) -> str:
    """``path`` (absolute, or relative to ``base``, default the working directory) relative to ``root``."""
    candidate = Path(path)
    absolute = candidate if candidate.is_absolute() else (base or Path.cwd()) / candidate
    absolute = Path(os.path.normpath(absolute))
    try:
        relative = absolute.relative_to(root)
    except ValueError:
        # a symlinked working directory: compare resolved parents, keep the name as given
        try:
            relative = absolute.parent.resolve().relative_to(root.resolve()) / absolute.name
        except ValueError:
            raise UsageError(
                f"{path} is outside the project ({root})",
                hint="copy the data into the project, e.g. under data/, then add it",
            ) from None
    text = relative.as_posix()
    if text in ("", "."):
        raise UsageError(
            "the project root itself cannot be a data set",
            hint="name a file or folder inside the project, e.g. `mlkit data add data/raw`",
        )
    return text


def _outs(dvc_file: Path) -> list[dict[str, Any]]:
    import yaml

    try:
        content = yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(
            f"{dvc_file.name} cannot be read: {first_line(exc)}",
            hint="restore it with `git checkout -- FILE` or add the data again",
        ) from None
    outs = content.get("outs") if isinstance(content, dict) else None
    return [out for out in outs or [] if isinstance(out, dict)]


def _record(relative: str, dvc_file: str, out: dict[str, Any]) -> Recorded:
    md5 = out.get("md5")
    if not md5:
        raise UsageError(
            f"{dvc_file} records no md5 for {relative}", hint=f"run `mlkit data add {relative}` to record it"
        )
    # DVC 3 writes `hash: md5`; files without it were written by DVC 2, which hashed text as dos2unix
    hash_name = "md5" if out.get("hash") == "md5" else "md5-dos2unix"
    return Recorded(
        path=relative,
        dvc_file=dvc_file,
        md5=str(md5),
        hash_name=hash_name,
        size=out.get("size"),
        nfiles=out.get("nfiles"),
    )


# --- operations on data sets ---------------------------------------------------------------------

_REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_GIT_RETRY_S = 30.0


@dataclass
class DataSet:
    """One tracked data set: what its `.dvc` file records, and where its bytes are."""

    path: str
    dvc_file: str
    md5: str
    size: int | None
    nfiles: int | None
    in_cache: bool | None = None
    in_remote: bool | None = None  # None: no remote configured

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AddResult:
    added: list[DataSet]
    staged: list[str]  # paths staged in git
    commit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"added": [d.to_dict() for d in self.added], "staged": self.staged, "commit": self.commit}


@dataclass
class StatusEntry:
    path: str
    state: str  # "unchanged", "modified" or "missing"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TransferResult:
    remote: str | None
    transferred: int = 0
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GcResult:
    dry_run: bool
    objects: list[str]
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lock_timeout(environ: Mapping[str, str] | None = None) -> float:
    """Seconds to wait for DVC's lock: ``MLKIT_DATA_LOCK_TIMEOUT`` or the default."""
    raw = (os.environ if environ is None else environ).get(C.ENV_DATA_LOCK_TIMEOUT, "")
    if not raw.strip():
        return dvc.DEFAULT_LOCK_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise UsageError(
            f"{C.ENV_DATA_LOCK_TIMEOUT}={raw!r} must be a number of seconds >= 0",
            hint=f"unset it or set e.g. {C.ENV_DATA_LOCK_TIMEOUT}=60",
        )
    return value


def add(
    project: Project,
    paths: Sequence[str],
    *,
    commit: bool = False,
    message: str | None = None,
    base: Path | None = None,
    progress: ProgressCallback | None = None,
) -> AddResult:
    """Track ``paths`` with DVC, stage their `.dvc` files and `.gitignore` changes in git, maybe commit.

    ``paths`` are relative to ``base`` (default: the working directory) or absolute. Every path is
    checked before DVC runs, and a failed add leaves no `.dvc` file or `.gitignore` line behind. A data
    set whose `.dvc` file, workspace copy (same inode, mtime and size as when mlkit last verified it) and
    cache objects all still match is not handed to DVC at all.
    """
    root = _root(project)
    if not paths:
        raise UsageError("no path given", hint="for example `mlkit data add data/raw/customers.parquet`")
    if message and not commit:
        raise UsageError("-m/--message needs --commit", hint="add --commit to commit the change")
    relatives = list(dict.fromkeys(_addable(root, path, base) for path in paths))
    known = _StatRecord(root)
    unchanged = [r for r in relatives if known.unchanged_and_cached(r)]
    to_add = [r for r in relatives if r not in unchanged]
    written = [r + DVC_SUFFIX for r in unchanged]
    if to_add:
        written += dvc.add(root, [root / r for r in to_add], progress=progress, lock_timeout=lock_timeout())
        known.remember([recorded(root, r, base=root) for r in to_add])
    gitignores = [g for g in (_gitignore_for(root, r) for r in relatives) if g is not None]
    staged = sorted(p for p in {*written, *gitignores} if (root / p).exists())
    if _is_git_repo(root):
        git.run(root, "add", "--", *staged)
    commit_sha = None
    if commit:
        text = message or "Track data with DVC: " + ", ".join(relatives)
        git.run(root, "commit", "-q", "-m", text, "--", *staged)
        commit_sha = git.run(root, "rev-parse", "HEAD").strip()
    records = [recorded(root, r, base=root) for r in relatives]
    return AddResult(added=[_data_set(r) for r in records], staged=staged, commit=commit_sha)


def data_sets(project: Project, *, remote: str | None = None, check_remote: bool = True) -> list[DataSet]:
    """Every tracked data set with size, md5, file count, and whether the cache and remote hold it."""
    return [
        DataSet(
            path=o.path, dvc_file=o.dvc_file, md5=o.md5, size=o.size, nfiles=o.nfiles, in_cache=cached, in_remote=pushed
        )
        for o, cached, pushed in dvc.describe(_root(project), remote=remote, check_remote=check_remote)
    ]


def status(project: Project) -> list[StatusEntry]:
    """Each tracked data set compared with its workspace copy: unchanged, modified or missing."""
    root = _root(project)
    outs = dvc.outputs(root)
    present = [o for o in outs if (root / o.path).exists()]
    actual = dvc.workspace_hashes(root, [(root / o.path, o.hash_name) for o in present]) if present else {}
    entries = []
    for out in outs:
        if not (root / out.path).exists():
            state = "missing"
        else:
            state = "unchanged" if actual.get(str(root / out.path)) == out.md5 else "modified"
        entries.append(StatusEntry(path=out.path, state=state))
    return entries


def push(
    project: Project, *, remote: str | None = None, jobs: int | None = None, progress: ProgressCallback | None = None
) -> TransferResult:
    """Upload every tracked data set's objects the remote does not have yet."""
    _check_jobs(jobs)
    root = _root(project)
    count = dvc.push(root, remote=remote, jobs=jobs, progress=progress, lock_timeout=lock_timeout())
    return TransferResult(remote=remote or _default_remote(root), transferred=count)


def pull(
    project: Project,
    paths: Sequence[str] = (),
    *,
    remote: str | None = None,
    jobs: int | None = None,
    force: bool = False,
    base: Path | None = None,
    progress: ProgressCallback | None = None,
) -> TransferResult:
    """Download tracked data sets (all, or ``paths``) and put them in the workspace."""
    _check_jobs(jobs)
    root = _root(project)
    targets = [root / recorded(root, p, base).dvc_file for p in paths]
    stats = dvc.pull(
        root, targets, remote=remote, jobs=jobs, force=force, progress=progress, lock_timeout=lock_timeout()
    )
    return TransferResult(
        remote=remote or _default_remote(root),
        transferred=stats["fetched"],
        added=stats["added"],
        modified=stats["modified"],
        deleted=stats["deleted"],
    )


def checkout(
    project: Project, paths: Sequence[str] = (), *, force: bool = False, base: Path | None = None
) -> TransferResult:
    """Make the workspace copies match the `.dvc` files, from the local cache."""
    root = _root(project)
    targets = [root / recorded(root, p, base).dvc_file for p in paths]
    stats = dvc.checkout_workspace(root, targets, force=force, lock_timeout=lock_timeout())
    return TransferResult(remote=None, added=stats["added"], modified=stats["modified"], deleted=stats["deleted"])


def remotes(project: Project) -> list[dict[str, Any]]:
    """The configured remotes (credentials in URLs redacted), the default first."""
    return _remotes(_root(project))


def add_remote(
    project: Project,
    name: str,
    url: str,
    *,
    default: bool = False,
    endpoint_url: str | None = None,
    force: bool = False,
    base: Path | None = None,
) -> dict[str, Any]:
    """Add (or with ``force`` replace) a remote in `.dvc/config` and stage that file in git.

    Credentials in the URL (``s3://KEY:SECRET@bucket``, ``https://user:password@host``, S3 keys as query
    parameters) are written to `.dvc/config.local` instead, which DVC keeps out of git; credentials DVC
    has no option for are refused.

    A local directory URL is stored as an absolute path; ``endpoint_url`` is for S3-compatible
    storage (MinIO, Ceph, ...) and is passed to DVC as ``endpointurl``.
    """
    root = _root(project)
    if not _REMOTE_NAME.match(name):
        raise UsageError(
            f"remote name {name!r} must start with a letter or digit and contain only letters, "
            "digits, '.', '-' and '_'",
            hint="for example `mlkit data remote add storage URL`",
        )
    if not url.strip():
        raise UsageError("remote URL is empty", hint="give a directory or s3://bucket/path")
    if "://" not in url:
        url = str(((base or Path.cwd()) / Path(url).expanduser()).resolve())
    elif url.startswith("file://"):
        url = str(Path(url[len("file://") :]).resolve())
    if endpoint_url is not None:
        if not url.startswith("s3://"):
            raise UsageError(
                "--endpoint-url applies only to S3-compatible remotes (s3://bucket/path)",
                hint=f"drop --endpoint-url, or use an s3:// URL for {name!r}",
            )
        if not re.match(r"^https?://[^\s/]+", endpoint_url):
            raise UsageError(
                f"--endpoint-url {endpoint_url!r} must be an http(s):// URL",
                hint="for example --endpoint-url http://127.0.0.1:9000",
            )
        if redact(endpoint_url) != endpoint_url:
            raise UsageError(
                f"the endpoint URL of remote {name!r} carries credentials ({redact(endpoint_url)}), "
                "which .dvc/config would share through git; nothing was written",
                hint="give the endpoint without them; S3 keys go in the remote's URL "
                "(s3://KEY:SECRET@bucket/path, kept in .dvc/config.local) or AWS_* variables",
            )
    # credentials never go into .dvc/config, which git shares: DVC's config.local holds them
    url, credentials = dvc.split_credentials(name, url)
    config_file, local_file = dvc.add_remote(
        root, name, url, default=default, endpoint_url=endpoint_url, force=force, credentials=credentials
    )
    if _is_git_repo(root):
        git.run(root, "add", "--", config_file.relative_to(root).as_posix())
    return {
        "name": name,
        "url": url,
        "default": default,
        "endpoint_url": endpoint_url,
        "config": config_file.relative_to(root).as_posix(),
        "credentials": local_file.relative_to(root).as_posix() if local_file else None,
    }


def gc(project: Project, *, dry_run: bool = False, yes: bool = False) -> GcResult:
    """Remove cache objects the workspace does not use; ``yes`` is required unless ``dry_run``."""
    if not dry_run and not yes:
        raise UsageError(
            "gc deletes cached data and never asks; pass --yes to go ahead",
            hint="see what would go first: `mlkit data gc --dry-run`",
        )
    removed = dvc.gc(_root(project), dry_run=dry_run, lock_timeout=lock_timeout())
    return GcResult(dry_run=dry_run, objects=[oid for oid, _ in removed], bytes=sum(s for _, s in removed))


def _root(project: Project) -> Path:
    return Path(project.root).resolve()


def _remotes(root: Path) -> list[dict[str, Any]]:
    return [
        {
            "name": r.name,
            "url": redact(r.url),
            "default": r.default,
            "endpoint_url": redact(r.endpoint_url) if r.endpoint_url else None,
        }
        for r in dvc.remotes(root)
    ]


def _addable(root: Path, path: str, base: Path | None) -> str:
    relative = relative_path(root, path, base)
    target = root / relative
    if not target.exists():
        raise UsageError(f"{relative} does not exist", hint="check the path; `mlkit data ls` lists tracked data")
    escape = _link_out(root, relative)
    if escape is not None:
        # DVC would follow the link: hard-link the outside file into the cache, make it read-only, push it
        link, destination = escape
        raise UsageError(
            f"{link} is a symbolic link to {destination}, outside the project; nothing was added",
            hint="copy the data into the project instead of linking to it, then run `mlkit data add` again",
        )
    first = relative.split("/", 1)[0]
    if first in (".git", ".dvc", C.STATE_DIR) or target.name.endswith(DVC_SUFFIX):
        raise UsageError(
            f"{relative} belongs to git, DVC or mlkit and cannot be a data set",
            hint="add data files or folders, e.g. `mlkit data add data/raw`",
        )
    for parent in Path(relative).parents:
        if parent != Path(".") and (root / f"{parent.as_posix()}{DVC_SUFFIX}").is_file():
            raise UsageError(
                f"{relative} is inside the data set {parent.as_posix()}",
                hint=f"add the whole folder again: `mlkit data add {parent.as_posix()}`",
            )
    if _is_git_repo(root) and git.run(root, "ls-files", "--", relative).strip():
        raise UsageError(
            f"{relative} is already tracked by git; DVC cannot track what git tracks",
            hint=f"run `git rm -r --cached {relative}` first, then `mlkit data add {relative}`",
        )
    return relative


def _link_out(root: Path, relative: str) -> tuple[str, Path] | None:
    """The first symbolic link on the way to ``relative`` (or inside it, for a folder) that leads out of the
    project: (the link relative to ``root``, where it leads); None when every link stays inside."""
    real_root = root.resolve()

    def outside(path: Path) -> Path | None:
        destination = path.resolve()
        return None if destination == real_root or real_root in destination.parents else destination

    current = root
    for part in Path(relative).parts:
        current = current / part
        if current.is_symlink() and (destination := outside(current)) is not None:
            return current.relative_to(root).as_posix(), destination
    if current.is_dir():
        for folder, dirs, files in os.walk(current):
            for name in sorted(dirs + files):
                entry = Path(folder) / name
                if entry.is_symlink() and (destination := outside(entry)) is not None:
                    return entry.relative_to(root).as_posix(), destination
    return None


def _data_set(record: Recorded) -> DataSet:
    return DataSet(
        path=record.path,
        dvc_file=record.dvc_file,
        md5=record.md5,
        size=record.size,
        nfiles=record.nfiles,
        in_cache=True,
    )


def _gitignore_for(root: Path, relative: str) -> str | None:
    parent = (root / relative).parent
    gitignore = parent / ".gitignore"
    return gitignore.relative_to(root).as_posix() if gitignore.is_file() else None


def _check_jobs(jobs: int | None) -> None:
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs {jobs} must be at least 1", hint="for example --jobs 4")


def _default_remote(root: Path) -> str | None:
    return next((r["name"] for r in _remotes(root) if r["default"]), None)


def _is_git_repo(root: Path) -> bool:
    return (root / ".git").exists()


class _StatRecord:
    """mlkit's own record of data sets it verified: md5 and an inode/mtime/size token of the workspace copy.

    Kept in `.mlkit/` (git-ignored). It only ever lets mlkit skip work: a token that does not match, a
    missing or unreadable record, an md5 the `.dvc` file no longer has, all fall back to DVC. Same-size
    rewrites that keep inode and mtime go unnoticed here exactly as in DVC's own state database.
    """

    FILE = "data-stat.json"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / C.STATE_DIR / self.FILE
        try:
            import json

            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            self.entries: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            self.entries = {}

    def matches(self, record: Recorded) -> bool:
        entry = self.entries.get(record.path)
        return (
            isinstance(entry, dict)
            and entry.get("md5") == record.md5
            and entry.get("token") == _stat_token(self.root / record.path)
        )

    def unchanged_and_cached(self, relative: str) -> bool:
        if not (self.root / (relative + DVC_SUFFIX)).is_file():
            return False
        try:
            record = recorded(self.root, relative, base=self.root)
        except UsageError:
            return False
        return record.hash_name == "md5" and self.matches(record) and _cached(self.root, record.md5)

    def remember(self, records: Sequence[Recorded]) -> None:
        import json
        import tempfile

        for record in records:
            token = _stat_token(self.root / record.path)
            if token is not None:
                self.entries[record.path] = {"md5": record.md5, "token": token}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=self.path.parent, prefix=".data-stat-", suffix=".tmp", delete=False, encoding="utf-8"
            ) as handle:
                json.dump(self.entries, handle, sort_keys=True)
            os.replace(handle.name, self.path)
        except OSError:
            pass  # only an optimisation


def _stat_token(path: Path) -> str | None:
    """inode, mtime and size of a file; for a folder, of every file in it (names included)."""
    import hashlib

    try:
        info = os.stat(path)
        if not path.is_dir():
            return f"{info.st_ino}:{info.st_mtime_ns}:{info.st_size}"
        digest = hashlib.blake2b(digest_size=16)
        count = 0
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(folder, name)
                info = os.stat(full)
                digest.update(
                    f"{os.path.relpath(full, path)}\0{info.st_ino}:{info.st_mtime_ns}:{info.st_size}\n".encode()
                )
                count += 1
        return f"dir:{count}:{digest.hexdigest()}"
    except OSError:
        return None


def _cached(root: Path, md5: str) -> bool:
    """Whether DVC's default cache folder holds ``md5`` (for a folder, its listing and every file)."""
    import json

    cache = root / ".dvc" / "cache" / "files" / "md5"
    listing = cache / md5[:2] / md5[2:]
    if not listing.is_file():
        return False
    if not md5.endswith(".dir"):
        return True
    try:
        entries = json.loads(listing.read_text(encoding="utf-8"))
        return all((cache / e["md5"][:2] / e["md5"][2:]).is_file() for e in entries)
    except (OSError, ValueError, KeyError, TypeError):
        return False


# --- a data file of the user's own: checks, the task it implies -----------------------------------

TASKS = ("classification", "regression")
TABULAR_SUFFIXES = (".csv", ".parquet", ".pq")
# fewer rows leave a test split too small to say anything (20 % of 50 is 10 rows)
MIN_ROWS = 50
# a numeric target with at most this many distinct whole numbers is read as class labels
MAX_CLASSES = 20
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_FILE_NAME_LENGTH = 100


@dataclass
class DataFileCheck:
    """What :func:`check_data_file` found in a CSV or Parquet file: its shape and the task its target implies."""

    path: str  # absolute
    name: str  # the file name kept in the project
    rows: int
    columns: list[str]
    target: str
    task: str
    reason: str  # why this task, in one phrase
    inferred: bool  # False when the task was given
    classes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_file_name(given: str | os.PathLike[str]) -> str:
    """The file name of ``given`` if it can be kept in a project as is (and in mlkit.yaml, dvc.yaml, shell
    commands): letters, digits, '.', '-' and '_', a CSV or Parquet suffix; else UsageError."""
    name = Path(given).name
    if not name.endswith(TABULAR_SUFFIXES):
        raise UsageError(
            f"{given}: not a CSV or Parquet file (the name must end in .csv, .parquet or .pq)",
            hint="save the data as CSV (with a header row) or Parquet",
        )
    if not _FILE_NAME.match(name) or len(name) > MAX_FILE_NAME_LENGTH:
        stem, suffix = name.rsplit(".", 1)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[: MAX_FILE_NAME_LENGTH - 10] or "data"
        raise UsageError(
            f"{given}: the file name {name!r} cannot be kept in the project: at most {MAX_FILE_NAME_LENGTH} "
            "characters, letters, digits, '.', '-' and '_', starting with a letter or digit",
            hint=f"rename the file, e.g. to {safe}.{suffix}",
        )
    return name


def check_data_file(
    path: str | os.PathLike[str],
    target: str,
    task: str | None = None,
    *,
    drop: Sequence[str] = (),
    target_option: str | None = "--target",
    task_option: str = "--task",
) -> DataFileCheck:
    """Check that ``path`` is a readable CSV or Parquet file mlkit can train on with ``target``, and
    decide the task: ``task`` when given (refused when the target contradicts it), else inferred.

    ``target_option`` and ``task_option`` name where the target and task came from, for messages (None:
    the target comes from mlkit.yaml's ``data.target``).
    """
    given = str(path)
    file = Path(path).expanduser()
    if not file.exists():
        raise UsageError(f"{given}: no such file", hint="give the path to your CSV or Parquet file")
    if file.is_dir():
        raise UsageError(f"{given}: is a folder, not a CSV or Parquet file", hint="give one file")
    name = check_file_name(given)
    try:
        with file.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise UsageError(
            f"{given}: cannot be read ({exc.strerror or first_line(exc)})", hint="check the file's permissions"
        ) from None
    if task is not None and task not in TASKS:
        raise UsageError(
            f"{task_option} {task}: must be one of " + ", ".join(TASKS), hint="or leave it out to infer it"
        )
    columns = datasets.read_columns(file)
    if columns is not None:
        _check_target_column(columns, target, drop, name, target_option)
    frame = datasets.read_table(file)
    columns = [str(c) for c in frame.columns]
    _check_target_column(columns, target, drop, name, target_option)
    rows = len(frame)
    if rows < MIN_ROWS:
        raise UsageError(
            f"{given}: {rows} row{'s' if rows != 1 else ''}; mlkit needs at least {MIN_ROWS} to train and test a model",
            hint="use a larger data set",
        )
    if len(set(columns) - {target, *drop}) == 0:
        raise UsageError(f"{given}: no column besides the target {target!r} to learn from", hint="check the file")
    values = frame[target]
    missing = int(values.isna().sum())
    if missing:
        raise UsageError(
            f"{given}: target {target!r} is empty in {missing} of {rows} rows; every row needs a target",
            hint="drop those rows from the file (or fill them in), then run the command again",
        )
    inferred_task, reason = infer_task(values, target)
    if task is None:
        task, inferred = inferred_task, True
    else:
        _check_task_fits(values, target, task, task_option)
        reason, inferred = f"given by {task_option}", False
    classes = None
    if task == "classification":
        counts = values.value_counts()
        classes = len(counts)
        if classes < 2:
            raise UsageError(
                f"{given}: target {target!r} has a single value {counts.index[0]!r}; classification needs two or more",
                hint="check the target column",
            )
        rare = counts[counts < 2]
        if len(rare):
            raise UsageError(
                f"{given}: target {target!r}: class {rare.index[0]!r} has a single row; every class needs at "
                "least 2 (one to train on, one to test on)",
                hint="drop or merge the rare classes in the file",
            )
    return DataFileCheck(
        path=str(file.resolve()),
        name=name,
        rows=rows,
        columns=columns,
        target=target,
        task=task,
        reason=reason,
        inferred=inferred,
        classes=classes,
    )


def infer_task(values: Any, target: str) -> tuple[str, str]:
    """(task, why) from a target column without missing values: strings and booleans are classes; whole
    numbers with at most :data:`MAX_CLASSES` distinct values are classes; any other number is a quantity."""
    from pandas.api import types

    distinct = int(values.nunique())
    if types.is_bool_dtype(values.dtype):
        return "classification", f"target {target!r} has {distinct} boolean values"
    if not types.is_numeric_dtype(values.dtype):
        return "classification", f"target {target!r} has {distinct} distinct string values"
    if _whole_numbers(values):
        if distinct <= MAX_CLASSES:
            return "classification", (
                f"target {target!r} is numeric with {distinct} distinct integer values "
                f"(at most {MAX_CLASSES} integers are read as classes)"
            )
        return "regression", (
            f"target {target!r} is numeric with {distinct} distinct integer values "
            f"(more than {MAX_CLASSES} are read as a quantity)"
        )
    return "regression", f"target {target!r} is numeric with {distinct} distinct values"


def _whole_numbers(values: Any) -> bool:
    import numpy as np

    numbers = np.asarray(values, dtype=np.float64)
    return bool(np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)))


def _check_task_fits(values: Any, target: str, task: str, task_option: str) -> None:
    """Refuse a task the target plainly contradicts: regression on text, classification on a quantity."""
    from pandas.api import types

    distinct = int(values.nunique())
    numeric = types.is_numeric_dtype(values.dtype) and not types.is_bool_dtype(values.dtype)
    if task == "regression" and not numeric:
        raise UsageError(
            f"{task_option} regression: target {target!r} is not numeric ({distinct} distinct values, e.g. "
            + ", ".join(repr(v) for v in sorted(map(str, values.unique()))[:3])
            + ")",
            hint=_other_task_hint("classification", task_option),
        )
    if task == "classification" and numeric and distinct > MAX_CLASSES and not _whole_numbers(values):
        raise UsageError(
            f"{task_option} classification: target {target!r} is numeric with {distinct} distinct non-integer "
            "values; each would be a class of its own",
            hint=_other_task_hint("regression", task_option),
        )


def _other_task_hint(task: str, task_option: str) -> str:
    if task_option.startswith("--"):
        return f"use {task_option} {task}, or leave {task_option} out to infer it"
    return f"pick another --target, or set model.task: {task} in {C.CONFIG_FILE} first"


def _check_target_column(
    columns: list[str], target: str, drop: Sequence[str], source: str, target_option: str | None
) -> None:
    """The training check for a wrong target (every column listed, closest first), worded for the option
    the target came from when it is not mlkit.yaml's ``data.target``."""
    try:
        datasets.check_columns(columns, target=target, drop=list(drop), source=source)
    except UsageError as exc:
        settings_prefix = f"{C.CONFIG_FILE}: data.target: "
        if not exc.message.startswith(settings_prefix):
            raise
        if target_option is None:
            raise UsageError(
                exc.message, hint=f"give the file's target with --target COLUMN, or fix data.target in {C.CONFIG_FILE}"
            ) from None
        raise UsageError(
            f"{target_option}: " + exc.message.removeprefix(settings_prefix),
            hint=f"give one of the columns above with {target_option}",
        ) from None


# --- replacing the training data, removing a data set ----------------------------------------------


@dataclass
class ReplaceResult:
    old: str  # the data.train mlkit.yaml named before
    new: str  # the data.train it names now
    md5: str
    rows: int
    target: str
    removed: list[str]  # what is no longer tracked: the old data set and its .dvc file, when the name changed
    staged: list[str]  # paths staged in git
    commit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RemoveResult:
    path: str
    dvc_file: str
    kept_file: bool  # the workspace copy was left in place (no longer ignored by git)
    staged: list[str]
    commit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def replace(
    project: Project,
    new_file: str | os.PathLike[str],
    *,
    target: str | None = None,
    commit: bool = False,
    message: str | None = None,
    base: Path | None = None,
    progress: ProgressCallback | None = None,
) -> ReplaceResult:
    """Train on ``new_file`` from now on, in place of the data set ``data.train`` names.

    The file is checked like `mlkit init --data` checks it (against ``model.task``, ``data.drop`` and the
    target: ``target``, else ``data.target``). A file from outside the project is copied next to the old
    data set, keeping its name. DVC tracks it; when the name differs, the old `.dvc` file, its `.gitignore`
    line and its workspace copy go (its data stays in the DVC cache and remote, reachable from older
    commits). ``data.train`` (and ``data.target``) in mlkit.yaml and the pipeline's dependency in dvc.yaml
    are rewritten in place, comments kept. Everything is staged in git and, with ``commit``, committed.
    On failure everything is put back as it was.
    """
    root = _root(project)
    config = project.config
    if message and not commit:
        raise UsageError("-m/--message needs --commit", hint="add --commit to commit the change")
    old = config.data.train
    old_record = recorded(root, old, base=root)
    source = Path(new_file).expanduser()
    if not source.is_absolute():
        source = (base or Path.cwd()) / source
    check = check_data_file(
        source,
        target or config.data.target,
        config.model.task,
        drop=config.data.drop,
        target_option="--target" if target else None,
        task_option=f"{C.CONFIG_FILE}: model.task",
    )
    inside = _inside(root, source)
    new = inside if inside is not None else (Path(old).parent / check.name).as_posix()
    if inside is None and new != old and (root / new).exists():
        raise UsageError(
            f"{new} already exists in the project; nothing was changed",
            hint=f"to train on it, run `mlkit data replace {new}`; or rename your file",
        )
    if inside is not None and new != old:
        _addable(root, new, root)
    # the old workspace copy goes unless the new file is that very copy, edited in place
    letting_go = new != old or inside is None
    if letting_go:
        _check_recoverable(root, old_record, "replacing")
    config_file, pipeline = root / C.CONFIG_FILE, root / "dvc.yaml"
    settings: dict[tuple[str, ...], str] = {("data", "train"): new}
    if target:
        settings[("data", "target")] = check.target
    new_config = _edit_yaml(config_file, settings)
    new_pipeline = _replace_dependency(pipeline, old, new) if pipeline.is_file() else None

    folder = (root / new).parent
    touched = [
        config_file,
        pipeline,
        root / old_record.dvc_file,
        root / (new + DVC_SUFFIX),
        (root / old).parent / ".gitignore",
        folder / ".gitignore",
    ]
    snapshot = {p: (p.read_bytes() if p.is_file() else None) for p in dict.fromkeys(touched)}
    # DVC stages what it writes (core.autostage): a rollback unstages it again, not what the user had staged
    unstage = _not_staged(root, [p.relative_to(root).as_posix() for p in snapshot])
    moves: list[tuple[Path, Path]] = []  # (from, to): undone in reverse
    created: list[Path] = []
    try:
        if letting_go and (root / old).exists():
            aside = _aside(root / old)
            os.replace(root / old, aside)
            moves.append((root / old, aside))
        if inside is None:
            folder.mkdir(parents=True, exist_ok=True)
            incoming = _aside(root / new, ".incoming")
            created.append(incoming)
            shutil.copyfile(check.path, incoming)
            os.replace(incoming, root / new)
            created.append(root / new)
        written = dvc.add(root, [root / new], progress=progress, lock_timeout=lock_timeout())
        removed: list[str] = []
        if new != old:
            dvc.remove(root, [root / old_record.dvc_file], lock_timeout=lock_timeout())
            removed = [old, old_record.dvc_file]
        config_file.write_text(new_config, encoding="utf-8")
        if new_pipeline is not None:
            pipeline.write_text(new_pipeline, encoding="utf-8")
    except BaseException:
        for path in reversed(created):
            path.unlink(missing_ok=True)
        for origin, moved in reversed(moves):
            os.replace(moved, origin)
        for path, content in snapshot.items():
            if content is None:
                path.unlink(missing_ok=True)
            elif not path.is_file() or path.read_bytes() != content:
                path.write_bytes(content)
        if unstage:
            git.run(root, "reset", "-q", "--", *unstage)
        raise
    for _, moved in moves:
        moved.unlink(missing_ok=True)  # the old data is in the DVC cache (checked above)
    record = recorded(root, new, base=root)
    _StatRecord(root).remember([record])
    candidates = [*written, *removed[1:], C.CONFIG_FILE, *(["dvc.yaml"] if new_pipeline is not None else [])]
    candidates += [g.relative_to(root).as_posix() for g in {(root / old).parent / ".gitignore", folder / ".gitignore"}]
    staged = _stage(root, candidates)
    commit_sha = None
    if commit and staged:
        text = message or (f"Train on {new} instead of {old}" if new != old else f"New version of {new}")
        git.run(root, "commit", "-q", "-m", text, "--", *staged)
        commit_sha = git.run(root, "rev-parse", "HEAD").strip()
    return ReplaceResult(
        old=old,
        new=new,
        md5=record.md5,
        rows=check.rows,
        target=check.target,
        removed=removed,
        staged=staged,
        commit=commit_sha,
    )


def remove(
    project: Project,
    path: str,
    *,
    keep_file: bool = False,
    commit: bool = False,
    message: str | None = None,
    base: Path | None = None,
) -> RemoveResult:
    """Stop tracking the data set at ``path``: its `.dvc` file and `.gitignore` line go, and its workspace
    copy too unless ``keep_file``. Its data stays in the DVC cache and remote, reachable from older commits.
    The data sets mlkit.yaml and dvc.yaml name are refused: replace them, or edit those files first."""
    root = _root(project)
    if message and not commit:
        raise UsageError("-m/--message needs --commit", hint="add --commit to commit the change")
    record = recorded(root, path, base)
    relative = record.path
    config = project.config
    if relative == config.data.train:
        raise UsageError(
            f"{relative} is the training data (data.train in {C.CONFIG_FILE}); nothing was removed",
            hint="to train on another file, run `mlkit data replace NEW_FILE`",
        )
    if relative == config.data.test:
        raise UsageError(
            f"{relative} is the test data (data.test in {C.CONFIG_FILE}); nothing was removed",
            hint=f"remove data.test from {C.CONFIG_FILE} first",
        )
    stage = _dependent_stage(root, relative)
    if stage is not None:
        raise UsageError(
            f"{relative} is a dependency of stage {stage!r} in dvc.yaml; nothing was removed",
            hint="remove it from that stage's deps in dvc.yaml first",
        )
    if not keep_file:
        _check_recoverable(root, record, "removing")
    gitignore = (root / relative).parent / ".gitignore"
    dvc.remove(root, [root / record.dvc_file], keep_outs=keep_file, lock_timeout=lock_timeout())
    staged = _stage(root, [record.dvc_file, gitignore.relative_to(root).as_posix()])
    commit_sha = None
    if commit and staged:
        git.run(root, "commit", "-q", "-m", message or f"Stop tracking {relative}", "--", *staged)
        commit_sha = git.run(root, "rev-parse", "HEAD").strip()
    return RemoveResult(path=relative, dvc_file=record.dvc_file, kept_file=keep_file, staged=staged, commit=commit_sha)


def _inside(root: Path, source: Path) -> str | None:
    """``source`` relative to the project root (posix) when it is inside the project, else None."""
    try:
        return relative_path(root, source, root)
    except UsageError:
        return None


def _aside(path: Path, suffix: str = ".replaced") -> Path:
    """A free name next to ``path`` (same folder, so moves are renames), hidden by its leading dot."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{suffix}")


def _check_recoverable(root: Path, record: Recorded, doing: str) -> None:
    """Refuse to let go of a workspace copy the DVC cache could not give back: modified since it was added,
    or its data missing from the cache. A missing workspace copy has nothing to lose."""
    path = root / record.path
    if not path.exists():
        return
    if not _StatRecord(root).matches(record):
        actual = dvc.workspace_hashes(root, [(path, record.hash_name)]).get(str(path))
        if actual != record.md5:
            raise UsageError(
                f"{record.path} was modified since it was added to DVC; {doing} it would lose those changes",
                hint=f"record them first with `mlkit data add {record.path}`, "
                f"or put the file back with `mlkit data checkout {record.path} --force`",
            )
    if not dvc.in_cache(root, [(record.md5, record.hash_name)]).get(record.md5):
        raise UsageError(
            f"the DVC cache does not hold {record.path}; {doing} it would lose its only copy",
            hint=f"record it first with `mlkit data add {record.path}`",
        )


def _dependent_stage(root: Path, relative: str) -> str | None:
    """The first dvc.yaml stage that lists ``relative`` among its deps."""
    import yaml

    try:
        pipeline = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    stages = pipeline.get("stages") if isinstance(pipeline, dict) else None
    for name, stage in (stages or {}).items():
        deps = stage.get("deps") if isinstance(stage, dict) else None
        if any(isinstance(d, str) and os.path.normpath(d) == os.path.normpath(relative) for d in deps or []):
            return str(name)
    return None


def _not_staged(root: Path, paths: Sequence[str]) -> list[str]:
    """Those of ``paths`` with nothing staged in git right now (none outside a git repository)."""
    if not _is_git_repo(root):
        return []
    staged = set(git.run(root, "diff", "--cached", "--name-only", "--", *paths).split())
    return [p for p in paths if p not in staged]


def _stage(root: Path, candidates: Sequence[str]) -> list[str]:
    """Stage ``candidates`` (added, changed or deleted) in git; returns those git saw change."""
    if not _is_git_repo(root):
        return []
    paths = sorted({p for p in candidates if (root / p).exists() or git.run(root, "ls-files", "--", p).strip()})
    if paths:
        git.run(root, "add", "-A", "--", *paths)
    changed = git.run(root, "diff", "--cached", "--name-only", "--", *paths).split() if paths else []
    return sorted(changed)


def _yaml_scalar(value: str) -> str:
    """``value`` as one YAML flow scalar, quoted only when it must be (as the project template writes it)."""
    import yaml

    def dump(style: str | None) -> str:
        text = yaml.safe_dump(value, allow_unicode=True, default_flow_style=True, width=2**31, default_style=style)
        return text.removesuffix("\n...\n").removesuffix("\n")

    text = dump(None)
    return dump('"') if text.startswith("'") else text


def _edit_yaml(path: Path, settings: Mapping[tuple[str, ...], str]) -> str:
    """The text of ``path`` with each scalar at a key path set to a new value; everything else, comments
    and layout included, stays byte for byte (only the value's own characters are rewritten)."""
    import yaml

    from mlkit import yamlio

    text = yamlio.read_text(path)
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    spans: list[tuple[int, int, str]] = []
    for keys, value in settings.items():
        node = root
        for key in keys:
            found = None
            if isinstance(node, yaml.MappingNode):
                found = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)
            if found is None:
                raise UsageError(
                    f"{path.name}: no {'.'.join(keys)} to update", hint=f"add it to {path.name}, then run again"
                )
            node = found
        if not isinstance(node, yaml.ScalarNode):
            raise UsageError(f"{path.name}: {'.'.join(keys)} is not a single value", hint=f"fix {path.name}")
        spans.append((node.start_mark.index, node.end_mark.index, _yaml_scalar(value)))
    return _splice(text, spans)


def _replace_dependency(path: Path, old: str, new: str) -> str | None:
    """The text of dvc.yaml with ``old`` replaced by ``new`` in every stage's deps; None when no stage lists it."""
    import yaml

    from mlkit import yamlio

    text = yamlio.read_text(path)
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    spans = []
    stages = _child(root, "stages")
    for _, stage in stages.value if isinstance(stages, yaml.MappingNode) else []:
        deps = _child(stage, "deps")
        for item in deps.value if isinstance(deps, yaml.SequenceNode) else []:
            if isinstance(item, yaml.ScalarNode) and os.path.normpath(item.value) == os.path.normpath(old):
                spans.append((item.start_mark.index, item.end_mark.index, _yaml_scalar(new)))
    return _splice(text, spans) if spans else None


def _child(node: Any, key: str) -> Any:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)


def _splice(text: str, spans: Sequence[tuple[int, int, str]]) -> str:
    for start, end, replacement in sorted(spans, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text
