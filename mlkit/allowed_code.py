"""Which code settings may name: the project's own package, the estimator packages, and what
``model.allow_modules`` adds on purpose.

Settings, data and template answers are data, never code, yet three settings name code that training
runs: ``data.hook``, ``model.entrypoint`` and ``model.estimator``. Importing ``a.b.c`` first imports and
runs the top-level package ``a``, so that package's name is what is checked, and nothing else: a name
that is not a plain dotted identifier (a relative import, ``..``, a non-ASCII look-alike) never gets that
far. Three checks, each before any data is read or MLflow imported:

- by name, with the settings (:func:`refusal`): the top-level package is the project's own
  (``project.package``), one of :data:`ESTIMATOR_PACKAGES` (estimators only), or listed in
  ``model.allow_modules``;
- on disk, when the project is loaded (:func:`check_sources`): the project's package is a package under
  ``src/``, not a standard-library module that happens to share its name, and an allowed package is not
  shadowed by a same-named module inside the project folder (the import system would take the first one on
  the path);
- after the import (:func:`defined_in`): the class or function is defined in the package it was named by,
  so a package re-exporting someone else's callable (``from subprocess import call``) does not count.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlkit import constants as C
from mlkit.errors import ConfigError

# top-level package names only: their submodules come with them
ESTIMATOR_PACKAGES = ("sklearn", "xgboost", "lightgbm", "catboost")
ALLOW_SETTING = "model.allow_modules"

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
TOP_LEVEL = re.compile(_IDENTIFIER)
DOTTED = re.compile(rf"{_IDENTIFIER}(?:\.{_IDENTIFIER})*")


def top_level(name: str) -> str:
    """``sklearn`` for ``sklearn.linear_model.Ridge`` and for ``sklearn.x:f``."""
    return name.partition(":")[0].split(".")[0]


def never_allowed(name: str) -> str | None:
    """Why a top-level name can never be allowed for code (a standard-library module, mlkit), or None."""
    if name in sys.stdlib_module_names or name in sys.builtin_module_names:
        return f"{name!r} is a standard-library module"
    if name == "mlkit":
        return "mlkit itself is not a model package"
    return None


def allowed_packages(field: str, package: str, extra: Sequence[str]) -> list[str]:
    """The top-level packages ``field`` (``data.hook``, ``model.entrypoint``, ``model.estimator``) may name."""
    names = [package]
    if field == "model.estimator":
        names += [name for name in ESTIMATOR_PACKAGES if name not in names]
    names += [name for name in extra if name not in names]
    return names


def refusal(field: str, value: str, package: str, extra: Sequence[str]) -> str | None:
    """Why setting ``field`` may not name ``value``, or None when it may (checked by name only)."""
    module = value.partition(":")[0]
    if not DOTTED.fullmatch(module):
        return f"{module!r} is not a dotted name of Python identifiers"
    top = top_level(value)
    if top == package and never_allowed(top):
        return f"the project's package {never_allowed(top)}: code named by settings never comes from there"
    allowed = [name for name in allowed_packages(field, package, extra) if not never_allowed(name)]
    if top in allowed:
        return None
    listed = ", ".join(f"{name} (the project's package)" if name == package else name for name in allowed) or "none"
    if never_allowed(package):
        listed += f" (project.package: {never_allowed(package)})"
    return f"{top!r} is not an allowed package; allowed: {listed} (add a package you trust to {ALLOW_SETTING})"


def check_sources(root: Path, package: str, fields: Sequence[tuple[str, str]]) -> None:
    """Check on disk where each setting's code would be imported from; ``fields`` are (setting, value)
    pairs already allowed by name. Imports nothing: only the import system's finders are asked."""
    src = root / "src"
    for field, value in fields:
        top = top_level(value)
        in_src = _find_in(top, src)
        if top == package:
            if in_src is None:
                raise ConfigError(
                    f"{C.CONFIG_FILE}: {field}: the project's package {top!r} is not under src/ "
                    f"(no src/{top}/__init__.py or src/{top}.py)",
                    hint=f"check project.package and {field} in {C.CONFIG_FILE}",
                )
            continue
        if top not in ESTIMATOR_PACKAGES and field != "model.estimator" and in_src is not None:
            continue  # imported with src/ first on the path: the project's own code
        found = in_src if top in ESTIMATOR_PACKAGES and in_src is not None else _find(top)
        inside = _inside(found, root)
        if inside is not None and (top in ESTIMATOR_PACKAGES or not inside.startswith("src/")):
            raise ConfigError(
                f"{C.CONFIG_FILE}: {field}: {top!r} would be imported from {inside} inside the project, "
                "not from the installed package",
                hint=f"rename or remove {inside}: it shadows the package {top}",
            )


def defined_in(obj: Any, name: str, field: str) -> None:
    """Refuse ``obj`` (imported for setting ``field`` from ``name``) when it is defined outside the
    top-level package ``name`` starts with (or an estimator package, for an estimator's base classes)."""
    top = top_level(name)
    module = getattr(obj, "__module__", None) or ""
    owner = top_level(module)
    if owner == top or (field == "model.estimator" and owner in ESTIMATOR_PACKAGES):
        return
    where = f"defined in {module}" if module else "not defined in any module"
    raise ConfigError(
        f"{C.CONFIG_FILE}: {field}: {name} is {where}, not in {top}",
        hint=f"name the {'class' if field == 'model.estimator' else 'function'} by the module that defines it, "
        f"from an allowed package",
    )


def _find_in(top: str, folder: Path) -> Path | None:
    """The file a module ``top`` has directly in ``folder`` (a package's __init__.py), or None."""
    from importlib.machinery import PathFinder

    if not folder.is_dir():
        return None
    spec = PathFinder.find_spec(top, [str(folder)])
    if spec is None or not spec.origin or spec.origin in ("namespace", "built-in", "frozen"):
        return None
    return Path(spec.origin)


def _find(top: str) -> Path | None:
    """Where importing ``top`` would load it from now (None: not found, built in, or a namespace)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not Path(spec.origin).is_absolute():
        return None
    return Path(spec.origin)


def _inside(path: Path | None, root: Path) -> str | None:
    """``path`` relative to ``root`` when it lies inside, else None."""
    if path is None:
        return None
    for candidate, base in ((path.absolute(), root.absolute()), (path.resolve(), root.resolve())):
        if candidate.is_relative_to(base):
            return candidate.relative_to(base).as_posix()
    return None
