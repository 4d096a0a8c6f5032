"""`mlkit runs`: list, show and compare tracked training runs; end the lost ones."""

from __future__ import annotations

from typing import Any

import typer

from mlkit.errors import UsageError

app = typer.Typer(help="List, show and compare tracked training runs; end the lost ones.", no_args_is_help=True)


@app.command("list")
def list_(
    experiment: str = typer.Option(None, "--experiment", "-e", help="Experiment (default: the project's)."),
    limit: int = typer.Option(20, "--limit", "-n", help="How many runs, newest first."),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the newest runs with their status, commit and metrics.

    A RUNNING run whose process is gone (or, from another host, whose heartbeat stopped) shows as lost;
    `mlkit runs end-lost` ends it.

    Example: mlkit runs list --limit 5
    """
    from mlkit.cli import _output
    from mlkit.project import load_project
    from mlkit.runs import list_runs

    runs = list_runs(load_project(), experiment=experiment, limit=limit)

    def table() -> None:
        if not runs:
            _output.status("no runs yet; run `mlkit train`")
            return
        # the project's first three metrics keep the table readable in 80 columns; --json has them all
        names = list(dict.fromkeys(name for run in runs for name in run.metrics))[:3]
        notes = [_note(run) for run in runs]
        note_column = ("note",) if any(notes) else ()
        _output.print_table(
            ("run", "status", "started", "fit_seconds", "commit", *names, *note_column),
            [
                (
                    run.run_id,
                    run.status,
                    run.started,
                    _fmt(run.fit_seconds, 1),
                    run.commit + ("*" if run.dirty else ""),
                    *(_fmt(run.metrics.get(name)) for name in names),
                    *((note,) if note_column else ()),
                )
                for run, note in zip(runs, notes, strict=True)
            ],
        )

    _output.emit([run.to_dict() for run in runs], json_output=json_, table=table)


@app.command("end-lost")
def end_lost(
    experiment: str = typer.Option(None, "--experiment", "-e", help="Experiment (default: the project's)."),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """End the lost runs as FAILED, with the reason in the run's mlkit.failure tag.

    A run is lost when it is RUNNING but its process is gone: on this host, no process with its pid and
    start time; from another host, no heartbeat for 4 intervals. A run that is alive is never ended.
    `mlkit train` does the same before it starts its own run.

    Example: mlkit runs end-lost
    """
    from mlkit.cli import _output
    from mlkit.project import load_project
    from mlkit.runs import end_lost_runs

    ended = end_lost_runs(load_project(), experiment=experiment)

    def table() -> None:
        if not ended:
            _output.status("no lost runs")
            return
        _output.print_table(
            ("run", "host", "pid", "ended FAILED because"),
            [(run.run_id, run.host, run.pid, run.reason) for run in ended],
        )

    _output.emit([run.to_dict() for run in ended], json_output=json_, table=table)


@app.command("show")
def show(
    run_id: str = typer.Argument(
        ..., help="Run id or a unique prefix of it (6+ characters), NAME@ALIAS or NAME/VERSION (see `mlkit runs list`)."
    ),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show one run: params, metrics, lineage, artifacts and registered model versions.

    Example: mlkit runs show 3f2c9a1b (or churn@production, churn/3)
    """
    from mlkit.cli import _output
    from mlkit.project import load_project
    from mlkit.runs import show_run

    detail = show_run(load_project(), run_id)

    def tables() -> None:
        _output.print_mapping(
            {
                "run": detail.run_id,
                "experiment": detail.experiment,
                "status": detail.status,
                "started": detail.started,
                "ended": detail.ended,
                "model versions": ", ".join(detail.model_versions),
            },
            title="Run",
        )
        _output.print_mapping(detail.params, title="Params")
        _output.print_mapping(
            {k: _fmt(v) for k, v in detail.metrics.items() if not k.startswith("xgb.")}, title="Metrics"
        )
        _output.print_mapping(detail.lineage, title="Lineage")
        _output.print_table(("artifact",), [(name,) for name in detail.artifacts], title="Artifacts")

    _output.emit(detail.to_dict(), json_output=json_, table=tables)


@app.command("compare")
def compare(
    run_ids: list[str] = typer.Argument(
        ..., help="Two or more runs: run ids or unique prefixes (6+ characters), NAME@ALIAS or NAME/VERSION."
    ),
    format_: str = typer.Option("table", "--format", "-f", help="table or markdown (for PR comments)."),
    all_: bool = typer.Option(False, "--all", help="Also show rows where every run has the same value."),
    json_: bool = typer.Option(False, "--json", help="Print JSON (every row, with a `differs` flag)."),
) -> None:
    """Compare runs side by side: params, metrics and lineage, differing rows only unless --all (which adds
    the timing metrics, in their own section). Hashes are shortened to 12 characters; --json has them whole.

    Example: mlkit runs compare churn@production 3f2c9a1b --format markdown
    """
    from mlkit.cli import _output
    from mlkit.project import load_project
    from mlkit.runs import compare_runs

    if format_ not in ("table", "markdown"):
        raise UsageError(f"--format {format_!r}: must be table or markdown", hint="e.g. --format markdown")
    comparison = compare_runs(load_project(), run_ids)
    rows = comparison.rows if all_ else comparison.differing()
    columns = ("", "key", *(run_id[:12] for run_id in comparison.run_ids))
    cells = [(row["section"], row["key"], *(_short(_fmt(v)) for v in row["values"])) for row in rows]
    markdown = _output.markdown_table(columns, cells)

    def table() -> None:
        if format_ == "markdown":
            typer.echo(markdown, nl=False)
        elif cells:
            _output.print_table(columns, cells)
        else:
            _output.status("the runs have identical params, metrics and lineage")

    _output.emit(
        comparison.to_dict(), json_output=json_, table=table, summary_markdown="### mlkit runs compare\n\n" + markdown
    )


def _note(run: Any) -> str:
    if run.lost:
        return f"lost: {run.lost}"
    if run.reproduces:
        return f"reproduces {run.reproduces[:12]}"
    return f"failed: {run.failure}" if run.failure else ""


def _short(text: str) -> str:
    """A long hex digest (commit, md5, sha256) cut to 12 characters for tables; --json keeps it whole."""
    if len(text) > 16 and all(c in "0123456789abcdef" for c in text):
        return text[:12] + "…"
    return text


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
