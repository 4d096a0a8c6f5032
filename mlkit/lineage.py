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

    @property
    def diff_bytes(self) -> bytes:
        """The uncommitted diff exactly as logged: its sha256 is what `mlkit reproduce` checks."""
        return self.diff.encode("utf-8", "surrogateescape")

    def artifacts(self) -> dict[str, bytes]:
        """Run-relative artifact path -> content: the package lock and, when dirty, the diff."""
        out = {tags.LOCK_ARTIFACT: self.package_lock.encode()}
        if self.git_dirty:
            out[tags.DIFF_ARTIFACT] = self.diff_bytes
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
        if self.git_dirty:
            out[tags.GIT_DIFF] = tags.DIFF_ARTIFACT
            out[tags.DIFF_SHA256] = hashlib.sha256(self.diff_bytes).hexdigest()
        for path, md5 in sorted(self.data_md5s.items()):
            out[tags.DATA_MD5_PREFIX + path] = md5
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
        )


def collect_lineage(
    root: Path,
    *,
    inputs: Sequence[str],
    params: Mapping[str, Any],
    seed: int,
    split: Mapping[str, Any],
    command: Sequence[str] | None = None,
) -> RunLineage:
    """Record the lineage of a run about to train in the project at ``root``.

    ``inputs`` are data paths relative to ``root``; their md5s come from DVC's records and the workspace
    copies must match them (a missing file raises :class:`UsageError` saying to pull it).
    """
    from mlkit.data import input_md5s

    root = Path(root).resolve()
    commit, branch, dirty, diff = git_state(root)
    lock = package_lock()
    return RunLineage(
        git_commit=commit,
        git_branch=branch,
        git_dirty=dirty,
        data_md5s=dict(input_md5s(root, list(inputs))),
        params=dict(params),
        seed=int(seed),
        split=dict(split),
        python_version=platform.python_version(),
        package_lock_sha256=hashlib.sha256(lock.encode()).hexdigest(),
        mlkit_version=__version__,
        command=command_line(command),
        diff=diff,
        package_lock=lock,
    )


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as the user typed it: `mlkit train --set ...` rather than the script's full path, with
    the credentials of any URI in it redacted."""
    args = list(sys.argv if argv is None else argv)
    if args and Path(args[0]).name in ("mlkit", "__main__.py"):
        args[0] = "mlkit"
    # recorded in tags on the run and the model version: no password may go with it
    return shlex.join(redact_text(arg) for arg in args)


def git_state(root: Path) -> tuple[str | None, str | None, bool, str]:
    """(commit, branch, dirty, diff) of the git work tree at ``root``; no repository gives Nones.

    Dirty means tracked files changed or untracked files present, ignoring the files training itself
    rewrites (metrics.json, dvc.lock). The diff covers tracked changes plus untracked files' contents.
    """
    if git.run(root, "rev-parse", "--is-inside-work-tree", check=False, read_only=True) != "true":
        return None, None, False, ""
    commit = git.run(root, "rev-parse", "--verify", "-q", "HEAD", check=False, read_only=True) or None
    branch = git.run(root, "rev-parse", "--abbrev-ref", "HEAD", check=False, read_only=True) or None
    if branch == "HEAD":
        branch = None  # detached, as in a reproduction worktree
    excludes = [f":(exclude){name}" for name in _OWN_OUTPUTS]
    status = git.run(root, "status", "--porcelain", "--untracked-files=all", "--", ".", *excludes, read_only=True)
    dirty = bool(status.strip())
    diff = ""
    if dirty:
        if commit:
            diff = git.run(root, "diff", "HEAD", "--binary", "--", ".", *excludes, strip=False, read_only=True)
        untracked = git.run(root, "ls-files", "--others", "--exclude-standard", "--", ".", *excludes, read_only=True)
        for name in untracked.splitlines():
            # `git diff --no-index` exits 1 when files differ, which they always do here
            diff += git.run(root, "diff", "--binary", "--no-index", "/dev/null", name, check=False, strip=False,
                            read_only=True)
    return commit, branch, dirty, diff


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
