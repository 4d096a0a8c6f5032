"""Names: what a registered model may be called, and what a project's own package must not be called.

A model name is checked with the settings: the registry refuses ``/`` and ``:`` only when registering,
after the whole training, and ``@`` or ``/`` would make ``NAME@ALIAS`` and ``NAME/VERSION`` ambiguous.

A package must not take the name of a package installed next to mlkit: the project's ``src/`` comes first
on the import path while training, so a package called ``pandas`` or ``mlflow`` would hide the real one and
training would fail with ``ModuleNotFoundError`` far from the cause.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

from mlkit.errors import UsageError

MAX_NAME_LENGTH = 100
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)  # matched whole
MODEL_NAME_RULE = "must start with a letter or digit and contain only letters, digits, '.', '-' and '_'"


def model_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a registered model's name, or None."""
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed"
    if not MODEL_NAME.fullmatch(name):
        return f"{name!r} {MODEL_NAME_RULE}"
    return None


# always refused, whether or not the installer recorded their top-level names
_RESERVED = {"mlkit": "mlkit"}


def installed_owner(package: str) -> str | None:
    """The installed distribution providing top-level module ``package``, or None."""
    if package in _RESERVED:
        return _RESERVED[package]
    owners = _top_level_names().get(package)
    return sorted(owners)[0] if owners else None


@functools.cache
def _top_level_names() -> Mapping[str, list[str]]:
    # reading every installed distribution's metadata takes a few hundred milliseconds: once per process
    from importlib import metadata

    return metadata.packages_distributions()


def check_not_installed(package: str, source: str, example: str) -> None:
    """Refuse ``package`` when it would shadow an installed package; ``source`` says where the name came
    from, ``example`` is a ``mlkit init`` argument line to suggest instead."""
    owner = installed_owner(package)
    if owner is None:
        return
    raise UsageError(
        f"{source} would make a package {package!r} that shadows the installed package {owner}: training "
        "would import the project instead (ModuleNotFoundError)",
        hint=f"choose another name, e.g. `mlkit init {example}`, or keep the name with "
        f"`--set package_name={package}_project`",
    )
