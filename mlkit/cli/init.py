"""`mlkit init`: create a project."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from mlkit.cli import _output
from mlkit.errors import UsageError

# mlkit --help imports every command module: the core modules a command drives are imported inside it


def _interactive() -> bool:
    return sys.stdin.isatty() and not os.environ.get("CI")


def init(
    name: str = typer.Argument(None, help="Project name: a folder and, with - as _, a Python package."),
    template: str = typer.Option(
        None,
        "--template",
        "-t",
        help="classification (default) or regression, or a template folder with --trust-template.",
        show_default=False,
    ),
    data: Path = typer.Option(
        None,
        "--data",
        help="Your own CSV or Parquet file: copied into data/ and tracked instead of the sample data.",
        show_default=False,
    ),
    target: str = typer.Option(None, "--target", help="With --data: the column to predict.", show_default=False),
    task: str = typer.Option(
        None,
        "--task",
        help="With --data: classification or regression (default: inferred from the target).",
        show_default=False,
    ),
    directory: Path = typer.Option(None, "--dir", help="Project folder to create (default: ./NAME)."),
    set_: list[str] = typer.Option(
        [],
        "--set",
        metavar="KEY=VALUE",
        help="Template answer, e.g. estimator=sklearn.ensemble.RandomForestClassifier.",
    ),
    no_git: bool = typer.Option(False, "--no-git", help="Do not create a git repository."),
    no_dvc: bool = typer.Option(False, "--no-dvc", help="Do not set up DVC."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Write into a non-empty folder: a file at a template file's path is replaced "
        "(and listed), nothing else is touched.",
    ),
    data_remote: Path = typer.Option(
        None, "--data-remote", help="Folder for the DVC remote (default: under the user's cache dir)."
    ),
    trust_template: bool = typer.Option(
        False, "--trust-template", help="Allow a template that is not bundled (it can run arbitrary code)."
    ),
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Create a project: layout, config, data, git, DVC and tracking, all wired and committed.

    Without --data the project trains on a sample data set; with --data FILE --target COLUMN on yours
    (the task is inferred from the target unless --task is given, and the summary says why).

    Example: mlkit init churn --data ~/customers.csv --target churned && cd churn && mlkit train
    """
    from mlkit.scaffold import BUNDLED_TEMPLATES, init_project, local_remote_notice

    if name is None:
        if not _interactive():
            raise UsageError("missing project NAME", hint="run `mlkit init NAME`")
        name = typer.prompt("Project name")
    answers = {}
    for item in set_:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {item!r}: must look like KEY=VALUE", hint="e.g. --set python_version=3.12")
        answers[key.strip()] = value
    if template not in BUNDLED_TEMPLATES and trust_template:
        _output.warn(f"using template {template}: templates and their Jinja code can run arbitrary code")
    result = init_project(
        name,
        template=template,
        directory=directory,
        data=data,
        target=target,
        task=task,
        answers=answers,
        init_git=not no_git,
        init_dvc=not no_dvc,
        force=force,
        data_remote=data_remote,
        trust_template=trust_template,
        progress=None if json_ else _output.status,
    )
    if result.overwritten:
        count = len(result.overwritten)
        _output.warn(
            f"--force replaced {count} file{'s' if count != 1 else ''} of yours with the template's: "
            + ", ".join(result.overwritten)
        )
    data_line = ", ".join(result.data_files) or "-"
    if result.rows is not None:
        data_line += f" ({result.rows} rows)"
    rows = [
        ("template", result.template),
        ("package", result.package),
        ("data", data_line),
        ("task", f"{result.task}: {result.task_reason}" if result.task_reason else result.task or "-"),
        ("gates", result.gates or "-"),
        ("data remote", result.data_remote or "-"),
        ("commit", (result.commit or "-")[:12]),
    ]

    def table() -> None:
        _output.out().print(f"Created [bold]{result.name}[/] in {result.root} ({result.seconds:.2f}s)")
        _output.print_table(("", ""), rows)
        _output.out().print(f"Next: cd {result.root} && mlkit train")
        notice = local_remote_notice(result.data_remote)
        if notice:
            _output.status(notice)

    _output.emit(
        result.to_dict(),
        json_output=json_,
        table=table,
        summary_markdown=f"### mlkit init {result.name}\n\n" + _output.markdown_table(("", ""), rows),
        outputs={"project": result.root, "commit": result.commit or ""},
    )
