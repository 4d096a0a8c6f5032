"""`mlkit reproduce`: rebuild a run or model in a clean worktree and check the result matches."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from mlkit.reproduction import ReproduceResult


def reproduce(
    target: str = typer.Argument(
        ...,
        metavar="RUN_ID|NAME@STAGE|NAME/VERSION",
        help="What to rebuild: a run id (or a unique prefix of 6+ characters), a model stage or a model version.",
    ),
    tolerance: float = typer.Option(
        0.0,
        "--tolerance",
        min=0.0,
        help="Largest allowed difference per metric (default: exact); the predictions "
        "fingerprint is then not compared.",
    ),
    apply_diff: bool = typer.Option(
        False,
        "--apply-diff",
        help="Apply the run's recorded uncommitted diff (needed for a run trained with uncommitted changes); "
        "its files, lines and sha256 are shown on stderr first, and it is applied only if its sha256 is the "
        "one recorded at train time.",
    ),
    json_: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
) -> None:
    """Rebuild a model from its recorded commit, data, params and seed, and check the result matches.

    Exit code 0 when every metric and the test-split predictions match, 4 when they do not. A run trained
    with uncommitted changes needs --apply-diff (exit code 2 without it); a recorded diff whose sha256 is
    not the one recorded at train time is never applied (exit code 1).

    The recorded backend is replayed: a locally trained run is rebuilt in process even with
    MLKIT_DASK_SCHEDULER set; a run trained on Dask is rebuilt on the cluster that MLKIT_DASK_SCHEDULER or
    training.scheduler names, and refused without one (exit code 2). A mismatch on another cluster shape
    lists the backend differences first and leaves the recorded verdict as it was.

    Example: mlkit reproduce churn@production

    Example: mlkit reproduce 3f2a9c... --apply-diff
    """
    from mlkit.cli import _output
    from mlkit.project import load_project
    from mlkit.reproduction import ReproductionMismatch
    from mlkit.reproduction import reproduce as run_reproduction

    try:
        # with --apply-diff the diff's summary goes to stderr even with --json: it is shown before it is applied
        result = run_reproduction(
            load_project(),
            target,
            tolerance=tolerance,
            apply_diff=apply_diff,
            progress=_output.status if apply_diff or not json_ else None,
        )
    except ReproductionMismatch as exc:
        _render(exc.result, json_)
        raise
    _render(result, json_)


def _render(result: ReproduceResult, json_: bool) -> None:
    from mlkit.cli import _output

    rows = [(c.name, _fmt(c.original), _fmt(c.reproduced), "yes" if c.equal else "NO") for c in result.checks]
    verdict = "matches" if result.matched else "does NOT match"
    headline = (
        f"{result.target}: run {result.run_id} rebuilt from commit {result.commit[:12]}"
        f"{' + recorded diff' if result.applied_diff else ''} {verdict}"
        f"{'' if result.reproduced_backend == 'local' else f', on {result.reproduced_backend}'}"
    )
    summary = f"### mlkit reproduce {result.target}\n\n{headline}\n\n"
    summary += _output.markdown_table(("check", "original", "reproduced", "equal"), rows)
    if result.likely_causes:
        summary += "\nLikely causes:\n" + "".join(f"- {cause}\n" for cause in result.likely_causes)

    def table() -> None:
        _output.print_table(("check", "original", "reproduced", "equal"), rows, title=headline)
        if result.likely_causes:
            _output.out().print("Likely causes:")
            for cause in result.likely_causes:
                _output.out().print(f"  - {cause}", markup=False)

    _output.emit(
        result.to_dict(),
        json_output=json_,
        table=table,
        summary_markdown=summary,
        outputs={
            "run_id": result.run_id,
            "reproduced_run_id": result.reproduced_run_id or "",
            "matched": str(result.matched).lower(),
        },
    )


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, str) and len(value) == 64:
        return value[:16] + "…"
    return "-" if value is None else str(value)
