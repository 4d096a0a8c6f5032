"""`mlkit config`: inspect the resolved project settings."""

from __future__ import annotations

from typing import Any

import typer

from mlkit.cli import _output
from mlkit.project import load_project
from mlkit.uris import redact_text

app = typer.Typer(help="Inspect the project's resolved settings.", no_args_is_help=True)


@app.command("show")
def show(
    set_: list[str] = typer.Option(
        [],
        "--set",
        metavar="KEY=VALUE",
        help="Override a setting for this call, e.g. tracking.experiment=exp2 or params.seed=7.",
    ),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Print the settings as resolved from defaults, mlkit.yaml, MLKIT_* variables and --set.

    Example: mlkit config show --json
    """
    from mlkit.config import flatten, parse_overrides

    project = load_project(overrides=parse_overrides(set_))
    resolved = _redacted(project.resolved())
    flat = flatten({"config": resolved["config"], "params": resolved["params"]})
    flat = {
        "root": resolved["root"],
        "tracking_uri": resolved["tracking_uri"],
        "experiment": resolved["experiment"],
        **flat,
    }
    _output.emit(
        resolved,
        json_output=json_,
        table=flat,
        summary_markdown=_output.mapping_markdown("mlkit config show", flat),
        outputs={
            "root": resolved["root"],
            "tracking_uri": resolved["tracking_uri"],
            "experiment": resolved["experiment"],
            "model_name": project.model_name,
        },
    )


def _redacted(value: Any) -> Any:
    """Every URI in the settings with its credentials masked, wherever it is (tracking, scheduler, ...)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value
