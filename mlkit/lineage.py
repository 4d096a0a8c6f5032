"""Lineage: what made a run, recorded as `mlkit.*` tags on the run and on its model version.

A run's lineage answers "which code, which data, which params, which environment" with no other lookup,
and holds everything `mlkit reproduce` needs to retrain in a clean git worktree at the recorded commit:
the commit (plus the uncommitted diff, logged as an artifact, when the tree was dirty), the resolved
params, the seed, the split, the DVC md5 of every input, and a fingerprint of the model's predictions on
the test split to compare against.

Readers (registry, promotion, reproduce) use the ``TAG_*`` constants and :meth:`RunLineage.from_tags`,
never literal strings.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlkit import __version__, tags
from mlkit import constants as C
from mlkit.engines import git
from mlkit.errors import UsageError
from mlkit.uris import redact_text

# Files `mlkit train` itself rewrites: changing them does not make the code that trains dirty.
_OWN_OUTPUTS = (C.METRICS_FILE, "dvc.lock")
# Files that usually hold credentials: never in the recorded diff, even when tracked; listed by name only.
SECRET_PATTERNS = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "id_rsa*",
    ".netrc",
    "*.p12",
    "*.pfx",
    "credentials",
    "credentials.*",
    ".git-credentials",
)
# A larger diff is not logged (only its sha256 and the list of files): the store is not a place for data.
MAX_DIFF_BYTES = 10 * 1024 * 1024
# Untracked files listed in lineage/untracked.json, at most.
MAX_LISTED_FILES = 1000


@dataclass(frozen=True)
class Backend:
    """Where a run's model was fitted, what chose that, and for Dask the cluster's shape at the start.

    ``source`` names what set the backend: ``default``, ``mlkit.yaml``, the ``MLKIT_DASK_SCHEDULER``
    variable, ``--set`` (an override), or ``mlkit reproduce`` (the recorded backend, replayed).
    ``scheduler`` is ``host:port`` only. ``data_read`` maps each input to where the workers read it.
    """

    name: str = "local"
    source: str = "default"
    scheduler: str = ""
    workers: int | None = None
    threads_per_worker: str = ""
    memory_per_worker: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    data_read: dict[str, str] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        out = {tags.BACKEND: self.name, tags.BACKEND_SOURCE: self.source}
        if self.name == "dask":
            out[tags.DASK_SCHEDULER] = self.scheduler
            out[tags.DASK_WORKERS] = "" if self.workers is None else str(self.workers)
            out[tags.DASK_THREADS] = self.threads_per_worker
            out[tags.DASK_MEMORY] = "" if self.memory_per_worker is None else str(self.memory_per_worker)
            out[tags.DASK_VERSIONS] = json.dumps(self.versions, sort_keys=True)
            if self.data_read:
                out[tags.DASK_DATA_READ] = json.dumps(self.data_read, sort_keys=True)
        return out

    @classmethod
    def from_tags(cls, values: Mapping[str, str], params: Mapping[str, str] | None = None) -> Backend:
        """The recorded backend; a run from before it was recorded falls back on its ``training.backend``
        parameter (then the cluster's shape is unknown)."""
        name = values.get(tags.BACKEND) or (params or {}).get("training.backend") or "local"
        workers = values.get(tags.DASK_WORKERS, "")
        memory = values.get(tags.DASK_MEMORY, "")
        return cls(
            name=name,
            source=values.get(tags.BACKEND_SOURCE, "" if tags.BACKEND in values else "not recorded"),
            scheduler=values.get(tags.DASK_SCHEDULER, ""),
            workers=int(workers) if workers.isdigit() else None,
            threads_per_worker=values.get(tags.DASK_THREADS, ""),
            memory_per_worker=int(memory) if memory.isdigit() else None,
            versions=json.loads(values.get(tags.DASK_VERSIONS) or "{}"),
            data_read=json.loads(values.get(tags.DASK_DATA_READ) or "{}"),
        )

    def describe(self) -> str:
        """``local``, or ``dask with 2 workers x 1 thread`` (the shape, as far as it is known)."""
        if self.name != "dask":
            return self.name
        if self.workers is None:
            return "dask (cluster shape not recorded)"
        plural = "" if self.workers == 1 else "s"
        threads = f" x {self.threads_per_worker} thread{'' if self.threads_per_worker == '1' else 's'}"
        return f"dask with {self.workers} worker{plural}{threads if self.threads_per_worker else ''}"

    def differences(self, now: Backend) -> list[str]:
        """What differs between this (recorded) backend and ``now`` in ways that can change the model:
        the backend, the number of workers (one block of rows each), threads, dask's versions."""
        if self.name != now.name:
            return [f"backend {self.describe()} then, {now.describe()} now"]
        if self.name != "dask":
            return []
        out = []
        if self.workers is not None and self.workers != now.workers:
            out.append(f"Dask workers: {self.workers} then, {now.workers} now")
        if self.threads_per_worker and self.threads_per_worker != now.threads_per_worker:
            out.append(f"threads per Dask worker: {self.threads_per_worker} then, {now.threads_per_worker} now")
        for package in sorted(set(self.versions) | set(now.versions)):
            then, current = self.versions.get(package), now.versions.get(package)
            if then and then != current:
                out.append(f"{package} {then} then, {current or 'absent'} now (on the cluster)")
        return out


@dataclass(frozen=True)
class RunLineage:
    """Everything that made a run. ``diff`` and ``package_lock`` are logged as artifacts, not tags."""

    git_commit: str | None
    git_branch: str | None
    git_dirty: bool
    data_md5s: dict[str, str]
    params: dict[str, Any]
    seed: int
    split: dict[str, Any]
    python_version: str
    package_lock_sha256: str
    mlkit_version: str
    command: str
    diff: str = field(default="", repr=False)
    package_lock: str = field(default="", repr=False)
    # what the diff leaves out: untracked files (path, size, sha256), secret files (by name), an omitted diff
    untracked: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    diff_omitted: str = ""
    backend: Backend = field(default_factory=Backend)

    @property
    def diff_bytes(self) -> bytes:
        """The uncommitted diff exactly as logged: its sha256 is what `mlkit reproduce` checks."""
        return self.diff.encode("utf-8", "surrogateescape")

    def artifacts(self) -> dict[str, bytes]:
        """Run-relative artifact path -> content: the package lock and, when dirty, the diff."""
        out = {tags.LOCK_ARTIFACT: self.package_lock.encode()}
        if self.git_dirty and not self.diff_omitted:
            out[tags.DIFF_ARTIFACT] = self.diff_bytes
        if self.untracked:
            out[tags.UNTRACKED_ARTIFACT] = (json.dumps(self.untracked, indent=2, sort_keys=True) + "\n").encode()
        return out

    def tags(self) -> dict[str, str]:
        """The lineage as MLflow tags (string values), for the run and its model version."""
        out = {
            tags.GIT_COMMIT: self.git_commit or "",
            tags.GIT_BRANCH: self.git_branch or "",
            tags.GIT_DIRTY: "true" if self.git_dirty else "false",
            tags.PARAMS: json.dumps(self.params, sort_keys=True, default=str),
            tags.SEED: str(self.seed),
            tags.SPLIT: json.dumps(self.split, sort_keys=True),
            tags.PYTHON: self.python_version,
            tags.PACKAGE_LOCK: self.package_lock_sha256,
            tags.PACKAGE_LOCK_ARTIFACT: tags.LOCK_ARTIFACT,
            tags.MLKIT_VERSION: self.mlkit_version,
            tags.COMMAND: self.command,
        }
        if self.git_dirty and self.diff_omitted:
            out[tags.DIFF_OMITTED] = self.diff_omitted
        elif self.git_dirty:
            out[tags.GIT_DIFF] = tags.DIFF_ARTIFACT
            out[tags.DIFF_SHA256] = hashlib.sha256(self.diff_bytes).hexdigest()
        if self.untracked:
            out[tags.UNTRACKED] = tags.UNTRACKED_ARTIFACT
        for path, md5 in sorted(self.data_md5s.items()):
            out[tags.DATA_MD5_PREFIX + path] = md5
        out.update(self.backend.tags())
        return out

    @classmethod
    def from_tags(cls, values: Mapping[str, str]) -> RunLineage:
        """Rebuild the lineage from a run's or model version's tags (artifacts are not fetched)."""
        return cls(
            git_commit=values.get(tags.GIT_COMMIT) or None,
            git_branch=values.get(tags.GIT_BRANCH) or None,
            git_dirty=values.get(tags.GIT_DIRTY) == "true",
            data_md5s={
                k[len(tags.DATA_MD5_PREFIX) :]: v for k, v in values.items() if k.startswith(tags.DATA_MD5_PREFIX)
            },
            params=json.loads(values.get(tags.PARAMS) or "{}"),
            seed=int(values.get(tags.SEED) or 0),
            split=json.loads(values.get(tags.SPLIT) or "{}"),
            python_version=values.get(tags.PYTHON, ""),
            package_lock_sha256=values.get(tags.PACKAGE_LOCK, ""),
            mlkit_version=values.get(tags.MLKIT_VERSION, ""),
            command=values.get(tags.COMMAND, ""),
            diff_omitted=values.get(tags.DIFF_OMITTED, ""),
            backend=Backend.from_tags(values),
        )


def collect_lineage(
    root: Path,
    *,
    inputs: Sequence[str],
    params: Mapping[str, Any],
    seed: int,
    split: Mapping[str, Any],
    command: Sequence[str] | None = None,
    backend: Backend | None = None,
) -> RunLineage:
    """Record the lineage of a run about to train in the project at ``root``.

    ``inputs`` are data paths relative to ``root``; their md5s come from DVC's records and the workspace
    copies must match them (a missing file raises :class:`UsageError` saying to pull it). ``backend``:
    where the model will be fitted (default: in process).
    """
    from mlkit.data import input_md5s

    root = Path(root).resolve()
    state = read_git_state(root)
    lock = package_lock()
    return RunLineage(
        git_commit=state.commit,
        git_branch=state.branch,
        git_dirty=state.dirty,
        data_md5s=dict(input_md5s(root, list(inputs))),
        params=dict(params),
        seed=int(seed),
        split=dict(split),
        python_version=platform.python_version(),
        package_lock_sha256=hashlib.sha256(lock.encode()).hexdigest(),
        mlkit_version=__version__,
        command=command_line(command),
        diff=state.diff,
        package_lock=lock,
        untracked=state.untracked,
        diff_omitted=state.diff_omitted,
        backend=backend or Backend(),
    )


def scheduler_host_port(address: str) -> str:
    """``host:port`` of a Dask scheduler address: no scheme, and never a user or password."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(address if "://" in address else f"tcp://{address}")
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "(unparseable address)"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as the user typed it: `mlkit train --set ...` rather than the script's full path, with
    the credentials of any URI in it redacted."""
    args = list(sys.argv if argv is None else argv)
    if args and Path(args[0]).name in ("mlkit", "__main__.py"):
        args[0] = "mlkit"
    # recorded in tags on the run and the model version: no password may go with it
    return shlex.join(redact_text(arg) for arg in args)


def git_state(root: Path) -> tuple[str | None, str | None, bool, str]:
    """(commit, branch, dirty, diff) of the git work tree at ``root``; see :func:`read_git_state`."""
    state = read_git_state(root)
    return state.commit, state.branch, state.dirty, state.diff


@dataclass(frozen=True)
class GitState:
    commit: str | None
    branch: str | None
    dirty: bool
    diff: str  # tracked changes only, secret files left out; '' when omitted
    untracked: dict[str, Any]  # the content of lineage/untracked.json; {} when there is nothing to say
    diff_omitted: str  # why the diff was not kept, or ''


def read_git_state(root: Path) -> GitState:
    """The git work tree at ``root``: commit, branch, dirty flag, and what of the changes is recorded.

    Dirty means tracked files changed or untracked files present, ignoring the files training itself
    rewrites (metrics.json, dvc.lock). The diff covers changes to tracked files only, never a file matching
    :data:`SECRET_PATTERNS`; untracked files are listed by path, size and sha256, never copied; secret files
    by path only. A diff over :data:`MAX_DIFF_BYTES` is dropped: only its sha256 and its files are kept.
    No repository gives Nones.
    """
    if git.run(root, "rev-parse", "--is-inside-work-tree", check=False, read_only=True) != "true":
        return GitState(None, None, False, "", {}, "")
    commit = git.run(root, "rev-parse", "--verify", "-q", "HEAD", check=False, read_only=True) or None
    branch = git.run(root, "rev-parse", "--abbrev-ref", "HEAD", check=False, read_only=True) or None
    if branch == "HEAD":
        branch = None  # detached, as in a reproduction worktree
    excludes = [f":(exclude){name}" for name in _OWN_OUTPUTS]
    status = git.run(root, "status", "--porcelain", "--untracked-files=all", "--", ".", *excludes, read_only=True)
    if not status.strip():
        return GitState(commit, branch, False, "", {}, "")
    secret_specs = [f":(glob)**/{pattern}" for pattern in SECRET_PATTERNS]
    not_secret = [f":(exclude,glob)**/{pattern}" for pattern in SECRET_PATTERNS]
    secrets: list[str] = []
    diff, omitted, changed = "", "", []
    if commit:
        diff = git.run(root, "diff", "HEAD", "--binary", "--", ".", *excludes, *not_secret, strip=False, read_only=True)
        secrets = git.run(root, "diff", "HEAD", "--name-only", "--", *secret_specs, read_only=True).splitlines()
        size = len(diff.encode("utf-8", "surrogateescape"))
        if size > MAX_DIFF_BYTES:
            digest = hashlib.sha256(diff.encode("utf-8", "surrogateescape")).hexdigest()
            omitted = (
                f"the uncommitted diff is {size} bytes, over the {MAX_DIFF_BYTES // 1024 // 1024} MB limit; "
                f"not logged (sha256 {digest})"
            )
            changed = git.run(
                root, "diff", "HEAD", "--name-only", "--", ".", *excludes, *not_secret, read_only=True
            ).splitlines()
            diff = ""
    names = git.run(
        root, "ls-files", "--others", "--exclude-standard", "--", ".", *excludes, read_only=True
    ).splitlines()
    plain = [name for name in names if not is_secret_file(name)]
    secrets += [name for name in names if is_secret_file(name)]
    untracked: dict[str, Any] = {}
    if plain:
        untracked["untracked"] = [_describe(root, name) for name in plain[:MAX_LISTED_FILES]]
    if len(plain) > MAX_LISTED_FILES:
        untracked["untracked_not_listed"] = len(plain) - MAX_LISTED_FILES
    if secrets:
        untracked["secret_files_not_recorded"] = sorted(set(secrets))
    if omitted:
        untracked["diff_omitted"] = omitted
        untracked["changed_files"] = changed
    return GitState(commit, branch, True, diff, untracked, omitted)


def is_secret_file(path: str) -> bool:
    """Whether ``path``'s name matches one of :data:`SECRET_PATTERNS`."""
    import fnmatch

    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in SECRET_PATTERNS)


def _describe(root: Path, name: str) -> dict[str, Any]:
    """An untracked file by path, size and sha256 (streamed: the file may be large)."""
    path = root / name
    if path.is_symlink() or not path.is_file():
        return {"path": name, "size": None, "sha256": None}
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"path": name, "size": path.stat().st_size, "sha256": digest.hexdigest()}


def package_lock() -> str:
    """``name==version`` of every installed distribution, sorted: the environment the run used.

    Read from the ``*.dist-info`` folder names on ``sys.path`` (``name-version.dist-info``), which is
    about twenty times faster than parsing every METADATA file; other layouts fall back to
    :mod:`importlib.metadata`.
    """
    seen: dict[str, str] = {}
    fallback = False
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                project, sep, version = name[: -len(".dist-info")].partition("-")
                if sep and version:
                    seen.setdefault(_normalise(project), f"{_normalise(project)}=={version}")
                    continue
                fallback = True
            elif name.endswith(".egg-info"):
                fallback = True
    if fallback:
        from importlib import metadata

        for dist in metadata.distributions():
            project = dist.metadata["Name"]
            if project:
                seen.setdefault(_normalise(project), f"{_normalise(project)}=={dist.version}")
    return "\n".join(seen[key] for key in sorted(seen)) + "\n"


def _normalise(name: str) -> str:
    """PEP 503 normalised project name: ``Foo_Bar.baz`` -> ``foo-bar-baz``."""
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def predictions_fingerprint(predictions: Any) -> str:
    """sha256 of a prediction array (float64, C order, shape included): equal iff predictions are equal."""
    import numpy as np

    array = np.ascontiguousarray(np.asarray(predictions, dtype=np.float64))
    digest = hashlib.sha256(repr(array.shape).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def require_clean(dirty: bool, allow_dirty: bool, environ: Mapping[str, str] | None = None) -> None:
    """In CI (``CI`` set), refuse to train from a dirty work tree unless explicitly allowed."""
    env = os.environ if environ is None else environ
    if dirty and env.get("CI") and not allow_dirty:
        raise UsageError(
            "the git work tree has uncommitted changes and CI is set; refusing to train",
            hint="commit the changes first, or pass --allow-dirty",
        )
