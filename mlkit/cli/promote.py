"""`mlkit promote` and `mlkit rollback`: move a model version between stages, through the policy gates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from mlkit.promotion import PromotionResult


def promote(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str | None = typer.Argument(None, help="Version to promote (omit with --from)."),
    to: str = typer.Option(..., "--to", help="Target stage, one of `stages` in mlkit.yaml."),
    from_stage: str | None = typer.Option(None, "--from", help="Promote whatever version holds this stage."),
    reason: str = typer.Option("", "--reason", help="Why; recorded in the audit trail."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Evaluate the gates and change nothing."),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Move a model version to a stage if the gates in mlkit.yaml allow it; exit code 3 when refused.

    Exit code 1 when a concurrent promotion on a tracking server superseded this one, or when the
    server refused the signed-in user.

    The stage is an MLflow alias (models:/NAME@STAGE) plus an mlkit.stage tag on the version; every
    promotion and refusal is recorded in the audit trail (`mlkit models history NAME`).

    Example: mlkit promote churn 3 --to staging --reason "better recall"

    Example: mlkit promote churn --from staging --to production
    """
    from mlkit.cli import _output
    from mlkit.project import load_project
    from mlkit.promotion import PromotionRefused, PromotionSuperseded
    from mlkit.promotion import promote as promote_version

    project = load_project()
    try:
        result = promote_version(
            project,
            name,
            version,
            to=to,
            from_stage=from_stage,
            reason=reason,
            dry_run=dry_run,
            progress=_output.status,
        )
    except (PromotionRefused, PromotionSuperseded) as exc:
        _render(exc.result, json_)
        raise
    _render(result, json_)


def rollback(
    name: str = typer.Argument(..., help="Registered model name."),
    stage: str | None = typer.Option(
        None, "--stage", help="Stage to roll back (default: the last stage in mlkit.yaml, usually production)."
    ),
    reason: str = typer.Option("", "--reason", help="Why; recorded in the audit trail."),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Put a stage back on the version that held it before the current one; audited, no gates.

    Example: mlkit rollback churn --stage production --reason "latency regression"
    """
    from mlkit.cli import _output
    from mlkit.project import load_project
    from mlkit.promotion import rollback as rollback_stage

    project = load_project()
    result = rollback_stage(project, name, stage or project.config.stages[-1], reason=reason, progress=_output.status)
    summary = f"### Rollback of {name}@{result.stage}\n\n" + _output.markdown_table(
        ("from version", "to version", "actor", "reason"),
        [(result.from_version, result.to_version, result.actor, result.reason)],
    )
    _output.emit(
        result.to_dict(),
        json_output=json_,
        summary_markdown=summary,
        outputs={"model": name, "version": result.to_version, "stage": result.stage, "status": "rolled back"},
    )
    _output.status(f"rolled back {name}@{result.stage}: version {result.from_version} -> {result.to_version}")


def _render(result: PromotionResult, json_: bool) -> None:
    from mlkit.cli import _output

    rows = [(g.gate, "passed" if g.passed else "FAILED", g.detail) for g in result.gates]
    summary = f"### Promotion of {result.model} version {result.version} to {result.stage}: {result.status}\n\n"
    if rows:
        marks = [(gate, "✅ passed" if ok == "passed" else "❌ failed", detail) for gate, ok, detail in rows]
        summary += _output.markdown_table(("gate", "result", "detail"), marks)
    else:
        summary += f"No gates configured for {result.stage}.\n"

    def table() -> None:
        if rows:
            _output.print_table(
                ("gate", "result", "detail"),
                rows,
                title=f"gates for {result.model} version {result.version} -> {result.stage}",
            )

    _output.emit(
        result.to_dict(),
        json_output=json_,
        table=table,
        summary_markdown=summary,
        outputs={"model": result.model, "version": result.version, "stage": result.stage, "status": result.status},
    )
    _output.status(_sentence(result))


def _sentence(result: PromotionResult) -> str:
    what = f"{result.model} version {result.version}"
    was = f" (displacing version {result.from_version})" if result.from_version else ""
    sentences: dict[str, Any] = {
        "promoted": f"promoted {what} to {result.stage}{was}",
        "would promote": f"dry run: {what} would be promoted to {result.stage}{was}; nothing changed",
        "would refuse": f"dry run: {what} would be refused for {result.stage}; nothing changed",
        "refused": f"refused {what} for {result.stage}; nothing changed",
        "unchanged": f"{what} already holds {result.stage}; nothing changed",
        "superseded": f"promoted {what} to {result.stage}, but another writer moved it right after",
    }
    return sentences.get(result.status, f"{what}: {result.status}")
