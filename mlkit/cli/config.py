"""`mlkit config`: inspect the resolved project settings."""

from __future__ import annotations

import typer

app = typer.Typer(help="Inspect the project's resolved settings.", no_args_is_help=True)


@app.command("show")
def show(
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                   help="Override a setting for this call, e.g. tracking.experiment=exp2 "
                                   "or params.seed=7."),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Print the settings as resolved from defaults, mlkit.yaml, MLKIT_* variables and --set.

    Example: mlkit config show --json
    """
    from mlkit.cli import _output
    from mlkit.config import flatten, parse_overrides
    from mlkit.project import load_project

    project = load_project(overrides=parse_overrides(set_))
    resolved = project.resolved()
    flat = flatten({"config": resolved["config"], "params": resolved["params"]})
    flat = {"root": resolved["root"], "tracking_uri": resolved["tracking_uri"],
            "experiment": resolved["experiment"], **flat}
    _output.github_summary("### mlkit config show\n\n" + _output.markdown_table(
        ("key", "value"), ((k, _output.cell(v)) for k, v in flat.items())))
    _output.github_outputs({"root": resolved["root"], "tracking_uri": resolved["tracking_uri"],
                            "experiment": resolved["experiment"], "model_name": project.model_name})
    if json_:
        _output.print_json(resolved)
        return
    _output.print_mapping(flat)
