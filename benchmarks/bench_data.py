"""`mlkit data add` / `push` against `md5sum` of the same data and plain `dvc add` / `dvc push`.

Two data sets, each measured in the same run against its baselines:
  * one random file of MLKIT_BENCH_DATA_BIG_MB MiB (default 1024);
  * a folder of MLKIT_BENCH_DATA_FILES files (default 10000) of MLKIT_BENCH_DATA_FILE_KB KiB (default 1).
Targets: 1 GiB first add <= 1.6x md5sum; re-add of unchanged data <= 0.5x md5sum; for the small files,
add + push at least 1.5x faster than DVC's defaults. Runs: MLKIT_BENCH_RUNS (default 5). Everything
lives in a temporary folder (MLKIT_BENCH_TMP, default the system's) that is removed at the end.

Every timed command is a fresh process, as a user runs it. Byte-code is cached in the temporary folder
(PYTHONPYCACHEPREFIX), so startup is measured as on an installed machine even where the environment
disables writing byte-code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import clean_env, mlkit_executable, report, time_command

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
        env = clean_env(CI="true", HOME=str(work / "home"), DVC_NO_ANALYTICS="1",
                        DVC_SITE_CACHE_DIR=str(self.site_cache), PYTHONPYCACHEPREFIX=str(work / "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env = env
        self.templates: dict[str, Path] = {}

    def sh(self, *argv: str, cwd: Path | None = None) -> None:
        subprocess.run(argv, cwd=cwd or self.repo, env=self.env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

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
        self.sh("git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "init",
                cwd=template)
        self.templates[kind] = template

    def fresh(self, kind: str, data: str) -> None:
        """A new repository of ``kind`` holding hard links to the master copy of ``data`` (no bytes copied)."""
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

        def timed(argv: list[str], kind: str | None, data: str, *, added: list[str] | None = None) -> float:
            if kind is None:
                return time_command(argv, runs=RUNS, cwd=work, env=bench.env)
            setup = ((lambda: bench.fresh_added(kind, data, added)) if added
                     else (lambda: bench.fresh(kind, data)))
            return time_command(argv, runs=RUNS, cwd=bench.repo, env=bench.env, setup=setup)

        big = [
            ("md5sum", timed(md5sum_big, None, "big.bin")),
            ("dvc add (defaults)", timed([DVC, "add", "-q", "big.bin"], "dvc", "big.bin")),
            ("dvc add (cache.type hardlink)", timed([DVC, "add", "-q", "big.bin"], "dvc-hardlink", "big.bin")),
            ("mlkit data add (first)", timed([MLKIT, "data", "add", "big.bin"], "mlkit", "big.bin")),
            ("dvc add again, unchanged (defaults)", timed(
                [DVC, "add", "-q", "big.bin"], "dvc", "big.bin", added=[DVC, "add", "-q", "big.bin"])),
            ("mlkit data add again, unchanged", timed(
                [MLKIT, "data", "add", "big.bin"], "mlkit", "big.bin", added=[MLKIT, "data", "add", "big.bin"])),
        ]
        report(f"one {BIG_MB} MiB random file, median of {RUNS}", big, baseline="md5sum",
               target="mlkit data add (first) <= 1.6x md5sum; again, unchanged <= 0.5x md5sum")

        dvc_add_push = ["sh", "-c", f"'{DVC}' add -q small && '{DVC}' push -q"]
        mlkit_add_push = ["sh", "-c", f"'{MLKIT}' data add small && '{MLKIT}' data push"]
        small = [
            ("md5sum", timed(md5sum_small, None, "small")),
            ("dvc add (defaults)", timed([DVC, "add", "-q", "small"], "dvc", "small")),
            ("dvc push (defaults)", timed([DVC, "push", "-q"], "dvc", "small", added=[DVC, "add", "-q", "small"])),
            ("dvc add + push (defaults)", timed(dvc_add_push, "dvc", "small")),
            ("mlkit data add", timed([MLKIT, "data", "add", "small"], "mlkit", "small")),
            ("mlkit data push", timed([MLKIT, "data", "push"], "mlkit", "small",
                                      added=[MLKIT, "data", "add", "small"])),
            ("mlkit data add + push", timed(mlkit_add_push, "mlkit", "small")),
        ]
        report(f"{FILES} files of {FILE_KB} KiB, median of {RUNS}", small, baseline="md5sum",
               target="mlkit data add + push at least 1.5x faster than dvc add + push (defaults)")
        speedup = dict(small)["dvc add + push (defaults)"] / dict(small)["mlkit data add + push"]
        print(f"  add + push speed-up over DVC's defaults: {speedup:.2f}x")
    finally:
        _remove(work)


if __name__ == "__main__":
    main()
