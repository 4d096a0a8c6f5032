"""`mlkit ci`: generate and check the project's CI files (GitHub Actions, GitLab CI)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlkit.cli import _output
from mlkit.project import load_project

if TYPE_CHECKING:
    from mlkit.ci import CIResult

# mlkit --help imports every command module: the core modules a command drives are imported inside it

app = typer.Typer(help="Generate and check the project's CI files (GitHub Actions or GitLab CI).", no_args_is_help=True)

_STATUS_NOTE = {
    "created": "written",
    "updated": "regenerated",
    "replaced": "hand edits overwritten",
    "unchanged": "up to date",
    "differs": "differs from mlkit.yaml",
    "missing": "missing",
}


@app.command("generate")
def generate(
    provider: str = typer.Option(
        None, "--provider", "-p", help="github or gitlab (default: ci.provider in mlkit.yaml)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite CI files that were edited by hand."),
    check: bool = typer.Option(
        False, "--check", help="Write nothing; exit 1 with a diff when the files differ from mlkit.yaml."
    ),
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Write the CI files of the project from mlkit.yaml: GitHub Actions workflows or .gitlab-ci.yml.

    Pull requests train and compare with production, the default branch promotes to the first stage,
    production needs an approval, and retraining runs on a schedule. Files edited by hand are kept
    unless --force is given.

    Example: mlkit ci generate --provider gitlab
    """
    from mlkit import ci

    if provider is not None:
        ci.check_provider(provider)
    project = load_project()
    try:
        result = ci.generate(project.root, project.config, provider=provider, force=force, check=check)
    except ci.CIOutOfDateError as exc:
        _render_generated(exc.result, json_)  # the diff goes out before the error line
        raise
    _render_generated(result, json_)


def _render_generated(result: CIResult, json_: bool) -> None:
    rows = [(f.path, _STATUS_NOTE.get(f.status, f.status)) for f in result.files]
    summary = f"### mlkit ci generate ({result.provider})\n\n"
    summary += _output.markdown_table(("file", "status"), rows)
    if result.check and not result.up_to_date:
        summary += "\n```diff\n" + "".join(f.diff for f in result.changed) + "```\n"

    def table() -> None:
        if result.check:
            sys.stdout.write("".join(f.diff for f in result.changed))
            sys.stdout.flush()
        _output.print_table(("file", "status"), rows, title=f"CI files ({result.provider})")

    _output.emit(
        result.to_dict(),
        json_output=json_,
        table=table,
        summary_markdown=summary,
        outputs={
            "ci_provider": result.provider,
            "ci_up_to_date": str(result.up_to_date).lower(),
            "ci_changed": ",".join(f.path for f in result.changed),
        },
    )


@app.command("export")
def export(
    result_file: Path = typer.Argument(..., metavar="RESULT_JSON", help="The output of a command run with --json."),
    dotenv: Path = typer.Option(None, "--dotenv", help="Write MLKIT_<KEY>=value lines (a GitLab dotenv report)."),
    metrics: Path = typer.Option(None, "--metrics", help="Write 'name value' lines (a GitLab metrics report)."),
    json_: bool = typer.Option(False, "--json", help="Print the variables as JSON."),
) -> None:
    """Turn a --json result into CI reports: dotenv variables for later jobs and a metrics report.

    Example: mlkit ci export train.json --dotenv train.env --metrics metrics.txt
    """
    from mlkit import ci

    variables = ci.export_result(result_file, dotenv=dotenv, metrics=metrics)
    _output.emit(
        variables,
        json_output=json_,
        summary_markdown=f"### mlkit ci export {result_file.name}\n\n"
        + _output.markdown_table(("variable", "value"), variables.items()),
        outputs=variables,
    )
