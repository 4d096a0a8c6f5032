"""The generated `.gitlab-ci.yml` played locally: the train job's script and the promotion that reads
the train job's dotenv report, as a GitLab runner would run them on a push to the default branch."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _isolation import use_home

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def base_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from mlkit.scaffold import init_project

    base = tmp_path_factory.mktemp("gitlab")
    with pytest.MonkeyPatch.context() as patch:
        use_home(patch, base / "home")
        root = Path(init_project("churn", directory=base / "churn", data_remote=base / "remote").root)
        text = (root / "mlkit.yaml").read_text().replace("provider: github", "provider: gitlab")
        (root / "mlkit.yaml").write_text(text)
        from mlkit.ci import generate
        from mlkit.config import load_config

        generate(root, load_config(root)[0])
        subprocess.run(["git", "add", "-A"], cwd=root, check=True)
        subprocess.run(["git", "commit", "-qm", "CI on GitLab"], cwd=root, check=True)
        yield root


def play(job: dict[str, Any], pipeline: dict[str, Any], project: Path, env: dict[str, str]) -> str:
    """Run a job's before_script (without the network install) and script in one shell, as GitLab does."""
    lines = [line for line in pipeline["default"]["before_script"] if "pip install" not in line]
    script = "set -eo pipefail\n" + "\n".join(lines + job["script"]) + "\n"
    variables = {k: str(v) for k, v in pipeline["variables"].items()}
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", script],
        cwd=project,
        capture_output=True,
        text=True,
        env={**env, **variables},
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return done.stdout


def read_dotenv(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


@pytest.mark.slow
def test_a_push_pipeline_trains_reports_and_promotes(base_project, tmp_path):
    project = tmp_path / "churn"
    shutil.copytree(base_project, project, symlinks=True)
    pipeline = yaml.safe_load((project / ".gitlab-ci.yml").read_text())
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLKIT_", "MLFLOW_", "CI"))}
    env = {
        **keep,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_PIPELINE_SOURCE": "push",
        "CI_COMMIT_BRANCH": "main",
        "CI_PROJECT_DIR": str(project),
        # the tracking server every job of the pipeline reaches (a CI/CD variable)
        "MLKIT_TRACKING_URI": f"sqlite:///{tmp_path / 'tracking.db'}",
    }

    play(pipeline["test"], pipeline, project, env)
    play(pipeline["train"], pipeline, project, env)
    reports = pipeline["train"]["artifacts"]["reports"]
    dotenv = read_dotenv(project / reports["dotenv"])
    assert dotenv["MLKIT_MODEL_NAME"] == "churn" and dotenv["MLKIT_MODEL_VERSION"] == "1"
    assert len(dotenv["MLKIT_RUN_ID"]) == 32
    metrics = dict(line.split(" ") for line in (project / reports["metrics"]).read_text().splitlines())
    assert set(metrics) == {"accuracy", "f1", "roc_auc", "precision", "recall", "log_loss"}
    comparison = (project / "comparison.md").read_text()
    assert comparison.startswith(
        "### churn: this run against production\n\n"
        "No production model of churn to compare with yet.\n\n"
        "| metric | production | this run ("
    )
    listed = re.findall(r"^\| ([a-z0-9_]+) \|", comparison, flags=re.MULTILINE)
    assert listed[0] == "metric" and "fit_seconds" not in listed  # every metric of the run, timing apart
    assert {"accuracy", "f1", "roc_auc", "precision", "recall", "log_loss"} <= set(listed)
    assert "\nTiming (not compared): fit_seconds " in comparison

    # the promotion job gets the train job's dotenv variables, as `needs: [train]` passes them
    promote = pipeline["promote-staging"]
    assert promote["needs"] == ["train"]
    out = play(promote, pipeline, project, {**env, **dotenv})
    assert '"stage": "staging"' in out and '"status": "promoted"' in out

    # a person starts the manual production job of the same pipeline
    production = pipeline["promote-production"]
    assert production["rules"][0]["when"] == "manual" and production["environment"]["name"] == "production"
    out = play(production, pipeline, project, {**env, **dotenv})
    assert '"stage": "production"' in out and '"status": "promoted"' in out

    # a merge request, from a fresh checkout, is trained without registering and compared with production
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=project, check=True)
    subprocess.run(["git", "clean", "-fdq"], cwd=project, check=True)
    params = (project / "params.yaml").read_text().replace("max_depth: 4", "max_depth: 2")
    (project / "params.yaml").write_text(params)
    subprocess.run(["git", "commit", "-qam", "shallower trees"], cwd=project, check=True)
    merge_request = {**env, "CI_PIPELINE_SOURCE": "merge_request_event", "CI_COMMIT_BRANCH": ""}
    play(pipeline["train"], pipeline, project, merge_request)
    assert "MLKIT_MODEL_VERSION" not in read_dotenv(project / reports["dotenv"])  # null: not registered
    comparison = (project / "comparison.md").read_text()
    assert comparison.startswith("### churn: this run against production\n\n| metric | production (")
    assert "\n| param | estimator.max_depth | 4 | 2 |\n" in comparison
    assert "\n| f1 | " in comparison and "\nTiming (not compared): fit_seconds " in comparison
