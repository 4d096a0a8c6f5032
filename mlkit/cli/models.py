"""`mlkit models`: the registered models, one version in detail, and the audit trail."""

from __future__ import annotations

from typing import Any

import typer

app = typer.Typer(help="Registered models: stages, lineage and the promotion audit trail.", no_args_is_help=True)


@app.command("list")
def list_(json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List the registered models with the version holding each stage.

    Example: mlkit models list --json
    """
    from mlkit import registry
    from mlkit.cli import _output
    from mlkit.project import load_project

    project = load_project()
    models = [m.to_dict() for m in registry.list_models(project)]
    stages = project.config.stages
    columns = ("model", "latest", *stages, "last audit event")
    rows = [
        (m["name"], m["latest_version"], *(m["stages"].get(s, "") for s in stages), m["last_event"] or "")
        for m in models
    ]
    _output.emit(
        models,
        json_output=json_,
        table=lambda: _output.print_table(columns, rows),
        summary_markdown="### Registered models\n\n" + _output.markdown_table(columns, rows),
        outputs={"models": ",".join(m["name"] for m in models)},
    )


@app.command("show")
def show(
    ref: str = typer.Argument(
        ..., metavar="NAME[@STAGE|/VERSION]", help="A model (latest version), NAME@STAGE or NAME/VERSION."
    ),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show one model version: stage, metrics, run, git commit, data md5s, params, who promoted it and when.

    Example: mlkit models show churn@production
    """
    from mlkit import registry
    from mlkit.cli import _output
    from mlkit.config import flatten
    from mlkit.project import load_project

    info = registry.show_version(load_project(), ref).to_dict()
    flat = {k: v for k, v in info.items() if k not in ("tags", "metrics", "data_md5s", "params", "monitored")}
    flat["aliases"] = ", ".join(info["aliases"])
    nested = {"metrics": info["metrics"], "data_md5": info["data_md5s"], "params": info["params"]}
    if info["monitored"]:
        nested["monitored"] = info["monitored"]
    flat.update(flatten(nested))
    title = f"{info['name']} version {info['version']}"
    _output.emit(
        info,
        json_output=json_,
        table=lambda: _output.print_mapping(flat, title=title),
        summary_markdown=_output.mapping_markdown(title, flat),
        outputs={
            "model": info["name"],
            "version": info["version"],
            "stage": info["stage"] or "",
            "run_id": info["run_id"] or "",
            "git_commit": info["git_commit"] or "",
        },
    )


@app.command("history")
def history(
    name: str = typer.Argument(..., help="Registered model name."),
    stage: str | None = typer.Option(None, "--stage", help="Only the entries of this stage."),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show the audit trail: every promotion, refusal and rollback with time, actor, versions and gates.

    Example: mlkit models history churn --stage production
    """
    from mlkit import registry
    from mlkit.cli import _output
    from mlkit.project import load_project

    entries = [e.to_dict() for e in registry.history(load_project(), name, stage)]
    columns = ("time", "action", "stage", "from", "to", "state", "actor", "gates", "reason")
    rows = [
        (
            _when(e.get("time")),
            e.get("action"),
            e.get("stage"),
            e.get("from_version") or "-",
            e.get("to_version"),
            e.get("state"),
            _who(e.get("actor")),
            _gates(e.get("gates") or []),
            e.get("reason"),
        )
        for e in entries
    ]
    _output.emit(
        entries,
        json_output=json_,
        table=lambda: _output.print_table(columns, rows),
        summary_markdown=f"### Audit trail of {name}\n\n" + _output.markdown_table(columns, rows),
        outputs={"model": name, "entries": len(entries)},
    )


def _when(stamp: Any) -> str:
    # 2026-11-27T10:52:50.579Z -> 2026-11-27 10:52:50 (UTC); --json keeps the full stamp
    return str(stamp or "")[:19].replace("T", " ")


def _who(actor: Any) -> str:
    return str(actor or "").split(" <")[0]


def _gates(gates: list[dict[str, Any]]) -> str:
    if not gates:
        return "-"
    failed = [g["gate"] for g in gates if not g.get("passed")]
    return f"{len(gates) - len(failed)}/{len(gates)}" + (f" failed: {', '.join(failed)}" if failed else "")
