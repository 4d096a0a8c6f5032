"""mlkit inside GitHub Actions, with the environment a runner sets: step summary, step outputs, error
annotations; and nothing of that outside Actions. The last tests play the generated workflows' steps
locally, the way a runner would, in a generated project."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
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


def parse_outputs(text: str) -> dict[str, str]:
    """Read a $GITHUB_OUTPUT file, `key=value` and `key<<DELIMITER` blocks, as the runner does."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delimiter = line.split("<<", 1)
            value = []
            for inner in lines:
                if inner == delimiter:
                    break
                value.append(inner)
            out[key] = "\n".join(value)
        elif line:
            key, _, value = line.partition("=")
            out[key] = value
    return out


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
    assert actions.outputs() == {"root": str(project), "tracking_uri": f"sqlite:///{project}/.mlkit/mlflow.db",
                                 "experiment": "churn", "model_name": "churn"}


def test_ci_check_reports_the_diff_to_the_summary(cli, actions, project):
    text = (project / "mlkit.yaml").read_text().replace('python: "3.11"', 'python: "3.12"')
    (project / "mlkit.yaml").write_text(text)
    result = cli("ci", "generate", "--check", cwd=project)
    assert result.exit_code == 1
    summary = actions.summary.read_text()
    assert summary.startswith("### mlkit ci generate (github)\n\n| file | status |\n")
    assert "| .github/workflows/mlkit.yml | differs from mlkit.yaml |" in summary
    assert '\n```diff\n--- a/.github/workflows/mlkit.yml\n' in summary
    assert '+          python-version: "3.12"\n' in summary
    assert actions.outputs() == {
        "ci_provider": "github", "ci_up_to_date": "false",
        "ci_changed": ".github/workflows/mlkit.yml,.github/workflows/mlkit-promote.yml,"
                      ".github/workflows/mlkit-retrain.yml",
    }
    assert "::" not in result.stdout  # the diff alone: annotations go to stderr
    assert result.stderr.splitlines()[-1] == (
        "::error::3 CI file(s) differ from what mlkit.yaml gives: .github/workflows/mlkit.yml, "
        ".github/workflows/mlkit-promote.yml, .github/workflows/mlkit-retrain.yml "
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
        "| MLKIT_RUN_ID | r1 |\n| MLKIT_METRIC_F1 | 0.9 |\n\n")
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
    assert result.stderr.splitlines()[-1] == ("::error::no registered model 'churn' in the registry "
                                              "(`mlkit models list` shows the registered models)")


def test_init_never_prompts_in_ci(cli, actions, tmp_path):
    result = cli("init", cwd=tmp_path, input="churn\n")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == "::error::missing project NAME (run `mlkit init NAME`)"
    assert list(tmp_path.iterdir()) == [actions.root]


def test_warnings_stay_out_of_a_json_result(cli, actions, tmp_path):
    template = Path(__file__).parents[1] / "data" / "custom-template"
    result = cli("init", "custom", "--template", str(template), "--trust-template", "--json",
                 "--data-remote", str(tmp_path / "r"), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "custom"
    assert result.stderr.splitlines()[-1] == (
        f"::warning::using template {template}: templates and their Jinja code can run arbitrary code")


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


# --- playing a generated workflow ------------------------------------------------------------------

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_REF = re.compile(r"\b(?:github|steps|needs|secrets|inputs)(?:\.[A-Za-z_][\w-]*)+")


@dataclass
class WorkflowPlayer:
    """Runs a workflow's `run:` steps with bash, the way a runner does, in a project folder.

    `uses:` steps are the runner's business (checkout, Python) and already true here; a step whose
    `mlkit` commands do not exist in this mlkit yet, or that needs the network, is skipped and listed.
    """

    workspace: Path
    runner_dir: Path
    event: str = "push"
    ref: str = "refs/heads/main"
    inputs: dict[str, str] = field(default_factory=dict)
    played: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    steps: dict[str, dict[str, str]] = field(default_factory=dict)
    jobs: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def summary(self) -> Path:
        return self.runner_dir / "summary.md"

    def context(self) -> dict[str, Any]:
        return {
            "github.event_name": self.event, "github.ref": self.ref, "github.token": "test-token",
            "github.repository": "acme/churn", "github.run_id": "1",
            "github.event.pull_request.number": "7" if self.event == "pull_request" else "",
            "github.event.pull_request.head.repo.full_name":
                "acme/churn" if self.event == "pull_request" else "",
        }

    def value(self, ref: str) -> Any:
        head, _, rest = ref.partition(".")
        if head == "steps":
            step, _, key = rest.partition(".outputs.")
            return self.steps.get(step, {}).get(key, "")
        if head == "needs":
            job, _, key = rest.partition(".outputs.")
            return self.jobs.get(job, {}).get(key, "")
        if head == "secrets":
            return ""
        if head == "inputs":
            return self.inputs.get(rest, "")
        return self.context()[ref]

    def substitute(self, text: Any) -> str:
        return _EXPR.sub(lambda m: str(self.evaluate(m.group(1))), str(text))

    def evaluate(self, expression: str) -> Any:
        python = _REF.sub(lambda m: repr(self.value(m.group(0))), expression)
        python = python.replace("&&", " and ").replace("||", " or ")
        return eval(python, {"__builtins__": {}})  # only literals and comparisons remain

    def play(self, workflow: dict[str, Any], env: dict[str, str]) -> None:
        base = {**env, **{k: self.substitute(v) for k, v in (workflow.get("env") or {}).items()}}
        for name, job in workflow["jobs"].items():
            if "if" in job and not self.evaluate(job["if"]):
                continue
            job_env = {**base, **{k: self.substitute(v) for k, v in (job.get("env") or {}).items()}}
            for step in job["steps"]:
                self.run_step(step, job_env)
            self.jobs[name] = {k: self.substitute(v) for k, v in (job.get("outputs") or {}).items()}

    def run_step(self, step: dict[str, Any], env: dict[str, str]) -> None:
        label = step["name"]
        if "uses" in step or ("if" in step and not self.evaluate(step["if"])):
            return
        script = step["run"]
        if "pip install" in script or script.startswith("gh ") or not _commands_exist(script):
            self.skipped.append(label)
            return
        output = self.runner_dir / f"output-{len(self.played)}.txt"
        output.touch()
        step_env = {**env, **{k: self.substitute(v) for k, v in (step.get("env") or {}).items()},
                    "GITHUB_OUTPUT": str(output)}
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                              cwd=self.workspace, env=step_env, capture_output=True, text=True)
        assert done.returncode == 0, f"step {label!r} failed:\n{done.stdout}\n{done.stderr}"
        self.played.append(label)
        if "id" in step:
            self.steps[step["id"]] = parse_outputs(output.read_text())


def _commands_exist(script: str) -> bool:
    import typer

    from mlkit.cli import app

    root = typer.main.get_command(app)
    for words in re.findall(r"\bmlkit ((?:[a-z-]+ ?){1,2})", script):
        parts = words.split()
        command = root.commands.get(parts[0]) if hasattr(root, "commands") else None
        if command is None:
            return False
        if hasattr(command, "commands") and len(parts) > 1 and parts[1] not in command.commands:
            return False
    return True


def runner_env(player: WorkflowPlayer) -> dict[str, str]:
    player.runner_dir.mkdir(exist_ok=True)
    player.summary.touch()
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLKIT_", "MLFLOW_"))}
    return {
        **keep, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "CI": "true", "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(player.summary), "GITHUB_EVENT_NAME": player.event,
        "GITHUB_REF": player.ref,
        "GITHUB_WORKSPACE": str(player.workspace), "GITHUB_REPOSITORY": "acme/churn",
        "RUNNER_TEMP": str(player.runner_dir), "GITHUB_ENV": str(player.runner_dir / "env.txt"),
    }


def _workflow(project: Path, name: str) -> dict[str, Any]:
    return yaml.safe_load((project / ".github" / "workflows" / name).read_text())


@pytest.mark.slow
def test_the_loop_through_the_generated_workflows_plays_locally(project, tmp_path):
    """Push to the default branch, promotion to production by hand, then a pull request."""
    player = WorkflowPlayer(project, tmp_path / "runner")
    player.play(_workflow(project, "mlkit.yml"), runner_env(player))

    assert player.played == ["CI files match mlkit.yaml", "Test", "Pull the versioned data", "Train",
                             "Compare with production", "Promote the new version"]
    # the one step not run here: installing the project (network), once per job
    assert player.skipped == ["Install the project's dependencies"] * 3

    train = player.steps["train"]
    assert re.fullmatch(r"[0-9a-f]{32}", train["run_id"])
    assert train["model_name"] == "churn" and train["model_version"] == "1"
    assert 0.85 <= float(train["f1"]) <= 1.0
    assert player.jobs["train"] == {"run_id": train["run_id"], "model_version": "1"}

    summary = player.summary.read_text()
    sections = re.findall(r"^### .*$", summary, flags=re.MULTILINE)
    wanted = ["### mlkit ci generate (github)", "### mlkit train",
              "### Promotion of churn version 1 to staging: promoted"]
    assert [line for line in sections if line in wanted] == wanted  # in the order the steps ran
    assert "No production model of churn to compare with yet.\n" in summary
    assert "| f1 >= 0.85 | ✅ passed |" in summary
    assert (project / "comparison.md").read_text() == (
        "### churn: this run against production\n\nNo production model of churn to compare with yet.\n")

    shown = subprocess.run([str(BIN / "mlkit"), "models", "show", "churn@staging", "--json"], cwd=project,
                           capture_output=True, text=True,
                           env=runner_env(player) | {"GITHUB_ACTIONS": "false"})
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["version"] == "1"

    # a person promotes to production through the dispatch workflow (the environment's reviewers approve)
    fresh_checkout(project)
    dispatch = WorkflowPlayer(project, tmp_path / "dispatch", event="workflow_dispatch",
                              inputs={"model": "churn", "version": "", "stage": "production"})
    dispatch.play(_workflow(project, "mlkit-promote.yml"), runner_env(dispatch))
    assert dispatch.played == ["Promote"]  # the production job alone
    assert dispatch.skipped == ["Install the project's dependencies"]
    assert "### Promotion of churn version 1 to production: promoted" in dispatch.summary.read_text()

    # the next pull request changes a hyperparameter and is compared with that production model
    fresh_checkout(project)
    params = (project / "params.yaml").read_text().replace("max_depth: 4", "max_depth: 2")
    (project / "params.yaml").write_text(params)
    subprocess.run(["git", "commit", "-qam", "shallower trees"], cwd=project, check=True)
    pr = WorkflowPlayer(project, tmp_path / "pr", event="pull_request", ref="refs/pull/7/merge")
    pr.play(_workflow(project, "mlkit.yml"), runner_env(pr))
    assert "Comment on the pull request" in pr.skipped  # gh needs GitHub itself
    assert "Promote the new version" not in pr.played
    assert pr.steps["train"]["model_version"] == ""  # pull requests are compared, not registered
    comparison = (project / "comparison.md").read_text()
    assert comparison.startswith("### churn: this run against production\n\n|  | key | ")
    assert "\n| param | estimator.max_depth | 4 | 2 |\n" in comparison
    assert "\n| metric | roc_auc | " in comparison
    assert comparison.split("\n\n", 1)[1] in pr.summary.read_text()


def fresh_checkout(project: Path) -> None:
    """What the next run's checkout would see: committed files only (the store in .mlkit/ is the server)."""
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=project, check=True)
    subprocess.run(["git", "clean", "-fdq"], cwd=project, check=True)


@pytest.mark.slow
def test_scheduled_retraining_reports_a_gate_refusal_without_failing(project, tmp_path):
    text = (project / "mlkit.yaml").read_text()
    stricter = text.replace('thresholds: ["f1 >= 0.85"]', 'thresholds: ["f1 >= 0.9999"]')
    (project / "mlkit.yaml").write_text(stricter)
    subprocess.run(["git", "commit", "-qam", "stricter staging gate"], cwd=project, check=True)
    player = WorkflowPlayer(project, tmp_path / "runner", event="schedule")
    player.play(_workflow(project, "mlkit-retrain.yml"), runner_env(player))

    assert "Train" in player.played and "Promote to staging if the gates pass" in player.played
    assert player.steps["train"]["model_version"] == "1"
    summary = player.summary.read_text()
    assert "### Promotion of churn version 1 to staging: refused" in summary
    assert "| f1 >= 0.9999 | ❌ failed |" in summary
