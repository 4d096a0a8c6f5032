"""`mlkit data add` / `push` against `md5sum` of the same data and plain `dvc add` / `dvc push`.

Two data sets, each measured in the same run against its baselines:
  * one random file of MLKIT_BENCH_DATA_BIG_MB MiB (default 1024);
  * a folder of MLKIT_BENCH_DATA_FILES files (default 10000) of MLKIT_BENCH_DATA_FILE_KB KiB (default 1).
Targets: 1 GiB first add <= 1.6x md5sum; re-add of unchanged data <= 0.5x md5sum; for the small files,
add + push at least 1.5x faster than DVC's defaults. Runs: MLKIT_BENCH_RUNS (default 5). Everything
lives in a temporary folder (MLKIT_BENCH_TMP, default the system's) that is removed at the end.

Every timed command is a fresh process, as a user runs it; the cases run in turn, round after round.
Byte-code is cached in the temporary folder (PYTHONPYCACHEPREFIX), so startup is measured as on an
installed machine even where the environment disables writing byte-code.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import clean_env, mlkit_executable, report

RUNS = int(os.environ.get("MLKIT_BENCH_RUNS", "5"))
BIG_MB = int(os.environ.get("MLKIT_BENCH_DATA_BIG_MB", "1024"))
FILES = int(os.environ.get("MLKIT_BENCH_DATA_FILES", "10000"))
FILE_KB = int(os.environ.get("MLKIT_BENCH_DATA_FILE_KB", "1"))

DVC = str(Path(sys.executable).with_name("dvc"))
MLKIT = mlkit_executable()


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.master = work / "master"
        self.repo = work / "repo"
        self.remote = work / "remote"
        self.site_cache = work / "dvc-site-cache"
        env = clean_env(
            CI="true",
            HOME=str(work / "home"),
            DVC_NO_ANALYTICS="1",
            DVC_SITE_CACHE_DIR=str(self.site_cache),
            PYTHONPYCACHEPREFIX=str(work / "pycache"),
        )
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env = env
        self.templates: dict[str, Path] = {}

    def sh(self, *argv: str, cwd: Path | None = None) -> None:
        subprocess.run(
            argv,
            cwd=cwd or self.repo,
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )

    def make_template(self, kind: str) -> None:
        """An empty repository configured as ``kind`` ("dvc", "dvc-hardlink" or "mlkit"), copied per run."""
        template = self.work / f"template-{kind}"
        template.mkdir(parents=True)
        self.sh("git", "init", "-q", cwd=template)
        self.sh(DVC, "init", "-q", cwd=template)
        self.sh(DVC, "config", "core.analytics", "false", cwd=template)
        self.sh(DVC, "remote", "add", "-d", "local", str(self.remote), cwd=template)
        if kind == "dvc-hardlink":
            self.sh(DVC, "config", "cache.type", "hardlink", cwd=template)
        if kind == "mlkit":  # what `mlkit init` writes
            self.sh(DVC, "config", "cache.type", "reflink,hardlink,copy", cwd=template)
            self.sh(DVC, "config", "core.autostage", "true", cwd=template)
            (template / "mlkit.yaml").write_text("version: 1\n")
        self.sh("git", "add", "-A", cwd=template)
        self.sh(
            "git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "init", cwd=template
        )
        self.templates[kind] = template

    def fresh(self, kind: str, data: str) -> None:
        """A new repository of ``kind`` with hard links to the master copy of ``data`` (no bytes copied)."""
        for path in (self.repo, self.remote, self.site_cache):
            _remove(path)
        shutil.copytree(self.templates[kind], self.repo, symlinks=True)
        self.remote.mkdir()
        source = self.master / data
        if source.is_dir():
            shutil.copytree(source, self.repo / data, copy_function=os.link)
        else:
            os.link(source, self.repo / data)

    def fresh_added(self, kind: str, data: str, add: list[str]) -> None:
        self.fresh(kind, data)
        self.sh(*add)


def _remove(path: Path) -> None:
    if path.exists():
        subprocess.run(["chmod", "-R", "u+w", str(path)], check=False)
        shutil.rmtree(path)


def _write_data(master: Path) -> None:
    master.mkdir()
    chunk = 64 * 2**20
    with (master / "big.bin").open("wb") as handle:
        left = BIG_MB * 2**20
        while left:
            handle.write(os.urandom(min(chunk, left)))
            left -= min(chunk, left)
    small = master / "small"
    small.mkdir()
    for index in range(FILES):
        sub = small / f"{index % 100:02d}"
        sub.mkdir(exist_ok=True)
        (sub / f"{index:05d}.bin").write_bytes(os.urandom(FILE_KB * 1024))
    os.sync()


def interleaved(cases: list, env: dict) -> list[tuple[str, float]]:
    """Median seconds per case, running the cases in turn (one warm-up round, then RUNS rounds).

    Round-robin rather than one case after the other, so load from other processes on a shared machine
    spreads over every case instead of inflating whichever ran while it peaked.
    """
    samples: dict[str, list[float]] = {name: [] for name, *_ in cases}
    for round_ in range(1 + RUNS):
        for name, argv, cwd, setup in cases:
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
            if round_:
                samples[name].append(time.perf_counter() - started)
    return [(name, statistics.median(values)) for name, values in samples.items()]


def main() -> None:
    base = os.environ.get("MLKIT_BENCH_TMP") or None
    work = Path(tempfile.mkdtemp(prefix="mlkit-bench-data-", dir=base))
    bench = Bench(work)
    try:
        _write_data(bench.master)
        for kind in ("dvc", "dvc-hardlink", "mlkit"):
            bench.make_template(kind)
        md5sum_big = ["md5sum", str(bench.master / "big.bin")]
        md5sum_small = ["sh", "-c", f"find '{bench.master / 'small'}' -type f -print0 | xargs -0 md5sum"]

        def case(name: str, argv: list[str], kind: str | None, data: str, added: list[str] | None = None):
            if kind is None:
                return name, argv, work, None
            if added:
                return name, argv, bench.repo, lambda: bench.fresh_added(kind, data, added)
            return name, argv, bench.repo, lambda: bench.fresh(kind, data)

        big = interleaved(
            [
                case("md5sum", md5sum_big, None, "big.bin"),
                case("dvc add (defaults)", [DVC, "add", "-q", "big.bin"], "dvc", "big.bin"),
                case("dvc add (cache.type hardlink)", [DVC, "add", "-q", "big.bin"], "dvc-hardlink", "big.bin"),
                case("mlkit data add (first)", [MLKIT, "data", "add", "big.bin"], "mlkit", "big.bin"),
                case(
                    "dvc add again, unchanged (defaults)",
                    [DVC, "add", "-q", "big.bin"],
                    "dvc",
                    "big.bin",
                    added=[DVC, "add", "-q", "big.bin"],
                ),
                case(
                    "mlkit data add again, unchanged",
                    [MLKIT, "data", "add", "big.bin"],
                    "mlkit",
                    "big.bin",
                    added=[MLKIT, "data", "add", "big.bin"],
                ),
            ],
            bench.env,
        )
        report(
            f"one {BIG_MB} MiB random file, median of {RUNS}",
            big,
            baseline="md5sum",
            target="mlkit data add (first) <= 1.6x md5sum; again, unchanged <= 0.5x md5sum",
        )

        dvc_add_push = ["sh", "-c", f"'{DVC}' add -q small && '{DVC}' push -q"]
        mlkit_add_push = ["sh", "-c", f"'{MLKIT}' data add small && '{MLKIT}' data push"]
        small = interleaved(
            [
                case("md5sum", md5sum_small, None, "small"),
                case("dvc add (defaults)", [DVC, "add", "-q", "small"], "dvc", "small"),
                case("dvc push (defaults)", [DVC, "push", "-q"], "dvc", "small", added=[DVC, "add", "-q", "small"]),
                case("dvc add + push (defaults)", dvc_add_push, "dvc", "small"),
                case("mlkit data add", [MLKIT, "data", "add", "small"], "mlkit", "small"),
                case(
                    "mlkit data push", [MLKIT, "data", "push"], "mlkit", "small", added=[MLKIT, "data", "add", "small"]
                ),
                case("mlkit data add + push", mlkit_add_push, "mlkit", "small"),
            ],
            bench.env,
        )
        report(
            f"{FILES} files of {FILE_KB} KiB, median of {RUNS}",
            small,
            baseline="md5sum",
            target="mlkit data add + push at least 1.5x faster than dvc add + push (defaults)",
        )
        speedup = dict(small)["dvc add + push (defaults)"] / dict(small)["mlkit data add + push"]
        print(f"  add + push speed-up over DVC's defaults: {speedup:.2f}x")
    finally:
        _remove(work)


if __name__ == "__main__":
    main()
