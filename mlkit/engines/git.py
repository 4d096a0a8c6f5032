"""The one place mlkit runs git: a subprocess per command, with one environment, retry and error format.

Every git call goes through :func:`run`. It waits a bounded time while another git process holds the
index lock (an editor, a concurrent ``mlkit data add``), runs with ``LC_ALL=C`` so messages are parsed in
one language, and turns a failure into an :class:`~mlkit.errors.OperationError` naming the git command.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from mlkit.errors import OperationError

INDEX_LOCK_WAIT_S = 30.0
# A fresh machine (a CI runner) often has no git identity; commits mlkit makes itself use this one then.
FALLBACK_NAME = "mlkit"
FALLBACK_EMAIL = "mlkit@localhost"


def run(
    root: os.PathLike[str] | str,
    *args: str,
    check: bool = True,
    strip: bool = True,
    read_only: bool = False,
    env: Mapping[str, str] | None = None,
    lock_wait: float = INDEX_LOCK_WAIT_S,
) -> str:
    """``git ARGS`` in ``root``; its stdout (stripped unless ``strip`` is false).

    ``check``: a non-zero exit raises; otherwise stdout is returned whatever the exit status (``git diff
    --no-index`` exits 1 when it found a difference).
    ``read_only``: the command only reads, so it must not take optional locks (``git status`` refreshes
    the index otherwise, and would then race with a writer).
    """
    done = _run(root, args, read_only=read_only, env=env, lock_wait=lock_wait)
    if check and done.returncode != 0:
        raise OperationError(f"git {args[0]} failed: {_reason(done)}", hint="fix the git problem and run again")
    return done.stdout.strip() if strip else done.stdout


def succeeds(root: Path | str, *args: str) -> bool:
    """Whether ``git ARGS`` exits 0 (for probes such as ``cat-file -e``)."""
    return _run(root, args, read_only=True).returncode == 0


def is_repo(root: Path | str) -> bool:
    """Whether ``root`` is inside a git work tree."""
    return run(root, "rev-parse", "--is-inside-work-tree", check=False, read_only=True) == "true"


def config_value(root: os.PathLike[str] | str | None, key: str) -> str:
    """A git config value as git resolves it from ``root`` (repository, then global), or ''."""
    try:
        return run(root or os.getcwd(), "config", "--get", key, check=False, read_only=True)
    except OperationError:  # git is not installed
        return ""


def init(root: Path, branch: str) -> None:
    """``git init`` with ``branch`` as the first branch."""
    run(root, "init", "-q", f"--initial-branch={branch}")


def commit_all(root: Path, message: str) -> str:
    """Stage everything in the work tree and commit it (hooks skipped); the new commit's sha.

    Falls back to a neutral identity when neither the repository nor the environment has one.
    """
    run(root, "add", "-A")
    run(root, "commit", "-q", "--no-verify", "-m", message, env=identity_env(root))
    return run(root, "rev-parse", "HEAD")


def identity_env(root: Path | str) -> dict[str, str]:
    """Variables that give git an author and committer when none is configured; empty when one is."""
    extra: dict[str, str] = {}
    if not config_value(root, "user.name") and "GIT_AUTHOR_NAME" not in os.environ:
        extra.update(GIT_AUTHOR_NAME=FALLBACK_NAME, GIT_COMMITTER_NAME=FALLBACK_NAME)
    if not config_value(root, "user.email") and "GIT_AUTHOR_EMAIL" not in os.environ:
        extra.update(GIT_AUTHOR_EMAIL=FALLBACK_EMAIL, GIT_COMMITTER_EMAIL=FALLBACK_EMAIL)
    return extra


def _run(
    root: os.PathLike[str] | str,
    args: tuple[str, ...],
    *,
    read_only: bool,
    env: Mapping[str, str] | None = None,
    lock_wait: float = INDEX_LOCK_WAIT_S,
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "LC_ALL": "C", **(env or {})}
    if read_only:
        environment["GIT_OPTIONAL_LOCKS"] = "0"
    deadline = time.monotonic() + lock_wait
    while True:
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=root,
                env=environment,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except FileNotFoundError:
            raise OperationError("git is not installed", hint="install git and run again") from None
        if done.returncode != 0 and "index.lock" in done.stderr and time.monotonic() < deadline:
            time.sleep(0.1)
            continue
        return done


def _reason(done: subprocess.CompletedProcess[str]) -> str:
    text = done.stderr.strip() or done.stdout.strip()
    return text.splitlines()[0] if text else f"exit {done.returncode}"
