"""Everything the command line shows: results on stdout, status and errors on stderr, and, inside
GitHub Actions, the step summary, step outputs and error annotations.

The core library never prints; commands hand their result to these helpers.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


_PIPED_WIDTH = 200


@cache
def out() -> Console:
    from rich.console import Console

    console = Console(soft_wrap=False, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # piped into a file or a CI log: nothing to fit, so tables keep whole values on one line
        console = Console(soft_wrap=False, highlight=False, width=_PIPED_WIDTH)
    return console


@cache
def err() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def status(message: str) -> None:
    """A progress or status line, on stderr."""
    err().print(message, markup=False)


def warn(message: str) -> None:
    err().print(f"[yellow]warning:[/] {_escape(message)}")
    github_annotation("warning", message)


def print_json(data: Any) -> None:
    """Machine-readable result on stdout, nothing else on that stream."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False, header_style="bold", show_header=any(columns))
    for name in columns:
        table.add_column(name)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    out().print(table)


def print_mapping(data: Mapping[str, Any], title: str | None = None) -> None:
    print_table(("key", "value"), ((k, cell(v)) for k, v in data.items()), title=title)


def emit(
    result: Any,
    *,
    json_output: bool,
    table: Mapping[str, Any] | Callable[[], None] | None = None,
    summary_markdown: str | None = None,
    outputs: Mapping[str, Any] | None = None,
) -> None:
    """Render a command's result on every channel it goes to, the same way for every command.

    - stdout: ``result`` as JSON when ``json_output``, else ``table``: a mapping shown as a key/value
      table, or a callable that prints the table itself; by default ``result`` as a key/value table.
    - inside GitHub Actions: ``summary_markdown`` appended to the step summary (see
      :func:`mapping_markdown`) and ``outputs`` written as step outputs. Outside it these are ignored,
      so a command passes them unconditionally.

    ``result`` is the object ``--json`` prints: plain data (``to_dict()`` of the core's result).
    """
    if json_output:
        print_json(result)
    elif callable(table):
        table()
    else:
        print_mapping(result if table is None else table)
    if summary_markdown:
        github_summary(summary_markdown)
    if outputs:
        github_outputs(outputs)


def mapping_markdown(title: str, data: Mapping[str, Any]) -> str:
    """A step-summary section: a level-3 ``title`` over ``data`` as a key/value Markdown table."""
    return f"### {title}\n\n" + markdown_table(("key", "value"), ((k, cell(v)) for k, v in data.items()))


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return ("" if value is None else str(value)).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def report_error(message: str, hint: str | None) -> None:
    err().print(f"[bold red]error:[/] {_escape(message)}")
    if hint:
        err().print(f"[dim]hint:[/] {_escape(hint)}")
    github_annotation("error", message if not hint else f"{message} ({hint})")


# --- GitHub Actions -------------------------------------------------------------------------------


def in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def github_summary(markdown: str) -> None:
    """Append Markdown to the job's step summary (only inside GitHub Actions)."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if in_github_actions() and target:
        with Path(target).open("a", encoding="utf-8") as handle:
            handle.write(markdown.rstrip("\n") + "\n\n")


def github_outputs(values: Mapping[str, Any]) -> None:
    """Write key values to the step's outputs (only inside GitHub Actions)."""
    target = os.environ.get("GITHUB_OUTPUT")
    if not (in_github_actions() and target):
        return
    with Path(target).open("a", encoding="utf-8") as handle:
        for key, value in values.items():
            text = "" if value is None else str(value)
            if "\n" in text:
                delimiter = f"ghadelimiter_{uuid.uuid4().hex}"
                handle.write(f"{key}<<{delimiter}\n{text}\n{delimiter}\n")
            else:
                handle.write(f"{key}={text}\n")


def github_annotation(level: str, message: str) -> None:
    """Emit a workflow command such as ``::error::message`` (only inside GitHub Actions).

    On stderr: the runner reads workflow commands from both streams of a step, and stdout stays the
    command's result alone, so ``mlkit ... --json > result.json`` holds nothing but JSON in a workflow too.
    """
    if in_github_actions():
        escaped = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        sys.stderr.write(f"::{level}::{escaped}\n")
        sys.stderr.flush()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def cell(value: Any) -> str:
    """A value as one table cell: JSON for lists and mappings, empty for None."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)
