"""A home folder of the tests' own: no user config, caches or git identity from the machine leaks in."""

from __future__ import annotations

from pathlib import Path

import pytest


def use_home(patch: pytest.MonkeyPatch, home: Path) -> Path:
    """Point HOME and the XDG folders at ``home`` (created) with a fixed git identity; returns ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    patch.setenv("HOME", str(home))
    patch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    patch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    (home / ".gitconfig").write_text("[user]\n\tname = Test User\n\temail = test@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n")
    return home
