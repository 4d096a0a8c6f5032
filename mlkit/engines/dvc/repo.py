"""Opening DVC's ``Repo`` and what every operation on it shares: the lock, the settings from the
environment, the transfer statistics and the translation of DVC's exceptions into mlkit's errors."""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

from mlkit import constants as C
from mlkit.errors import MlkitError, OperationError, UsageError, first_line
from mlkit.uris import redact_text

# importing dvc gives each of these loggers handlers that print raw `ERROR: ...` lines to stderr
_DVC_LOGGERS = ("dvc", "dvc_data", "dvc_objects")


def quiet_dvc_logger() -> None:
    """DVC logs to the root handlers even when a call fails; keep it out of mlkit's output."""
    for name in _DVC_LOGGERS:
        logger = logging.getLogger(name)
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
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    quiet_dvc_logger()
    from_environment = environment_remote()
    if from_environment is not None:
        config = {**from_environment, **(config or {})}
    from dvc.scm import SCMError

    try:
        repo = Repo(str(root), config=config)
    except NotDvcRepoError:
        raise UsageError(
            f"DVC is not set up in {root} (no .dvc folder)",
            hint="run `dvc init` there, then `mlkit data remote add NAME URL --default`",
        ) from None
    except SCMError:
        raise _no_git(root) from None
    try:
        yield repo
    except SCMError:
        if (root / ".git").exists():
            raise
        raise _no_git(root) from None
    finally:
        repo.close()


def _no_git(root: Path) -> UsageError:
    return UsageError(
        f"{root} is not a git repository (no .git folder); an mlkit project is one",
        hint="restore the project's .git folder, or `git init` there and commit the project",
    )


def init_repo(
    root: Path, *, remote: Path | str | None, link_types: str, scm: bool = True, remote_name: str = "local"
) -> None:
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


DEFAULT_LOCK_TIMEOUT_S = 60.0


@contextmanager
def locked(repo: Any, timeout: float) -> Iterator[None]:
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
                    "is running, delete .dvc/tmp/lock",
                ) from None
            time.sleep(0.2)
    try:
        yield
    except BaseException:
        if not holder.__exit__(*sys.exc_info()):
            raise
    else:
        holder.__exit__(None, None, None)


def transfer_stats(root: Path, stats: Any) -> dict[str, Any]:
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
    return {
        "fetched": int(counts.get("fetched", 0) or 0),
        "added": rel(stats.get("added")),
        "modified": rel(stats.get("modified")),
        "deleted": rel(stats.get("deleted")),
    }


def _relative_to(root: Path, path: str) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path


def translate(exc: BaseException, doing: str, root: Path | None = None) -> MlkitError:
    """A DVC exception as an mlkit error with a hint; mlkit's own errors pass through."""
    if isinstance(exc, MlkitError):
        return exc
    translated = _translate(exc, doing, root)
    # DVC names remotes by URL in its messages: never with their credentials
    translated.message = redact_text(translated.message)
    return translated


def _translate(exc: BaseException, doing: str, root: Path | None) -> MlkitError:
    from dvc.exceptions import CheckoutError, ConfirmRemoveError, DvcException, OutputDuplicationError
    from dvc.output import OutputAlreadyTrackedError

    if isinstance(exc, OutputAlreadyTrackedError):
        return UsageError(
            f"{first_line(exc)}; DVC cannot track what git tracks",
            hint="run `git rm -r --cached PATH` first, then `mlkit data add PATH`",
        )
    if isinstance(exc, OutputDuplicationError):
        return UsageError(first_line(exc), hint="a pipeline stage produces it: run the pipeline instead")
    if isinstance(exc, ConfirmRemoveError) or str(exc).startswith("Can't remove the following unsaved"):
        paths = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
        return UsageError(
            f"{', '.join(paths) or 'data'} has changes DVC has not recorded; checkout would overwrite them",
            hint="keep them with `mlkit data add PATH`, or discard them with --force",
        )
    if isinstance(exc, CheckoutError):
        # DVC names the targets relative to the working directory
        missing = (
            ", ".join(sorted(_relative_to(root, os.path.abspath(str(t))) for t in exc.target_infos))
            if root
            else "some data"
        )
        if doing.startswith("pulling"):
            return OperationError(
                f"{doing} failed: {missing} is in neither the cache nor the remote",
                hint="push it from a machine that has it (`mlkit data push`), then pull again",
            )
        return OperationError(
            f"{doing} failed: {missing} is not in the cache", hint="run `mlkit data pull` to fetch it from the remote"
        )
    if isinstance(exc, DvcException):
        return OperationError(f"{doing} failed: {first_line(exc)}", hint="run again with --debug for DVC's traceback")
    return OperationError(
        f"{doing} failed: {first_line(exc, with_type=True)}", hint="run again with --debug for the traceback"
    )
