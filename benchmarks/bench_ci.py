"""`mlkit ci generate` and its share of `mlkit init`.

Commands: `mlkit ci generate --check` and a GitLab generation against `mlkit --version` (the start-up
floor). In process: rendering a new project's CI files (what `mlkit init` pays) against reading
mlkit.yaml alone. Targets: `mlkit ci generate --check` <= 1.5 s median; the CI files add <= 0.1 s to
`mlkit init`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from _timing import clean_env, mlkit_executable, report, time_call, time_command

RUNS = int(os.environ.get("MLKIT_BENCH_RUNS", "7"))


def main() -> None:
    from mlkit.ci import generate_for_new_project
    from mlkit.scaffold import init_project

    work = Path(tempfile.mkdtemp(prefix="mlkit-bench-ci-"))
    env = clean_env(CI="true", HOME=str(work / "home"))
    saved = dict(os.environ)
    os.environ.update(
        HOME=str(work / "home"),
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@localhost",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@localhost",
    )
    try:
        root = Path(init_project("churn", directory=work / "churn", data_remote=work / "remote").root)
        mlkit = mlkit_executable()

        def drop_gitlab() -> None:
            (root / ".gitlab-ci.yml").unlink(missing_ok=True)

        rows = [
            ("mlkit --version", time_command([mlkit, "--version"], runs=RUNS, cwd=root, env=env)),
            (
                "mlkit ci generate --check",
                time_command([mlkit, "ci", "generate", "--check"], runs=RUNS, cwd=root, env=env),
            ),
            (
                "mlkit ci generate --provider gitlab",
                time_command(
                    [mlkit, "ci", "generate", "--provider", "gitlab"], runs=RUNS, cwd=root, env=env, setup=drop_gitlab
                ),
            ),
        ]
        report(
            f"mlkit ci generate, median of {RUNS}",
            rows,
            baseline="mlkit --version",
            target="mlkit ci generate --check <= 1.5 s median",
        )

        def read_settings() -> None:
            import yaml

            yaml.safe_load((root / "mlkit.yaml").read_text())

        scratch = work / "scratch"

        def fresh() -> None:
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir()
            shutil.copy(root / "mlkit.yaml", scratch / "mlkit.yaml")

        rows = [
            ("read mlkit.yaml (PyYAML)", time_call(read_settings, runs=RUNS * 3, warmup=1)),
            (
                "CI files for a new project (init's share)",
                time_call(lambda: generate_for_new_project(scratch), runs=RUNS * 3, setup=fresh, warmup=1),
            ),
        ]
        report(
            f"in process, median of {RUNS * 3}",
            rows,
            baseline="read mlkit.yaml (PyYAML)",
            target="CI files add <= 0.1 s to mlkit init",
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
