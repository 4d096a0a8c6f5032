"""A home folder of the tests' own: no user config, caches or git identity from the machine leaks in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def use_home(patch: pytest.MonkeyPatch, home: Path) -> Path:
    """Point HOME and the XDG folders at ``home`` (created) with a fixed git identity; returns ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    patch.setenv("HOME", str(home))
    patch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    patch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n"
    )
    return home


def drop_outside_settings(patch: pytest.MonkeyPatch) -> None:
    """Unset the CI, tracking, DVC and git variables of the machine the tests run on."""
    for name in list(os.environ):
        if name.startswith(("GITHUB_", "MLKIT_", "MLFLOW_", "DVC_", "GIT_")) or name in ("CI", "RUNNER_TEMP"):
            patch.delenv(name, raising=False)


def isolate(patch: pytest.MonkeyPatch, home: Path) -> Path:
    """Both of the above: what every test gets, for fixtures that outlive one test."""
    use_home(patch, home)
    drop_outside_settings(patch)
    return home
