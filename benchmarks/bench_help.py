"""`mlkit --help` against `python -c "import typer"`: startup is a feature (target ratio <= 1.3)."""

from __future__ import annotations

import os
import sys

from _timing import clean_env, mlkit_executable, report, time_command

RUNS = int(os.environ.get("MLKIT_BENCH_RUNS", "10"))


def main() -> None:
    env = clean_env()
    rows = [
        ("python -c 'import typer'", time_command([sys.executable, "-c", "import typer"], runs=RUNS, env=env)),
        ("mlkit --help", time_command([mlkit_executable(), "--help"], runs=RUNS, env=env)),
        ("mlkit --version", time_command([mlkit_executable(), "--version"], runs=RUNS, env=env)),
    ]
    report(
        f"CLI startup, median of {RUNS}",
        rows,
        baseline="python -c 'import typer'",
        target="mlkit --help <= 1.3x import typer",
    )


if __name__ == "__main__":
    main()
