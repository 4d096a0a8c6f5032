"""`mlkit train` (a tracked training run) and `mlkit ui` (MLflow's UI on the project's store)."""

from __future__ import annotations

from typing import Any

import typer


def train(
    set_: list[str] = typer.Option(
        [],
        "--set",
        metavar="KEY=VALUE",
        help="Override a param or setting for this run, e.g. params.estimator.max_depth=6 (repeatable).",
    ),
    experiment: str = typer.Option(
        None,
        "--experiment",
        "-e",
        help="MLflow experiment (default: tracking.experiment, or MLKIT_EXPERIMENT).",
    ),
    no_register: bool = typer.Option(False, "--no-register", help="Log the run but register no model version."),
    allow_dirty: bool = typer.Option(
        False,
        "--allow-dirty",
        help="Train from uncommitted changes even when CI is set (the diff is logged).",
    ),
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train the project's model on DVC-tracked data, log it with its lineage to MLflow, register a version.

    Example: mlkit train --set params.estimator.max_depth=6 --set params.seed=7
    """
    from mlkit.cli import _output
    from mlkit.config import parse_overrides
    from mlkit.project import load_project
    from mlkit.training import TrainOptions, interrupts
    from mlkit.training import train as run_training

    project = load_project(overrides=parse_overrides(set_))
    options = TrainOptions(experiment=experiment, register=not no_register, allow_dirty=allow_dirty)
    with interrupts.handle_signals():
        result = run_training(project, options, progress=_output.status)
    try:
        _report(result, json_)
    except KeyboardInterrupt:  # the run is FINISHED (and registered): say so before exiting as interrupted
        from mlkit.training.runner import finished_before_interrupt

        _output.status(finished_before_interrupt(result.run_id, result.model_name, result.model_version))
        raise


def _report(result: Any, json_: bool) -> None:
    from mlkit.cli import _output

    rows: list[tuple[str, Any]] = [
        ("run", result.run_id),
        ("experiment", result.experiment),
        ("model", f"{result.model_name} v{result.model_version}" if result.model_version else "not registered"),
        ("commit", (result.lineage.git_commit or "")[:12] + (" (dirty)" if result.lineage.git_dirty else "")),
    ]
    if result.scheduler:
        rows.append(("backend", f"{result.backend} (scheduler {result.scheduler})"))
    rows += [(f"data {path}", md5) for path, md5 in result.lineage.data_md5s.items()]
    rows += [(name, f"{value:.4f}") for name, value in {**result.metrics, **result.cv_metrics}.items()]
    rows += [("fit_seconds", f"{result.fit_seconds:.1f}"), ("total_seconds", f"{result.total_seconds:.1f}")]
    rows += [("warning", warning) for warning in result.warnings]
    data = result.to_dict()
    _output.emit(
        data,
        json_output=json_,
        table=lambda: _output.print_table(("", ""), rows),
        summary_markdown=_summary_markdown(data),
        outputs={
            "run_id": result.run_id,
            "model_name": result.model_name,
            "model_version": result.model_version or "",
            **result.metrics,
        },
    )
    if result.uncommitted:
        files = " ".join(result.uncommitted)
        _output.status(
            f"{' and '.join(result.uncommitted)} changed: commit them with your code (git add {files} && git commit)"
        )


def ui(
    port: int = typer.Option(5000, "--port", "-p", help="Port on 127.0.0.1."),
) -> None:
    """Open MLflow's UI on the project's tracking store, bound to 127.0.0.1 (Ctrl-C or SIGTERM stops it).

    A busy port is refused (exit 2). A project tracking to a server gets that server's URL instead.

    Example: mlkit ui --port 5001
    """
    from mlkit.cli import _output
    from mlkit.project import load_project
    from mlkit.runs import open_ui
    from mlkit.training import interrupts

    with interrupts.handle_signals():  # SIGTERM stops the UI's whole process group, as Ctrl-C does
        open_ui(load_project(), port=port, progress=_output.status)


def _summary_markdown(data: dict[str, Any]) -> str:
    from mlkit.cli import _output

    version = f"`{data['model_name']}` v{data['model_version']}" if data["model_version"] else "not registered"
    rows = [(name, f"{value:.4f}") for name, value in {**data["metrics"], **data["cv_metrics"]}.items()]
    return (
        f"### mlkit train\n\nRun `{data['run_id']}` · model {version} · commit "
        f"`{data['lineage'].get('mlkit.git.commit', '')[:12]}`\n\n" + _output.markdown_table(("metric", "value"), rows)
    )
