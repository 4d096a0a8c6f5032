"""The installed `mlkit ci` command in a subprocess, as a developer and as a GitHub Actions step run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

MLKIT = str(Path(sys.executable).with_name("mlkit"))


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLKIT_", "MLFLOW_"))}
    return subprocess.run(
        [MLKIT, *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, env={**clean, **env}
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("ci-e2e")
    result = run(
        "init",
        "churn",
        "--data-remote",
        str(base / "remote"),
        cwd=base,
        CI="true",
        GIT_AUTHOR_NAME="Test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="Test",
        GIT_COMMITTER_EMAIL="test@example.com",
    )
    assert result.returncode == 0, result.stderr
    return base / "churn"


def test_a_new_project_passes_its_own_ci_check(project):
    result = run("ci", "generate", "--check", cwd=project / "src")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("up to date") == 5
    status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True, check=True)
    assert status.stdout == ""


def test_check_as_a_github_actions_step(project, tmp_path):
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    result = run(
        "ci",
        "generate",
        "--check",
        "--provider",
        "gitlab",
        cwd=project,
        GITHUB_ACTIONS="true",
        CI="true",
        GITHUB_STEP_SUMMARY=str(summary),
        GITHUB_OUTPUT=str(output),
    )
    assert result.returncode == 1
    assert result.stdout.startswith("--- /dev/null\n+++ b/.gitlab-ci.yml\n")
    assert "::" not in result.stdout
    assert result.stderr.splitlines()[-3:] == [
        "error: 1 CI file(s) differ from what mlkit.yaml gives: .gitlab-ci.yml",
        "hint: run `mlkit ci generate` and commit the result",
        "::error::1 CI file(s) differ from what mlkit.yaml gives: .gitlab-ci.yml "
        "(run `mlkit ci generate` and commit the result)",
    ]
    assert "| .gitlab-ci.yml | missing |" in summary.read_text()
    assert output.read_text() == "ci_provider=gitlab\nci_up_to_date=false\nci_changed=.gitlab-ci.yml\n"
    assert not (project / ".gitlab-ci.yml").exists()


def test_bad_provider_is_exit_2_with_one_line(project):
    result = run("ci", "generate", "--provider", "travis", cwd=project)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: unknown CI provider 'travis'; allowed: github, gitlab",
        "hint: run `mlkit ci generate --provider github` or `--provider gitlab`",
    ]
