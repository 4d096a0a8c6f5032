"""Where mlkit's bundled templates are: the project template of `mlkit init` and the CI templates."""

from __future__ import annotations

from pathlib import Path

from mlkit.errors import OperationError


def templates_root() -> Path:
    """Where the bundled templates are: inside the installed package, or `templates/` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_templates", here.parent / "templates"):
        if (candidate / "project" / "cookiecutter.json").is_file():
            return candidate
    raise OperationError(
        "mlkit's bundled templates are missing from this installation",
        hint="reinstall mlkit: pip install --force-reinstall mlkit",
    )
