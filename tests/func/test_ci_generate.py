"""`mlkit ci generate` and `mlkit ci export` on real projects (git, DVC) made by `mlkit init`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import git
import pytest
import yaml
from _isolation import use_home

from mlkit import ci
from mlkit.errors import ExitCode
from mlkit.project import load_project

BIN = Path(sys.executable).parent
GITHUB_FILES = [path for path, _ in ci.FILES["github"]]
WORKFLOW_FILES = [path for path in GITHUB_FILES if path.startswith(".github/workflows/")]


@pytest.fixture(scope="module")
def base_projects(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """One project per bundled template, made once per module in an isolated HOME; tests get copies."""
    from mlkit.scaffold import init_project

    base = tmp_path_factory.mktemp("ci-projects")
    with pytest.MonkeyPatch.context() as patch:
        use_home(patch, base / "home")
        projects = {
            template: Path(
                init_project(
                    "churn",
                    template=template,
                    directory=base / template / "churn",
                    data_remote=base / template / "remote",
                ).root
            )
            for template in ("classification", "regression")
        }
    yield projects


@pytest.fixture
def project(base_projects: dict[str, Path], tmp_path: Path) -> Path:
    target = tmp_path / "churn"
    shutil.copytree(base_projects["classification"], target, symlinks=True)
    return target


def read(root: Path, paths: list[str]) -> dict[str, str]:
    return {p: (root / p).read_text() for p in paths}


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def edit_config(root: Path, old: str, new: str) -> None:
    text = (root / "mlkit.yaml").read_text()
    assert old in text
    (root / "mlkit.yaml").write_text(text.replace(old, new))


def test_init_commits_the_ci_files_and_they_match_mlkit_yaml(cli, base_projects):
    for root in base_projects.values():
        repo = git.Repo(root)
        assert repo.git.status("--porcelain") == ""
        assert sorted(repo.git.ls_files(".github").splitlines()) == sorted(GITHUB_FILES)
        result = cli("ci", "generate", "--check", cwd=root)
        assert result.exit_code == 0, result.output
        assert result.stdout.count("up to date") == 5
        assert repo.git.status("--porcelain") == ""


def test_generate_is_idempotent(cli, project):
    before = read(project, GITHUB_FILES)
    result = cli("ci", "generate", "--json", cwd=project)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["provider"] == "github" and data["check"] is False and data["up_to_date"] is True
    assert [(f["path"], f["status"]) for f in data["files"]] == [(p, "unchanged") for p in GITHUB_FILES]
    assert read(project, GITHUB_FILES) == before


def test_check_shows_a_diff_and_exits_1_when_mlkit_yaml_changed(cli, project):
    before = read(project, GITHUB_FILES)
    edit_config(project, 'python: "3.11"', 'python: "3.12"')
    result = cli("ci", "generate", "--check", cwd=project)
    assert result.exit_code == 1
    assert "--- a/.github/workflows/mlkit.yml\n+++ b/.github/workflows/mlkit.yml\n" in result.stdout
    assert '-          python-version: "3.11"\n' in result.stdout
    assert '+          python-version: "3.12"\n' in result.stdout
    assert error_line(result.stderr) == (
        "error: 4 CI file(s) differ from what mlkit.yaml gives: .github/workflows/mlkit.yml, "
        ".github/workflows/mlkit-promote.yml, .github/workflows/mlkit-retrain.yml, .github/workflows/mlkit-monitor.yml"
    )
    assert "hint: run `mlkit ci generate` and commit the result" in result.stderr
    assert read(project, GITHUB_FILES) == before  # --check writes nothing

    result = cli("ci", "generate", cwd=project)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("regenerated") == 4
    assert all('python-version: "3.12"' in text for text in read(project, WORKFLOW_FILES).values())
    assert cli("ci", "generate", "--check", cwd=project).exit_code == 0


def test_check_from_python_raises_with_the_result_and_writes_nothing(project):
    before = read(project, GITHUB_FILES)
    edit_config(project, 'python: "3.11"', 'python: "3.12"')
    loaded = load_project(project)
    with pytest.raises(ci.CIOutOfDateError) as caught:
        ci.generate(loaded.root, loaded.config, check=True)
    assert caught.value.exit_code == ExitCode.FAILED
    assert caught.value.hint == "run `mlkit ci generate` and commit the result"
    result = caught.value.result
    assert (result.check, result.up_to_date) == (True, False)
    # the Python version is in the workflows, not in dependabot.yml
    expected = [(p, "unchanged" if p.endswith("dependabot.yml") else "differs") for p in GITHUB_FILES]
    assert [(f.path, f.status) for f in result.files] == expected
    assert '+          python-version: "3.12"\n' in result.files[0].diff
    assert read(project, GITHUB_FILES) == before


def test_hand_edited_files_are_kept_without_force(cli, project):
    edit_config(project, 'python: "3.11"', 'python: "3.12"')
    workflow = project / ".github/workflows/mlkit.yml"
    edited = workflow.read_text().replace("python -m pytest -q", "python -m pytest -q -x")
    workflow.write_text(edited)
    before = read(project, GITHUB_FILES)

    result = cli("ci", "generate", cwd=project)
    assert result.exit_code == 2
    assert error_line(result.stderr) == (
        "error: .github/workflows/mlkit.yml edited by hand (not as generated by mlkit); nothing was written"
    )
    assert "hint: move your changes into mlkit.yaml, or pass --force to overwrite" in result.stderr
    assert read(project, GITHUB_FILES) == before  # not even the files nobody edited

    result = cli("ci", "generate", "--force", "--json", cwd=project)
    assert result.exit_code == 0, result.output
    statuses = {f["path"]: f["status"] for f in json.loads(result.stdout)["files"]}
    assert statuses == {
        ".github/workflows/mlkit.yml": "replaced",
        ".github/workflows/mlkit-promote.yml": "updated",
        ".github/workflows/mlkit-retrain.yml": "updated",
        ".github/workflows/mlkit-monitor.yml": "updated",
        ".github/dependabot.yml": "unchanged",
    }
    assert "-q -x" not in workflow.read_text()
    assert all('python-version: "3.12"' in text for text in read(project, WORKFLOW_FILES).values())


def test_a_file_without_the_header_counts_as_hand_written(cli, project):
    (project / ".gitlab-ci.yml").write_text("test:\n  script: [pytest]\n")
    result = cli("ci", "generate", "--provider", "gitlab", cwd=project)
    assert result.exit_code == 2
    assert error_line(result.stderr) == (
        "error: .gitlab-ci.yml edited by hand (not as generated by mlkit); nothing was written"
    )
    assert (project / ".gitlab-ci.yml").read_text() == "test:\n  script: [pytest]\n"


def test_gitlab_provider_writes_the_pipeline_and_leaves_github_alone(cli, project):
    before = read(project, GITHUB_FILES)
    result = cli("ci", "generate", "--provider", "gitlab", cwd=project)
    assert result.exit_code == 0, result.output
    assert "written" in result.stdout
    pipeline = yaml.safe_load((project / ".gitlab-ci.yml").read_text())
    assert pipeline["default"]["image"] == "python:3.11"
    assert read(project, GITHUB_FILES) == before
    # the configured provider is still github, so a plain check looks at the workflows
    assert cli("ci", "generate", "--check", cwd=project).exit_code == 0
    edit_config(project, "provider: github", "provider: gitlab")
    assert cli("ci", "generate", "--check", cwd=project).exit_code == 0


def test_unknown_provider_exits_2(cli, project):
    result = cli("ci", "generate", "--provider", "jenkins", cwd=project)
    assert result.exit_code == 2
    assert error_line(result.stderr) == "error: unknown CI provider 'jenkins'; allowed: github, gitlab"
    assert not (project / "Jenkinsfile").exists()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("provider: github", "provider: circleci", "mlkit.yaml: ci.provider: must be 'github' or 'gitlab'"),
        ('python: "3.11"', 'python: "2.7"', "mlkit.yaml: ci.python: must be a Python version like 3.11"),
        (
            "default_branch: main",
            "default_branch: 'my branch'",
            "mlkit.yaml: ci.default_branch: 'my branch' is not a branch name like main or release/v1",
        ),
        (
            "tracking_uri: MLFLOW_TRACKING_URI",
            "tracking_uri: mlflow-uri",
            "mlkit.yaml: ci.secrets.tracking_uri: 'mlflow-uri' is not a secret name (letters, digits and _, "
            "not starting with a digit)",
        ),
        (
            "production_environment: production",
            "production_environment: production\n  schedule: daily",
            "mlkit.yaml: ci.schedule: 'daily' must be a cron expression of 5 fields, e.g. '0 4 * * 1'",
        ),
        (
            "production_environment: production",
            "production_environment: production\n  oidc: {aws_role: 'role/ci', aws_region: eu-central-1}",
            "mlkit.yaml: ci.oidc.aws_role: 'role/ci' is not an IAM role ARN like "
            "arn:aws:iam::123456789012:role/mlkit-ci",
        ),
        (
            "production_environment: production",
            "production_environment: production\n  runner: big",
            "mlkit.yaml: ci.runner: unknown field; allowed: provider, python, default_branch, schedule, "
            "monitor_schedule, production_environment, install, pull_request_environment, secrets, oidc",
        ),
    ],
)
def test_bad_ci_settings_exit_2_and_write_nothing(cli, project, old, new, message):
    before = read(project, GITHUB_FILES)
    edit_config(project, old, new)
    for args in (("ci", "generate"), ("ci", "generate", "--provider", "gitlab")):
        result = cli(*args, cwd=project)
        assert result.exit_code == 2
        assert error_line(result.stderr) == f"error: {message}"
    assert read(project, GITHUB_FILES) == before
    assert not (project / ".gitlab-ci.yml").exists()


def test_outside_a_project_exits_2(cli, tmp_path):
    result = cli("ci", "generate", cwd=tmp_path)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: not inside an mlkit project (no mlkit.yaml in {tmp_path.resolve()} or any parent)",
        "hint: run `mlkit init NAME` to create one, or cd into a project",
    ]


def test_export_writes_gitlab_reports(cli, tmp_path):
    (tmp_path / "train.json").write_text(json.dumps({"run_id": "r1", "version": "4", "metrics": {"f1": 0.9}}))
    result = cli(
        "ci", "export", "train.json", "--dotenv", "train.env", "--metrics", "metrics.txt", "--json", cwd=tmp_path
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"MLKIT_RUN_ID": "r1", "MLKIT_VERSION": "4", "MLKIT_METRIC_F1": "0.9"}
    assert (tmp_path / "train.env").read_text() == "MLKIT_RUN_ID=r1\nMLKIT_VERSION=4\nMLKIT_METRIC_F1=0.9\n"
    assert (tmp_path / "metrics.txt").read_text() == "f1 0.9\n"

    result = cli("ci", "export", "missing.json", "--dotenv", "x.env", cwd=tmp_path)
    assert result.exit_code == 2
    assert error_line(result.stderr) == "error: missing.json: file not found"
    assert not (tmp_path / "x.env").exists()


# --- action pins moved by Dependabot -----------------------------------------------------------------

CHECKOUT = ci.ACTIONS["checkout"]


def _move_checkout_pin(project: Path, sha: str, version: str) -> str:
    workflow = project / ".github/workflows/mlkit.yml"
    text = workflow.read_text()
    old = f"uses: {CHECKOUT.uses} # {CHECKOUT.version}"
    assert old in text
    moved = text.replace(old, f"uses: {CHECKOUT.repository}@{sha} # {version}")
    workflow.write_text(moved)
    return moved


def test_a_newer_pin_from_dependabot_is_kept(cli, project):
    moved = _move_checkout_pin(project, "1" * 40, "v99.0.0")
    check = cli("ci", "generate", "--check", cwd=project)
    assert check.exit_code == 0, check.output  # the dependabot pull request passes its own CI check
    result = cli("ci", "generate", "--json", cwd=project)
    assert result.exit_code == 0, result.output
    assert (project / ".github/workflows/mlkit.yml").read_text() == moved
    assert {f["status"] for f in json.loads(result.stdout)["files"]} == {"unchanged"}


def test_an_older_pin_is_brought_up_to_mlkit_s_own(cli, project):
    _move_checkout_pin(project, "2" * 40, "v1.0.0")
    check = cli("ci", "generate", "--check", cwd=project)
    assert check.exit_code == 1
    assert f"+        uses: {CHECKOUT.uses} # {CHECKOUT.version}\n" in check.stdout
    result = cli("ci", "generate", cwd=project)
    assert result.exit_code == 0, result.output  # a pin alone is not a hand edit
    assert f"uses: {CHECKOUT.uses} # {CHECKOUT.version}" in (project / ".github/workflows/mlkit.yml").read_text()


def test_an_edit_beside_the_pins_is_still_a_hand_edit(cli, project):
    moved = _move_checkout_pin(project, "1" * 40, "v99.0.0")
    (project / ".github/workflows/mlkit.yml").write_text(moved.replace("timeout-minutes: 30", "timeout-minutes: 5"))
    result = cli("ci", "generate", cwd=project)
    assert result.exit_code == 2
    assert error_line(result.stderr) == (
        "error: .github/workflows/mlkit.yml edited by hand (not as generated by mlkit); nothing was written"
    )


# --- validators ---------------------------------------------------------------------------------


def _validate(root: Path, provider: str) -> None:
    if provider == "github":
        files = [str(root / p) for p in WORKFLOW_FILES]
        dependabot = subprocess.run(
            [
                str(BIN / "check-jsonschema"),
                "--builtin-schema",
                "vendor.dependabot",
                str(root / ".github/dependabot.yml"),
            ],
            capture_output=True,
            text=True,
        )
        assert dependabot.returncode == 0, dependabot.stdout + dependabot.stderr
        schema = subprocess.run(
            [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files],
            capture_output=True,
            text=True,
        )
        assert schema.returncode == 0, schema.stdout + schema.stderr
        audit = subprocess.run(
            [str(BIN / "zizmor"), "--offline", "--no-progress", "--format", "json", *files],
            capture_output=True,
            text=True,
        )
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert json.loads(audit.stdout) == []
    else:
        schema = subprocess.run(
            [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", str(root / ".gitlab-ci.yml")],
            capture_output=True,
            text=True,
        )
        assert schema.returncode == 0, schema.stdout + schema.stderr


@pytest.mark.slow
@pytest.mark.parametrize("template", ["classification", "regression"])
@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_generated_files_pass_the_validators(cli, base_projects, tmp_path, template, provider):
    root = tmp_path / "churn"
    shutil.copytree(base_projects[template], root, symlinks=True)
    result = cli("ci", "generate", "--provider", provider, cwd=root)
    assert result.exit_code == 0, result.output
    _validate(root, provider)


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_every_setting_in_use_passes_the_validators(cli, project, provider):
    edit_config(project, "stages: [staging, production]", "stages: [dev, staging, production]")
    edit_config(
        project,
        "production_environment: production\n",
        "production_environment: prod-approval\n  schedule: '15 3 * * 2-6'\n",
    )
    edit_config(
        project,
        "    tracking_uri: MLFLOW_TRACKING_URI\n",
        "    tracking_uri: MLFLOW_TRACKING_URI\n    tracking_token: MLFLOW_TOKEN\n"
        "    data_remote: DVC_REMOTE_URL\n    data_remote_access_key_id: AWS_ACCESS_KEY_ID\n"
        "    data_remote_secret_access_key: S3_SECRET\n"
        "  oidc:\n    aws_role: arn:aws:iam::123456789012:role/mlkit-ci\n"
        "    aws_region: eu-central-1\n",
    )
    result = cli("ci", "generate", "--provider", provider, "--force", cwd=project)
    assert result.exit_code == 0, result.output
    _validate(project, provider)
