"""Run the benchmarks: `python benchmarks/run.py [NAME ...]` runs bench_NAME.py (all when none given)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main(names: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        wanted = {f"bench_{n}.py" for n in names}
        unknown = wanted - {s.name for s in scripts}
        if unknown:
            print(
                f"unknown benchmarks: {', '.join(sorted(unknown))}; have: "
                + ", ".join(s.stem[len("bench_") :] for s in scripts)
            )
            return 2
        scripts = [s for s in scripts if s.name in wanted]
    sys.path.insert(0, str(HERE))
    for script in scripts:
        print(f"# {script.stem}")
        runpy.run_path(str(script), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
