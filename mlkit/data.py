"""Versioned data sets: what DVC recorded for each tracked input, and the operations on them.

Every call into DVC goes through :mod:`mlkit.dvcops`; this module holds the mlkit-side logic (which
paths are tracked, whether the workspace copy matches what was recorded, the errors users see).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlkit.errors import UsageError

DVC_SUFFIX = ".dvc"


@dataclass(frozen=True)
class Recorded:
    """One output as a `.dvc` file records it."""

    path: str  # relative to the project root, posix
    dvc_file: str  # relative to the project root, posix
    md5: str  # for directories DVC's ``<md5>.dir``
    hash_name: str  # "md5" (DVC 3) or "md5-dos2unix" (files written by DVC 2)
    size: int | None
    nfiles: int | None

    @property
    def is_dir(self) -> bool:
        return self.md5.endswith(".dir")


def input_md5s(root: Path, paths: Sequence[str]) -> dict[str, str]:
    """Relative path -> md5 DVC recorded for each DVC-tracked input (directories keep DVC's `.dir` md5).

    ``paths`` are relative to ``root`` (as in mlkit.yaml) or absolute.

    The workspace copy of each input must be present and unchanged since it was added. The check reads
    DVC's state database (hashes keyed by inode, mtime and size), so data DVC already hashed is not read
    again; only a file DVC has never seen in its current form is hashed, once.
    """
    root = Path(root).resolve()
    records = [recorded(root, path, base=root) for path in paths]
    for record in records:
        if not (root / record.path).exists():
            raise UsageError(f"{record.path} is tracked by DVC but missing from the workspace",
                             hint="run `mlkit data pull` to fetch it from the remote")
    changed = [r for r in records if r.size is not None and not r.is_dir
               and (root / r.path).is_file() and os.stat(root / r.path).st_size != r.size]
    if not changed:
        from mlkit import dvcops

        actual = dvcops.workspace_hashes(root, [(root / r.path, r.hash_name) for r in records])
        changed = [r for r in records if actual.get(str(root / r.path)) != r.md5]
    if changed:
        first = changed[0].path
        raise UsageError(f"{first} was modified since it was added to DVC",
                         hint=f"run `mlkit data add {first}` to record the new version")
    return {record.path: record.md5 for record in records}


def recorded(root: Path, path: str, base: Path | None = None) -> Recorded:
    """What the `.dvc` file next to ``path`` records for it; UsageError when DVC does not track it."""
    relative = relative_path(root, path, base)
    dvc_file = root / (relative + DVC_SUFFIX)
    if not dvc_file.is_file():
        raise UsageError(f"{relative} is not tracked by DVC (no {relative + DVC_SUFFIX})",
                         hint=f"run `mlkit data add {relative}` to track it")
    for out in _outs(dvc_file):
        if (dvc_file.parent / out.get("path", "")).resolve() == (root / relative).resolve():
            return _record(relative, dvc_file.relative_to(root).as_posix(), out)
    raise UsageError(f"{relative + DVC_SUFFIX} does not record an output for {relative}",
                     hint=f"run `mlkit data add {relative}` to track it")


def relative_path(root: Path, path: str | os.PathLike[str], base: Path | None = None) -> str:
    """``path`` (absolute, or relative to ``base``, default the working directory) relative to ``root``."""
    candidate = Path(path)
    absolute = candidate if candidate.is_absolute() else (base or Path.cwd()) / candidate
    absolute = Path(os.path.normpath(absolute))
    try:
        relative = absolute.relative_to(root)
    except ValueError:
        # a symlinked working directory: compare resolved parents, keep the name as given
        try:
            relative = absolute.parent.resolve().relative_to(root.resolve()) / absolute.name
        except ValueError:
            raise UsageError(f"{path} is outside the project ({root})",
                             hint="copy the data into the project, e.g. under data/, then add it") from None
    text = relative.as_posix()
    if text in ("", "."):
        raise UsageError("the project root itself cannot be a data set",
                         hint="name a file or folder inside the project, e.g. `mlkit data add data/raw`")
    return text


def _outs(dvc_file: Path) -> list[dict[str, Any]]:
    import yaml

    try:
        content = yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{dvc_file.name} cannot be read: {str(exc).splitlines()[0]}",
                         hint="restore it with `git checkout -- FILE` or add the data again") from None
    outs = content.get("outs") if isinstance(content, dict) else None
    return [out for out in outs or [] if isinstance(out, dict)]


def _record(relative: str, dvc_file: str, out: dict[str, Any]) -> Recorded:
    md5 = out.get("md5")
    if not md5:
        raise UsageError(f"{dvc_file} records no md5 for {relative}",
                         hint=f"run `mlkit data add {relative}` to record it")
    # DVC 3 writes `hash: md5`; files without it were written by DVC 2, which hashed text as dos2unix
    hash_name = "md5" if out.get("hash") == "md5" else "md5-dos2unix"
    return Recorded(path=relative, dvc_file=dvc_file, md5=str(md5), hash_name=hash_name,
                    size=out.get("size"), nfiles=out.get("nfiles"))
