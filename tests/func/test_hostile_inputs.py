"""Hostile input through the command line: each case ends with its exit code and one error line, and
changes nothing it should not. docs/errors.md ("Hostile input") lists every case and where it is tested."""

from __future__ import annotations

import ast

import pytest
import yaml

from mlkit.errors import OperationError

NAME_RULE = "must start with a letter or digit and contain only letters, digits, '.', '-' and '_'"
CONTROL = "control characters (newlines, tabs, ...) are not allowed in answers"
MARKUP = "'{{', '{%' and '{#' are not allowed: answers are data, not templates"


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# --- mlkit init --set: template answers are data ------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("model_name={{ cookiecutter.__class__ }}", f"--set model_name: {NAME_RULE}"),
        ("model_name={% for x in range(3) %}x{% endfor %}", f"--set model_name: {NAME_RULE}"),
        (
            "model_name={{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen('id').read() }}",
            f"--set model_name: {NAME_RULE}",
        ),
        ("model_name=x\nentrypoint: subprocess:call", f"--set model_name: {CONTROL}"),
        ("model_name=x\rentrypoint: subprocess:call", f"--set model_name: {CONTROL}"),
        ("target={{ 7 * 7 }}", f"--set target: {MARKUP}"),
        ("target={# comment #}", f"--set target: {MARKUP}"),
        ("target=label\nhook: subprocess:call", f"--set target: {CONTROL}"),
        ("target=a\x00b", f"--set target: {CONTROL}"),
        (
            "estimator=os.system(1)",
            "--set estimator: must be an import path like sklearn.ensemble.RandomForestClassifier",
        ),
        ("default_branch=main\nci: {}", f"--set default_branch: {CONTROL}"),
        ("default_branch=a..b", "--set default_branch: must be a branch name like main or release/v1"),
        ('python_version=3.11"\nx = 1', f"--set python_version: {CONTROL}"),
        ("python_version=3.11 || true", "--set python_version: must be a Python version like 3.12"),
        (
            "project_slug=../escape",
            "--set project_slug: must start with a letter and contain only letters, digits, '-' and '_'",
        ),
        ("package_name=a\tb", f"--set package_name: {CONTROL}"),
    ],
)
def test_hostile_template_answers_exit_2_and_create_nothing(cli, tmp_path, answer, message):
    result = cli("init", "churn", "--set", answer, "--data-remote", str(tmp_path / "r"), cwd=tmp_path)
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [f"error: {message}"]
    assert list(tmp_path.iterdir()) == []


def test_free_text_answer_is_written_as_data(cli, tmp_path):
    text = """label: "yes" # it's {x} & [y], *z"""
    result = cli("init", "churn", "--set", f"target={text}", "--data-remote", str(tmp_path / "r"), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    root = tmp_path / "churn"
    config = yaml.safe_load((root / "mlkit.yaml").read_text())
    assert config["data"]["target"] == text
    assert set(config) == {"version", "project", "data", "model", "training", "tracking", "stages", "promotion", "ci"}
    module = ast.parse((root / "tests" / "test_features.py").read_text())
    assert text in {node.value for node in ast.walk(module) if isinstance(node, ast.Constant)}


def test_plain_answers_stay_plain_in_mlkit_yaml(cli, tmp_path):
    result = cli("init", "churn", "--set", "model_name=churn.v2", "--data-remote", str(tmp_path / "r"), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    text = (tmp_path / "churn" / "mlkit.yaml").read_text()
    assert "  name: churn.v2\n" in text and "  target: diagnosis\n" in text and '  python: "3.11"\n' in text
    code = (tmp_path / "churn" / "tests" / "test_features.py").read_text()
    assert '"diagnosis": [0, 0, 1]' in code and 'drop(columns=["diagnosis"])' in code


# --- credentials are never shown -----------------------------------------------------------------


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_config_show_redacts_every_uri(cli, make_project, json_flag):
    root = make_project()
    result = cli(
        "config",
        "show",
        "--set",
        "tracking.uri=https://TOKEN123@host/x?token=TOKVAL7&sig=SIGVAL9",
        "--set",
        "training.scheduler=tcp://u:hunter2@h:8786",
        *json_flag,
        cwd=root,
    )
    assert result.exit_code == 0, result.output
    for secret in ("TOKEN123", "TOKVAL7", "SIGVAL9", "hunter2"):
        assert secret not in result.stdout
    assert "https://***@host/x?token=***&sig=***" in result.stdout
    assert "tcp://u:***@h:8786" in result.stdout


@pytest.mark.parametrize(
    ("error", "exit_code", "shown"),
    [
        (
            RuntimeError("cannot reach postgresql://alice:hunter2@db/x?token=TOKVAL7"),
            1,
            "error: unexpected RuntimeError: cannot reach postgresql://alice:***@db/x?token=***",
        ),
        (
            OperationError("tracking server https://TOKVAL7@host/x failed"),
            1,
            "error: tracking server https://***@host/x failed",
        ),
    ],
)
def test_errors_show_uris_redacted(cli, tmp_path, monkeypatch, error, exit_code, shown):
    from mlkit.cli import config as config_cli

    def fail(**_kwargs):
        raise error

    monkeypatch.setattr(config_cli, "load_project", fail)
    result = cli("config", "show", cwd=tmp_path)
    assert result.exit_code == exit_code
    assert error_lines(result.stderr) == [shown]


# --- a project that lost its .git folder ---------------------------------------------------------------


@pytest.mark.parametrize("command", [["train"], ["data", "status"]])
def test_a_project_without_git_is_a_usage_error(cli, make_project, command):
    root = make_project()
    (root / ".git").rename(root / ".git-away")
    result = cli(*command, cwd=root)
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        f"error: {root} is not a git repository (no .git folder); an mlkit project is one"
    ]
    assert "opening the tracking store" not in result.stderr
