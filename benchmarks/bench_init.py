"""`mlkit init` (render + sample data + git + DVC + commit) against cookiecutter generating the same
template alone (no git, no DVC). Target: `mlkit init` <= 2.0 s median."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from _timing import clean_env, mlkit_executable, report, time_command

from mlkit import __version__
from mlkit.templates import templates_root

RUNS = int(os.environ.get("MLKIT_BENCH_RUNS", "7"))


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="mlkit-bench-init-"))
    env = clean_env(CI="true", HOME=str(work / "home"))
    cookiecutter = str(Path(sys.executable).with_name("cookiecutter"))

    def reset() -> None:
        for name in ("churn", "cc-out", "remote"):
            shutil.rmtree(work / name, ignore_errors=True)

    try:
        rows = [
            (
                "cookiecutter (render only)",
                time_command(
                    [
                        cookiecutter,
                        "--no-input",
                        "--default-config",
                        "-o",
                        str(work / "cc-out"),
                        str(templates_root() / "project"),
                        "project_name=churn",
                        "task=classification",
                        f"mlkit_version={__version__}",
                    ],
                    runs=RUNS,
                    cwd=work,
                    env=env,
                    setup=reset,
                ),
            ),
            (
                "mlkit init (render + data + git + DVC + commit)",
                time_command(
                    [mlkit_executable(), "init", "churn", "--data-remote", str(work / "remote")],
                    runs=RUNS,
                    cwd=work,
                    env=env,
                    setup=reset,
                ),
            ),
        ]
        report(
            f"project creation, median of {RUNS}",
            rows,
            baseline="cookiecutter (render only)",
            target="mlkit init <= 2.0 s median",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
