"""Check that a built wheel ships the project templates and nothing stray (used by `nox -s wheel`)."""

from __future__ import annotations

import sys
import zipfile

REQUIRED = (
    "mlkit/_templates/project/cookiecutter.json",
    "mlkit/_templates/project/{{cookiecutter.project_slug}}/mlkit.yaml",
)


def main(path: str) -> int:
    names = zipfile.ZipFile(path).namelist()
    missing = [name for name in REQUIRED if name not in names]
    stray = [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    if missing or stray:
        print(f"{path}: missing {missing}, stray {stray}")
        return 1
    print(f"{path}: {len(names)} files, templates included")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
