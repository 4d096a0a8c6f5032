"""`mlkit monitor`: drift and decay of a model version against its own training data."""

from __future__ import annotations

from pathlib import Path

import typer

from mlkit.errors import MonitoringPolicyError, UsageError


def monitor(
    target: str = typer.Argument(
        ..., metavar="NAME@STAGE|NAME/VERSION", help="The model version to watch, e.g. churn@production."
    ),
    current: Path | None = typer.Option(
        None, "--current", help="Current data: a CSV or Parquet file (default: monitoring.current in mlkit.yaml)."
    ),
    since: str | None = typer.Option(
        None, "--since", help="Read the prediction log of `mlkit serve` over this span instead (30m, 12h, 7d, 2w)."
    ),
    labels: Path | None = typer.Option(None, "--labels", help="Late labels: a file with the id and target columns."),
    id_column: str | None = typer.Option(None, "--id", help="The column joining --labels to the current data."),
    json_: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    format_: str = typer.Option("table", "--format", help="table or markdown (ignored with --json)."),
    html: Path | None = typer.Option(None, "--html", help="Also write a self-contained HTML report here."),
    no_log: bool = typer.Option(False, "--no-log", help="Do not record a monitoring run in the tracking store."),
) -> None:
    """Compare current data with the reference profile recorded when the version was trained.

    Per feature a drift test chosen by type and size, data quality and schema, prediction drift, and the
    metrics on labelled rows; the `monitoring:` section of mlkit.yaml is the policy. Exit code 0 within the
    policy, 5 when it is crossed. The report is logged as a monitoring run tagged with the model version.

    Example: mlkit monitor churn@production --current data/this_week.csv --html report.html

    Example: mlkit monitor churn@production --since 7d --labels labels.csv --id _request_id
    """
    from mlkit.cli import _output
    from mlkit.monitoring import render
    from mlkit.monitoring.monitor import MonitorOptions
    from mlkit.monitoring.monitor import monitor as run_monitor
    from mlkit.monitoring.reader import parse_since
    from mlkit.project import load_project

    if format_ not in ("table", "markdown"):
        raise UsageError(f"--format {format_!r}: must be table or markdown", hint="e.g. --format markdown")
    options = MonitorOptions(
        current=current,
        since=parse_since(since) if since is not None else None,
        labels=labels,
        id_column=id_column,
        log_run=not no_log,
        html=html is not None or not no_log,
    )
    report = run_monitor(load_project(), target, options, progress=None if json_ else _output.status)
    if html is not None and report.html is not None:
        html.write_text(report.html, encoding="utf-8")
    markdown = render.markdown(report, _output.markdown_table)

    def tables() -> None:
        if format_ == "markdown":
            _output.out().print(markdown, markup=False, highlight=False)
            return
        _output.print_table(render.FEATURE_COLUMNS, render.feature_rows(report), title=render.headline(report))
        if report.assessment.findings:
            _output.print_table(
                ("finding", "feature", "detail", "crosses"),
                render.finding_rows(report),
                title="Data quality and schema",
            )
        if report.assessment.metrics:
            _output.print_table(
                ("metric", "current", "training", "floor", "passed"),
                render.metric_rows(report),
                title=f"Performance on {report.labelled_rows:,} labelled rows",
            )

    _output.emit(
        report.to_dict(),
        json_output=json_,
        table=tables,
        summary_markdown=markdown,
        outputs={
            "crossed": str(report.crossed).lower(),
            "model": report.model,
            "version": report.version,
            "monitoring_run_id": report.monitoring_run_id or "",
            "drifted_features": ",".join(f.name for f in report.assessment.drifted),
        },
    )
    if html is not None:
        _output.status(f"wrote {html}")
    if report.monitoring_run_id:
        _output.status(f"monitoring run {report.monitoring_run_id}")
    if report.crossed:
        raise MonitoringPolicyError(
            f"monitoring policy crossed for {report.target} (version {report.version}): "
            + "; ".join(report.assessment.reasons),
            hint="retrain on the newest data (`mlkit train`) and promote through the gates",
        )
