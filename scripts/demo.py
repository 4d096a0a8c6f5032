"""mlkit's main job end to end on the embedded defaults, in a temporary folder.

Each step is a real `mlkit` command run the way a user types it; the project is left in place so you
can look around afterwards.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

MLKIT = str(Path(sys.executable).with_name("mlkit"))


def run(step: str, *args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    print(f"\n\033[1m== {step}\033[0m\n$ mlkit {shlex.join(args)}", flush=True)
    result = subprocess.run([MLKIT, *args], cwd=cwd, env={**os.environ, "CI": "true"}, text=True)
    if check and result.returncode != 0:
        sys.exit(f"demo step failed ({result.returncode}): mlkit {shlex.join(args)}")
    return result


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="mlkit-demo-"))
    project = base / "churn"
    run("create a project", "init", "churn", "--data-remote", str(base / "remote"), cwd=base)
    run("resolved settings", "config", "show", cwd=project)
    # -- data ------------------------------------------------------------------------------------
    # -- training --------------------------------------------------------------------------------
    # -- promotion -------------------------------------------------------------------------------
    # -- reproduce -------------------------------------------------------------------------------
    # -- ci --------------------------------------------------------------------------------------
    print(f"\nDone. The project is in {project}\n"
          f"  cd {project} && git log --oneline && mlkit config show")


if __name__ == "__main__":
    main()
