"""The one exception root of mlkit and the exit codes it maps to.

Every expected failure raises a subclass of :class:`MlkitError` carrying a one-line message and a hint
that says what to run next. Only the command-line entry point turns them into exit codes.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    REFUSED = 3
    MISMATCH = 4
    DRIFT = 5
    INTERRUPTED = 130


class MlkitError(Exception):
    """An expected failure: a message for the user and a hint saying what to do next."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(MlkitError):
    """Bad usage or bad input: a wrong argument, a bad config value, a missing file."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """A setting in mlkit.yaml, params.yaml or the environment is not allowed."""


class ProjectNotFoundError(UsageError):
    """The current directory is not inside an mlkit project."""

    def __init__(self, start: str) -> None:
        super().__init__(
            f"not inside an mlkit project (no mlkit.yaml in {start} or any parent)",
            hint="run `mlkit init NAME` to create one, or cd into a project",
        )


class OperationError(MlkitError):
    """An operation that was asked for correctly failed (git, DVC, MLflow, the disk)."""


class PermissionDeniedError(OperationError):
    """The tracking server refused the signed-in user (HTTP 401/403): a failed operation, exit code 1.

    Not bad usage: the same command succeeds for a user with the permission, so the fix is a grant
    (`mlkit server user grant ...`), not a different command line.
    """


class SupersededError(OperationError):
    """A stage move that was overwritten by a concurrent writer before it returned: exit code 1.

    The move happened and is in the audit trail (state ``superseded``), but another version holds the
    stage now, so a CI job must not report it as promoted.
    """


class GateRefusedError(MlkitError):
    """A promotion was refused by one of the policy gates."""

    exit_code = ExitCode.REFUSED


class MismatchError(MlkitError):
    """A reproduction did not give the recorded result."""

    exit_code = ExitCode.MISMATCH


class MonitoringPolicyError(MlkitError):
    """Current data crossed the monitoring policy: drift, decay of the model, or bad data quality."""

    exit_code = ExitCode.DRIFT


def first_line(exc: BaseException, *, with_type: bool = False) -> str:
    """The first non-blank line of ``exc``'s message, for one-line errors; its type name when it has none.

    ``with_type`` puts the type in front (``ValueError: ...``), for errors that are not mlkit's own.
    """
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    if not text:
        return type(exc).__name__
    return f"{type(exc).__name__}: {text}" if with_type else text
