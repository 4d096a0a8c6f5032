"""`mlkit reproduce` against the `mlkit train` it rebuilds, on the template project (target <= 1.5x).

Both are run as a user runs them, through the installed command, on the same project in the same run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from _timing import clean_env, mlkit_executable, report, time_command

RUNS = int(os.environ.get("MLKIT_BENCH_RUNS", "5"))


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="mlkit-bench-reproduce-"))
    env = clean_env(HOME=str(work / "home"))
    mlkit = mlkit_executable()
    try:
        subprocess.run(
            [mlkit, "init", "churn", "--data-remote", str(work / "remote")],
            cwd=work,
            env=env,
            check=True,
            capture_output=True,
        )
        project = work / "churn"
        train = time_command([mlkit, "train", "--no-register"], runs=RUNS, cwd=project, env=env)
        subprocess.run([mlkit, "train"], cwd=project, env=env, check=True, capture_output=True)
        rebuild = time_command([mlkit, "reproduce", "churn/1"], runs=RUNS, cwd=project, env=env)
        report(
            f"reproduce vs train on the classification template, median of {RUNS}",
            [("mlkit train", train), ("mlkit reproduce churn/1", rebuild)],
            baseline="mlkit train",
            target="mlkit reproduce <= 1.5x mlkit train",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
