"""The command line itself: startup cost, version, help, error translation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from mlkit import __version__
from mlkit.cli import app
from mlkit.errors import ExitCode

HEAVY = ("mlflow", "dvc", "git", "sklearn", "xgboost", "pandas", "numpy", "cookiecutter")
# typer itself uses pydantic to convert a command's parameters, so only the top level can avoid it
HEAVY_TOP = (*HEAVY, "pydantic", "yaml")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "heavy"),
    [(["--help"], HEAVY_TOP), (["--version"], HEAVY_TOP), ([], HEAVY_TOP), (["init", "--help"], HEAVY)],
)
def test_help_and_version_import_no_heavy_module(argv, heavy):
    code = (
        "import sys\nfrom mlkit.cli import app\n"
        f"try:\n    app({argv!r}, prog_name='mlkit')\nexcept SystemExit:\n    pass\n"
        f"print('LOADED=' + ','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "LOADED="


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"mlkit {__version__}\n"


def test_python_dash_m_runs_the_same_cli():
    result = subprocess.run([sys.executable, "-m", "mlkit", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout == f"mlkit {__version__}\n"


def test_entry_point_raises_the_collector_threshold_and_freezes_what_is_left_at_exit():
    # the exit codes of a failing command must come through the freeze unchanged
    code = (
        "import gc, sys\nfrom mlkit.cli import main\nsys.argv = ['mlkit', 'frobnicate']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    status = exc.code\n"
        "print(status, gc.get_threshold()[0], gc.get_freeze_count() > 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["2", "10000", "True"]


def test_no_arguments_shows_help(cli):
    result = cli()
    assert result.exit_code == 2
    assert "Usage: mlkit" in result.output


def test_unknown_command_is_a_usage_error(cli):
    result = cli("frobnicate")
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.output


def _commands(group: typer.core.TyperGroup, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if getattr(command, "hidden", False):
            continue
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


ALL_COMMANDS = list(_commands(typer.main.get_command(app)))


@pytest.mark.parametrize(("path", "command"), ALL_COMMANDS, ids=[" ".join(p) for p, _ in ALL_COMMANDS])
def test_every_command_has_help_with_an_example_and_a_docs_page(path, command, cli):
    result = cli(*path, "--help")
    assert result.exit_code == 0
    assert "Example:" in (command.help or ""), f"`mlkit {' '.join(path)}` help has no example"
    shown = f"mlkit {' '.join(path)}"
    pages = [page.name for page in (ROOT / "docs").glob("*.md") if shown in page.read_text()]
    assert pages, f"no page in docs/ shows `{shown}` with an example"


def test_expected_error_is_one_line_with_hint_and_exit_2(cli, tmp_path):
    result = cli("config", "show", cwd=tmp_path)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: not inside an mlkit project (no mlkit.yaml in {tmp_path.resolve()} or any parent)",
        "hint: run `mlkit init NAME` to create one, or cd into a project",
    ]


@pytest.mark.parametrize(
    "switch", ["flag", "flag-after", "env"], ids=["--debug", "--debug after the command", "MLKIT_DEBUG=1"]
)
def test_debug_shows_the_traceback_before_the_error(cli, tmp_path, monkeypatch, switch):
    args: tuple[str, ...] = ("config", "show")
    if switch == "flag":
        args = ("--debug", *args)
    elif switch == "flag-after":
        args = (*args, "--debug")
    else:
        monkeypatch.setenv("MLKIT_DEBUG", "1")
    result = cli(*args, cwd=tmp_path)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert (
        f"mlkit.errors.ProjectNotFoundError: not inside an mlkit project (no mlkit.yaml in "
        f"{tmp_path.resolve()} or any parent)"
    ) in lines
    assert lines[-2:] == [
        f"error: not inside an mlkit project (no mlkit.yaml in {tmp_path.resolve()} or any parent)",
        "hint: run `mlkit init NAME` to create one, or cd into a project",
    ]


def test_unexpected_error_is_one_line_exit_1(cli, tmp_path, monkeypatch):
    from mlkit.cli import config

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(config, "load_project", broken)
    result = cli("config", "show", cwd=tmp_path)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: unexpected RuntimeError: disk on fire",
        "hint: run again with --debug (or MLKIT_DEBUG=1) for the traceback",
    ]


def test_debug_is_accepted_after_any_command_and_before_a_double_dash(cli, tmp_path):
    from mlkit.cli import _lift_global_options

    assert _lift_global_options(["train", "--debug", "--set", "a=1"]) == ["--debug", "train", "--set", "a=1"]
    assert _lift_global_options(["--debug", "runs", "show", "X"]) == ["--debug", "runs", "show", "X"]
    assert _lift_global_options(["runs", "show", "--", "--debug"]) == ["runs", "show", "--", "--debug"]
    result = cli("runs", "list", "--debug", "--limit", "0", cwd=tmp_path)
    assert result.exit_code == 2
    assert "No such option" not in result.stderr
    assert result.stderr.splitlines()[0] == "Traceback (most recent call last):"


def test_keyboard_interrupt_exits_130(cli, tmp_path, monkeypatch):
    from mlkit.cli import config

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(config, "load_project", interrupted)
    result = cli("config", "show", cwd=tmp_path)
    assert result.exit_code == 130
    assert result.stderr.strip() == "error: interrupted"


def test_errors_become_annotations_inside_github_actions(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = cli("config", "show", cwd=tmp_path)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        f"::error::not inside an mlkit project (no mlkit.yaml in {tmp_path.resolve()} or any parent) "
        "(run `mlkit init NAME` to create one, or cd into a project)"
    )


def test_config_show_json_is_the_resolved_settings(cli, make_project):
    root = make_project("churn")
    result = cli("config", "show", "--json", "--set", "params.seed=7", cwd=root / "src")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["root"] == str(root)
    assert data["params"]["seed"] == 7
    assert data["config"]["model"]["estimator"] == "xgboost.XGBClassifier"
    assert data["tracking_uri"] == f"sqlite:///{root}/.mlkit/mlflow.db"


def test_config_show_reports_bad_field(cli, make_project):
    root = make_project("churn")
    text = (root / "mlkit.yaml").read_text().replace("task: classification", "task: clustering")
    (root / "mlkit.yaml").write_text(text)
    result = cli("config", "show", cwd=root)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == ("error: mlkit.yaml: model.task: must be 'classification' or 'regression'")


@pytest.mark.parametrize(
    ("exc", "plain", "typed"),
    [
        (ValueError("bad value\nmore detail"), "bad value", "ValueError: bad value"),
        (OSError("\n  \n  disk full  \ncontext"), "disk full", "OSError: disk full"),
        (TimeoutError(), "TimeoutError", "TimeoutError"),
    ],
    ids=["two-lines", "blank-lines-first", "no-message"],
)
def test_first_line_of_an_error(exc, plain, typed):
    from mlkit.errors import first_line

    assert first_line(exc) == plain
    assert first_line(exc, with_type=True) == typed


# --- _output.emit: one result, every channel ----------------------------------------------------------


@pytest.fixture
def actions(tmp_path, monkeypatch):
    """A GitHub Actions step: its summary and output files."""
    files = {"summary": tmp_path / "summary.md", "outputs": tmp_path / "outputs"}
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files["summary"]))
    monkeypatch.setenv("GITHUB_OUTPUT", str(files["outputs"]))
    return files


def test_emit_prints_json_and_reports_to_the_step(actions, capsys):
    from mlkit.cli import _output

    _output.emit(
        {"version": "3", "gates": [1, 2]},
        json_output=True,
        table=lambda: print("never"),
        summary_markdown=_output.mapping_markdown("mlkit thing", {"version": "3", "gates": [1, 2], "note": "a|b"}),
        outputs={"version": 3, "detail": "two\nlines"},
    )
    assert json.loads(capsys.readouterr().out) == {"version": "3", "gates": [1, 2]}
    assert actions["summary"].read_text() == (
        "### mlkit thing\n\n| key | value |\n| --- | --- |\n| version | 3 |\n| gates | [1, 2] |\n| note | a\\|b |\n\n"
    )
    lines = actions["outputs"].read_text().splitlines()
    assert lines[0] == "version=3"
    assert lines[1].startswith("detail<<ghadelimiter_") and lines[2:4] == ["two", "lines"]
    assert lines[4] == lines[1].split("<<")[1]


def test_emit_shows_a_table_and_writes_nothing_outside_actions(tmp_path, monkeypatch, capsys):
    from mlkit.cli import _output

    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))  # set, but not inside Actions
    _output.emit(
        {"raw": 1.5}, json_output=False, table={"shown": "1.5 s"}, summary_markdown="### x\n", outputs={"raw": 1.5}
    )
    assert [line.split() for line in capsys.readouterr().out.splitlines()[-1:]] == [["shown", "│", "1.5", "s"]]
    assert not (tmp_path / "summary.md").exists()


def test_emit_calls_a_table_renderer_or_shows_the_result(capsys):
    from mlkit.cli import _output

    _output.emit({"a": 1}, json_output=False, table=lambda: print("custom table"))
    assert capsys.readouterr().out == "custom table\n"
    _output.emit({"a": 1}, json_output=False)
    assert [line.split() for line in capsys.readouterr().out.splitlines()[-1:]] == [["a", "│", "1"]]


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (
            ("pandas",),
            "error: project name 'pandas' would make a package 'pandas' that shadows the installed package pandas: "
            "training would import the project instead (ModuleNotFoundError)",
            "hint: choose another name, e.g. `mlkit init my-pandas`, or keep the name with "
            "`--set package_name=pandas_project`",
        ),
        (
            ("mlflow",),
            "error: project name 'mlflow' would make a package 'mlflow' that shadows the installed package mlflow: "
            "training would import the project instead (ModuleNotFoundError)",
            "hint: choose another name, e.g. `mlkit init my-mlflow`, or keep the name with "
            "`--set package_name=mlflow_project`",
        ),
        (
            ("churn", "--set", "package_name=sklearn"),
            "error: --set package_name=sklearn would make a package 'sklearn' that shadows the installed package "
            "scikit-learn: training would import the project instead (ModuleNotFoundError)",
            "hint: choose another name, e.g. `mlkit init churn --set package_name=my_sklearn`, or keep the name "
            "with `--set package_name=sklearn_project`",
        ),
    ],
)
def test_init_refuses_a_package_that_shadows_an_installed_one(cli, tmp_path, args, message, hint):
    result = cli("init", *args, cwd=tmp_path)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines() == [message, hint]
    assert list(tmp_path.iterdir()) == []


def test_once_the_command_is_over_a_late_signal_cannot_kill_the_process(monkeypatch):
    # CPython's finalization gives signals with Python handlers their default action back, so a SIGTERM
    # arriving then killed a finished command (exit -15); the entry point leaves them ignored instead
    import signal
    import sys

    from mlkit.cli import main

    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(sys, "argv", ["mlkit", "--help"])
    try:
        with pytest.raises(SystemExit) as done:
            main()
        assert done.value.code == 0
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        import gc

        gc.unfreeze()
        for signum, handler in before.items():
            signal.signal(signum, handler)
