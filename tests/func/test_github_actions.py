"""mlkit inside GitHub Actions, with the environment a runner sets: step summary, step outputs, error
annotations; and nothing of that outside Actions. The generated workflows are played job by job in
test_ci_play.py."""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _ciplay import parse_outputs
from _isolation import isolate

BIN = Path(sys.executable).parent


@dataclass
class Runner:
    """The files and variables a GitHub runner gives a step."""

    root: Path
    summary: Path
    output: Path

    def outputs(self) -> dict[str, str]:
        return parse_outputs(self.output.read_text()) if self.output.exists() else {}


@pytest.fixture
def actions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runner:
    folder = tmp_path / "runner"
    runner = Runner(folder, folder / "summary.md", folder / "output.txt")
    runner.root.mkdir()
    runner.summary.touch()
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(runner.summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(runner.output))
    return runner


@pytest.fixture(scope="module")
def base_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project made once per module (isolated HOME); tests work on copies."""
    from mlkit.scaffold import init_project

    base = tmp_path_factory.mktemp("gha")
    with pytest.MonkeyPatch.context() as patch:
        isolate(patch, base / "home")
        yield Path(init_project("churn", directory=base / "churn", data_remote=base / "remote").root)


@pytest.fixture
def project(base_project: Path, tmp_path: Path) -> Path:
    target = tmp_path / "churn"
    shutil.copytree(base_project, target, symlinks=True)
    return target


# --- one command at a time -------------------------------------------------------------------------


def test_init_reports_to_the_summary_and_outputs(cli, actions, tmp_path):
    result = cli("init", "churn", "--data-remote", str(tmp_path / "remote"), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    root = tmp_path / "churn"
    summary = actions.summary.read_text()
    assert summary.startswith("### mlkit init churn\n\n|  |  |\n| --- | --- |\n")
    assert "| template | classification |" in summary
    outputs = actions.outputs()
    assert outputs["project"] == str(root)
    assert re.fullmatch(r"[0-9a-f]{40}", outputs["commit"])
    assert "::" not in result.stdout + result.stderr  # no annotation when all went well


def test_config_show_reports_to_the_summary_and_outputs(cli, actions, project):
    result = cli("config", "show", "--json", cwd=project)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["experiment"] == "churn"  # stdout stays pure JSON
    summary = actions.summary.read_text()
    assert summary.startswith("### mlkit config show\n\n| key | value |\n")
    assert f"| root | {project} |" in summary
    assert "| config.ci.provider | github |" in summary
    assert actions.outputs() == {
        "root": str(project),
        "tracking_uri": f"sqlite:///{project}/.mlkit/mlflow.db",
        "experiment": "churn",
        "model_name": "churn",
    }


def test_ci_check_reports_the_diff_to_the_summary(cli, actions, project):
    text = (project / "mlkit.yaml").read_text().replace('python: "3.11"', 'python: "3.12"')
    (project / "mlkit.yaml").write_text(text)
    result = cli("ci", "generate", "--check", cwd=project)
    assert result.exit_code == 1
    summary = actions.summary.read_text()
    assert summary.startswith("### mlkit ci generate (github)\n\n| file | status |\n")
    assert "| .github/workflows/mlkit.yml | differs from mlkit.yaml |" in summary
    assert "\n```diff\n--- a/.github/workflows/mlkit.yml\n" in summary
    assert '+          python-version: "3.12"\n' in summary
    assert actions.outputs() == {
        "ci_provider": "github",
        "ci_up_to_date": "false",
        "ci_changed": ".github/workflows/mlkit.yml,.github/workflows/mlkit-promote.yml,"
        ".github/workflows/mlkit-retrain.yml,.github/workflows/mlkit-monitor.yml",
    }
    assert "::" not in result.stdout  # the diff alone: annotations go to stderr
    assert result.stderr.splitlines()[-1] == (
        "::error::4 CI file(s) differ from what mlkit.yaml gives: .github/workflows/mlkit.yml, "
        ".github/workflows/mlkit-promote.yml, .github/workflows/mlkit-retrain.yml, .github/workflows/mlkit-monitor.yml "
        "(run `mlkit ci generate` and commit the result)"
    )


def test_failures_become_error_annotations(cli, actions, project):
    result = cli("ci", "generate", "--provider", "jenkins", cwd=project)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: unknown CI provider 'jenkins'; allowed: github, gitlab",
        "hint: run `mlkit ci generate --provider github` or `--provider gitlab`",
        "::error::unknown CI provider 'jenkins'; allowed: github, gitlab "
        "(run `mlkit ci generate --provider github` or `--provider gitlab`)",
    ]
    assert actions.summary.read_text() == ""
    assert not actions.output.exists()


def test_ci_export_reports_its_variables(cli, actions, tmp_path):
    (tmp_path / "train.json").write_text(json.dumps({"run_id": "r1", "metrics": {"f1": 0.9}}))
    result = cli("ci", "export", "train.json", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert actions.summary.read_text() == (
        "### mlkit ci export train.json\n\n| variable | value |\n| --- | --- |\n"
        "| MLKIT_RUN_ID | r1 |\n| MLKIT_METRIC_F1 | 0.9 |\n\n"
    )
    assert actions.outputs() == {"MLKIT_RUN_ID": "r1", "MLKIT_METRIC_F1": "0.9"}


def test_multiline_messages_stay_one_annotation(actions, capsys):
    from mlkit.cli import _output

    _output.github_annotation("error", "first line\r\nsecond line, 100% sure")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "::error::first line%0D%0Asecond line, 100%25 sure\n"


def test_a_refused_or_failed_promotion_is_an_annotation(cli, actions, project):
    result = cli("promote", "churn", "7", "--to", "staging", cwd=project)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        "::error::no registered model 'churn' in the registry (`mlkit models list` shows the registered models)"
    )


def test_init_never_prompts_in_ci(cli, actions, tmp_path):
    result = cli("init", cwd=tmp_path, input="churn\n")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == "::error::missing project NAME (run `mlkit init NAME`)"
    assert list(tmp_path.iterdir()) == [actions.root]


def test_warnings_stay_out_of_a_json_result(cli, actions, tmp_path):
    template = Path(__file__).parents[1] / "data" / "custom-template"
    result = cli(
        "init",
        "custom",
        "--template",
        str(template),
        "--trust-template",
        "--json",
        "--data-remote",
        str(tmp_path / "r"),
        cwd=tmp_path,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "custom"
    assert result.stderr.splitlines()[-1] == (
        f"::warning::using template {template}: templates and their Jinja code can run arbitrary code"
    )


@pytest.mark.parametrize("github_actions", [None, "false"])
def test_nothing_is_written_outside_actions(cli, tmp_path, monkeypatch, project, github_actions):
    # a summary path left in the environment is not enough: only GITHUB_ACTIONS=true counts
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    if github_actions is not None:
        monkeypatch.setenv("GITHUB_ACTIONS", github_actions)
    assert cli("config", "show", cwd=project).exit_code == 0
    assert cli("ci", "generate", "--check", cwd=project).exit_code == 0
    assert cli("init", "other", "--data-remote", str(tmp_path / "r"), cwd=tmp_path).exit_code == 0
    failed = cli("ci", "generate", "--provider", "jenkins", cwd=project)
    assert failed.exit_code == 2 and "::" not in failed.stdout + failed.stderr
    assert not summary.exists() and not output.exists()
