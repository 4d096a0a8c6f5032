"""Timing helpers shared by the benchmarks: medians of repeated runs, printed with their ratios."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def time_command(
    argv: Sequence[str],
    *,
    runs: int = 5,
    cwd: Path | None = None,
    env: dict | None = None,
    setup: Callable[[], None] | None = None,
    warmup: int = 1,
) -> float:
    """Median wall time in seconds of running ``argv`` ``runs`` times (after ``warmup`` runs)."""
    samples = []
    for index in range(warmup + runs):
        if setup is not None:
            setup()
        started = time.perf_counter()
        subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        elapsed = time.perf_counter() - started
        if index >= warmup:
            samples.append(elapsed)
    return statistics.median(samples)


def time_call(
    fn: Callable[[], object], *, runs: int = 5, setup: Callable[[], None] | None = None, warmup: int = 0
) -> float:
    samples = []
    for index in range(warmup + runs):
        if setup is not None:
            setup()
        started = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - started
        if index >= warmup:
            samples.append(elapsed)
    return statistics.median(samples)


def report(title: str, rows: Sequence[tuple[str, float]], baseline: str, target: str | None = None) -> None:
    """Print medians and the ratio of each row to the baseline row."""
    base = dict(rows)[baseline]
    print(f"\n## {title}")
    for name, seconds in rows:
        print(f"  {name:<48} median {seconds:8.3f} s   ratio {seconds / base:6.2f}x vs {baseline}")
    if target:
        print(f"  target: {target}")
    sys.stdout.flush()


def mlkit_executable() -> str:
    """The `mlkit` console script next to the running interpreter."""
    candidate = Path(sys.executable).with_name("mlkit")
    return str(candidate) if candidate.exists() else "mlkit"


_PYCACHE = Path(tempfile.gettempdir()) / "mlkit-bench-pycache"


def clean_env(**extra: str) -> dict:
    """The environment for a measured command: no CI or tracking variables leaking in, and byte-code
    cached (in a folder of its own) so imports cost what they cost after a normal install."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLKIT_", "MLFLOW_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(_PYCACHE)
    env.update(extra)
    return env
