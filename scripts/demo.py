"""mlkit's main job end to end on the embedded defaults, in a temporary folder.

Each step is a real `mlkit` command run the way a user types it; the project is left in place so you
can look around afterwards.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
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
    run("data sets DVC tracks: size, md5, file count, in the cache, in the remote", "data", "ls", cwd=project)
    run("upload them to the project's DVC remote", "data", "push", cwd=project)
    # another machine has the git repository but neither the DVC cache nor the data
    shutil.rmtree(project / ".dvc" / "cache")
    (project / "data" / "breast_cancer.csv").unlink()
    run("another machine: pull brings back exactly those bytes", "data", "pull", cwd=project)
    run("every workspace copy matches its .dvc file", "data", "status", cwd=project)
    reference = project / "data" / "reference"
    reference.mkdir()
    for name in ("thresholds.csv", "segments.csv"):
        (reference / name).write_text("name,value\nlow,0.2\nhigh,0.8\n")
    run(
        "track a folder; its .dvc file and .gitignore line are committed, nothing else",
        "data",
        "add",
        "data/reference",
        "--commit",
        "-m",
        "Add reference data",
        cwd=project,
    )
    run("the folder is one data set: a .dir md5 and its file count, not pushed yet", "data", "ls", cwd=project)
    # -- training --------------------------------------------------------------------------------
    run("train: fit, evaluate, log lineage to MLflow, register version 1", "train", cwd=project)
    run("train again with a param override", "train", "--set", "params.estimator.max_depth=2", cwd=project)
    run("the runs, newest first", "runs", "list", "--limit", "5", cwd=project)
    listed = subprocess.run(
        [MLKIT, "runs", "list", "--limit", "2", "--json"], cwd=project, capture_output=True, text=True, check=True
    )
    newest, previous = (r["run_id"] for r in json.loads(listed.stdout))
    run(
        "what changed between the two runs (Markdown for a PR comment)",
        "runs",
        "compare",
        previous,
        newest,
        "--format",
        "markdown",
        cwd=project,
    )
    run("one run: params, metrics, lineage, artifacts", "runs", "show", newest, cwd=project)
    # training rewrote metrics.json and the train stage in dvc.lock: `dvc status` stays clean, commit them
    subprocess.run(
        ["git", "commit", "-q", "-m", "Train: metrics and pipeline lock", "--", "metrics.json", "dvc.lock"],
        cwd=project,
        check=True,
    )
    # -- promotion -------------------------------------------------------------------------------
    run(
        "promote version 1 to staging through its gates (promotion.staging in mlkit.yaml)",
        "promote",
        "churn",
        "1",
        "--to",
        "staging",
        "--reason",
        "first model",
        cwd=project,
    )
    run(
        "dry run: would staging -> production pass? nothing changes",
        "promote",
        "churn",
        "--from",
        "staging",
        "--to",
        "production",
        "--dry-run",
        cwd=project,
    )
    run(
        "promote whatever holds staging to production",
        "promote",
        "churn",
        "--from",
        "staging",
        "--to",
        "production",
        "--reason",
        "first release",
        cwd=project,
    )
    refused = run(
        "skipping staging is refused by the previous_stage gate: exit code 3, nothing changed",
        "promote",
        "churn",
        "2",
        "--to",
        "production",
        cwd=project,
        check=False,
    )
    if refused.returncode != 3:
        sys.exit(f"demo: expected exit code 3 from a refused promotion, got {refused.returncode}")
    run("version 2 to staging", "promote", "churn", "2", "--to", "staging", cwd=project)
    second = run(
        "staging -> production again: must beat version 1 on f1 (ties pass at margin 0)",
        "promote",
        "churn",
        "--from",
        "staging",
        "--to",
        "production",
        "--reason",
        "shallower trees",
        cwd=project,
        check=False,
    )
    if second.returncode not in (0, 3):
        sys.exit(f"demo: promotion failed ({second.returncode})")
    run("the registry: which version holds which stage", "models", "list", cwd=project)
    run(
        "production's model: metrics, run, commit, data md5s, params, who promoted it",
        "models",
        "show",
        "churn@production",
        cwd=project,
    )
    if second.returncode == 0:
        run(
            "roll production back to the version before",
            "rollback",
            "churn",
            "--stage",
            "production",
            "--reason",
            "demo rollback",
            cwd=project,
        )
    run("the audit trail: every promotion, refusal and rollback", "models", "history", "churn", cwd=project)
    # -- reproduce -------------------------------------------------------------------------------
    run(
        "prove what is in production: rebuild it from its commit, data md5s, params and seed in a clean "
        "worktree, compare every metric and the predictions",
        "reproduce",
        "churn@production",
        cwd=project,
    )
    # -- ci --------------------------------------------------------------------------------------
    run("CI files from mlkit init match mlkit.yaml", "ci", "generate", "--check", cwd=project)
    settings = project / "mlkit.yaml"
    settings.write_text(settings.read_text().replace('python: "3.11"', 'python: "3.12"'))
    stale = run(
        "after a settings change --check shows the diff and exits 1",
        "ci",
        "generate",
        "--check",
        cwd=project,
        check=False,
    )
    if stale.returncode != 1:
        sys.exit(f"demo: expected exit code 1 from a stale check, got {stale.returncode}")
    run("regenerate the workflows", "ci", "generate", cwd=project)
    run("a GitLab pipeline from the same settings", "ci", "generate", "--provider", "gitlab", cwd=project)
    subprocess.run(["git", "add", "mlkit.yaml", ".github", ".gitlab-ci.yml"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "CI on Python 3.12, GitLab pipeline"], cwd=project, check=True)
    # what a GitHub Actions step sees: the result in the step summary, key values in the step outputs
    runner = base / "runner"
    runner.mkdir()
    actions_env = {
        **os.environ,
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(runner / "summary.md"),
        "GITHUB_OUTPUT": str(runner / "output.txt"),
    }
    print("\n\033[1m== inside GitHub Actions\033[0m\n$ GITHUB_ACTIONS=true mlkit ci generate --check", flush=True)
    subprocess.run([MLKIT, "ci", "generate", "--check"], cwd=project, env=actions_env, check=True)
    print(
        f"\n$GITHUB_STEP_SUMMARY:\n{(runner / 'summary.md').read_text()}"
        f"$GITHUB_OUTPUT:\n{(runner / 'output.txt').read_text()}",
        flush=True,
    )
    # -- serving and monitoring ----------------------------------------------------------------------
    from demo_serve import serve_and_monitor

    serve_and_monitor(run, project, "data/breast_cancer.csv", "diagnosis")
    # -- team and scale -----------------------------------------------------------------------------
    from demo_scale import team_and_scale

    team_and_scale(run, base, project)
    print(f"\nDone. The project is in {project}\n  cd {project} && git log --oneline && mlkit config show")


if __name__ == "__main__":
    main()
