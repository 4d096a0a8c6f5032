"""`mlkit data`: versioned data sets over DVC (add, replace, remove, push, pull, checkout, status, ls, remotes, gc)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from mlkit import constants as C
from mlkit.cli import _output
from mlkit.project import load_project

if TYPE_CHECKING:
    from mlkit import data
    from mlkit.engines.dvc import ProgressEvent

# mlkit --help imports every command module: the core modules a command drives are imported inside it

app = typer.Typer(
    help="Version data sets with DVC: add, replace, remove, push, pull, checkout, status, ls, remotes, gc. "
    f"Commands wait at most {C.ENV_DATA_LOCK_TIMEOUT} seconds (default 60) for DVC's lock."
    "\n\nExample: mlkit data add data/raw && mlkit data push",
    no_args_is_help=True,
)
remote_app = typer.Typer(
    help="Configure where `mlkit data push` sends data.\n\n"
    "Example: mlkit data remote add storage /mnt/shared/dvc --default",
    no_args_is_help=True,
)
app.add_typer(remote_app, name="remote")

_JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")
_REMOTE = typer.Option(None, "--remote", "-r", help="Remote name (default: the project's default remote).")
_JOBS = typer.Option(None, "--jobs", "-j", min=1, help="Parallel transfers (default: DVC's).")
_FORCE = typer.Option(False, "--force", "-f", help="Overwrite workspace changes DVC has not recorded.")


@app.command("add")
def add(
    paths: list[str] = typer.Argument(..., help="Files or folders inside the project.", show_default=False),
    commit: bool = typer.Option(False, "--commit", help="Commit the `.dvc` and `.gitignore` changes."),
    message: str | None = typer.Option(None, "--message", "-m", help="Commit message (with --commit)."),
    json_: bool = _JSON,
) -> None:
    """Track files or folders with DVC and stage the `.dvc` files and `.gitignore` changes in git.

    Unchanged data is not hashed again. A failed add leaves nothing behind.

    Example: mlkit data add data/raw/customers.parquet --commit -m "Add customers"
    """
    from mlkit import data

    project = load_project()
    with _progress() as report:
        result = data.add(project, paths, commit=commit, message=message, progress=report)
    rows = [(d.path, _size(d.size), d.nfiles or "", d.md5) for d in result.added]

    def table() -> None:
        _output.print_table(("path", "size", "files", "md5"), rows)
        _output.status(
            f"staged in git: {' '.join(result.staged)}"
            if not result.commit
            else f"committed {result.commit[:12]}: {' '.join(result.staged)}"
        )

    _emit(
        result.to_dict(),
        json_,
        table,
        ("path", "size", "files", "md5"),
        rows,
        {"data_md5": ",".join(d.md5 for d in result.added), "data_commit": result.commit or ""},
    )


@app.command("replace")
def replace(
    new_file: str = typer.Argument(..., help="A CSV or Parquet file, inside the project or anywhere else."),
    target: str | None = typer.Option(
        None, "--target", help="The column to predict in the new file (default: data.target).", show_default=False
    ),
    commit: bool = typer.Option(False, "--commit", help="Commit the changes to git."),
    message: str | None = typer.Option(None, "--message", "-m", help="Commit message (with --commit)."),
    json_: bool = _JSON,
) -> None:
    """Train on another data file from now on: the one `data.train` in mlkit.yaml names is replaced.

    The file is checked first (readable, the target among its columns, enough rows, fits model.task),
    copied next to the old data set under its own name and tracked by DVC; the old data set is
    untracked when the name differs (DVC's cache and remote keep it for older commits). data.train
    (and data.target with --target) in mlkit.yaml and the dependency in dvc.yaml are updated, comments
    kept, and everything is staged in git. A failed replace changes nothing.

    Example: mlkit data replace ~/Downloads/customers-2025.csv --commit
    """
    from mlkit import data

    project = load_project()
    with _progress() as report:
        result = data.replace(project, new_file, target=target, commit=commit, message=message, progress=report)
    rows = [("data.train", f"{result.new} ({result.rows} rows)"), ("target", result.target), ("md5", result.md5)]
    if result.removed:
        rows.append(("untracked", ", ".join(result.removed)))

    def table() -> None:
        _output.print_table(("", ""), rows)
        _staged_status(result.staged, result.commit, f"Train on {result.new}")

    _emit(
        result.to_dict(),
        json_,
        table,
        ("", ""),
        rows,
        {"data_train": result.new, "data_md5": result.md5, "data_commit": result.commit or ""},
    )


@app.command("remove")
def remove(
    path: str = typer.Argument(..., help="A tracked data set (the data, not its .dvc file)."),
    keep_file: bool = typer.Option(False, "--keep-file", help="Leave the workspace copy (git no longer ignores it)."),
    commit: bool = typer.Option(False, "--commit", help="Commit the changes to git."),
    message: str | None = typer.Option(None, "--message", "-m", help="Commit message (with --commit)."),
    json_: bool = _JSON,
) -> None:
    """Stop tracking a data set: its .dvc file, its .gitignore line and its workspace copy go.

    Its data stays in DVC's cache and remote, so older commits still check it out. A modified
    workspace copy is refused (it would be lost), and so is the training data: use `mlkit data replace`.

    Example: mlkit data remove data/raw/old-export.csv --commit
    """
    from mlkit import data

    result = data.remove(load_project(), path, keep_file=keep_file, commit=commit, message=message)
    rows = [(result.path, result.dvc_file, "kept" if result.kept_file else "deleted")]

    def table() -> None:
        _output.print_table(("path", "dvc file", "workspace copy"), rows)
        _staged_status(result.staged, result.commit, f"Stop tracking {result.path}")

    _emit(
        result.to_dict(),
        json_,
        table,
        ("path", "dvc file", "workspace copy"),
        rows,
        {"data_removed": result.path, "data_commit": result.commit or ""},
    )


def _staged_status(staged: list[str], commit: str | None, message: str) -> None:
    if commit:
        _output.status(f"committed {commit[:12]}: {' '.join(staged)}")
    elif staged:
        _output.status(f'staged in git: {" ".join(staged)}; record it with `git commit -m "{message}"`')


@app.command("status")
def status(json_: bool = _JSON) -> None:
    """Compare each tracked data set with its workspace copy: unchanged, modified or missing.

    Example: mlkit data status --json
    """
    from mlkit import data

    entries = data.status(load_project())
    rows = [(e.path, e.state) for e in entries]

    def table() -> None:
        if not entries:
            _output.status("no data sets tracked yet; add one with `mlkit data add PATH`")
        else:
            _output.print_table(("path", "state"), rows)

    changed = [e.path for e in entries if e.state != "unchanged"]
    _emit(
        [e.to_dict() for e in entries],
        json_,
        table,
        ("path", "state"),
        rows,
        {"data_changed": ",".join(changed), "data_clean": str(not changed).lower()},
    )


@app.command("push")
def push(remote: str | None = _REMOTE, jobs: int | None = _JOBS, json_: bool = _JSON) -> None:
    """Upload the tracked data sets to the remote (only what it does not have yet).

    Example: mlkit data push --remote storage
    """
    from mlkit import data

    with _progress() as report:
        result = data.push(load_project(), remote=remote, jobs=jobs, progress=report)
    _transfer_output(result, json_, "pushed")


@app.command("pull")
def pull(
    paths: list[str] = typer.Argument(None, help="Tracked data sets to pull (default: all).", show_default=False),
    remote: str | None = _REMOTE,
    jobs: int | None = _JOBS,
    force: bool = _FORCE,
    json_: bool = _JSON,
) -> None:
    """Download tracked data sets from the remote and put them in the workspace.

    Example: mlkit data pull data/raw/customers.parquet
    """
    from mlkit import data

    with _progress() as report:
        result = data.pull(load_project(), paths or [], remote=remote, jobs=jobs, force=force, progress=report)
    _transfer_output(result, json_, "fetched")


@app.command("checkout")
def checkout(
    paths: list[str] = typer.Argument(None, help="Tracked data sets (default: all).", show_default=False),
    force: bool = _FORCE,
    json_: bool = _JSON,
) -> None:
    """Make the workspace copies match the `.dvc` files, from the local cache (e.g. after `git checkout`).

    Example: git checkout v1.0 -- data/ && mlkit data checkout
    """
    from mlkit import data

    result = data.checkout(load_project(), paths or [], force=force)
    _transfer_output(result, json_, None)


@app.command("ls")
def ls(
    remote: str | None = _REMOTE,
    no_remote: bool = typer.Option(False, "--no-remote", help="Do not ask the remote what it holds."),
    json_: bool = _JSON,
) -> None:
    """List tracked data sets: size, md5, file count of folders, whether cache and remote hold them.

    Example: mlkit data ls --json
    """
    from mlkit import data

    found = data.data_sets(load_project(), remote=remote, check_remote=not no_remote)
    columns = ("path", "size", "files", "md5", "cache", "remote")
    rows = [(d.path, _size(d.size), d.nfiles or "", d.md5, _yes(d.in_cache), _yes(d.in_remote)) for d in found]

    def table() -> None:
        if not found:
            _output.status("no data sets tracked yet; add one with `mlkit data add PATH`")
        else:
            _output.print_table(columns, rows)

    missing = [d.path for d in found if d.in_remote is False]
    _emit(
        [d.to_dict() for d in found],
        json_,
        table,
        columns,
        rows,
        {"data_sets": len(found), "data_not_pushed": ",".join(missing)},
    )


@app.command("gc")
def gc(
    yes: bool = typer.Option(False, "--yes", "-y", help="Really delete (gc never asks)."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Only list what would be removed."),
    json_: bool = _JSON,
) -> None:
    """Delete cached data the workspace's data sets no longer use (pushed data stays in the remote).

    Example: mlkit data gc --dry-run && mlkit data gc --yes
    """
    from mlkit import data

    result = data.gc(load_project(), dry_run=dry_run, yes=yes)

    def table() -> None:
        verb = "would remove" if dry_run else "removed"
        for oid in result.objects:
            typer.echo(oid)
        _output.status(f"{verb} {len(result.objects)} cached objects ({_size(result.bytes)})")

    _emit(
        result.to_dict(),
        json_,
        table,
        ("object",),
        [(o,) for o in result.objects],
        {"data_gc_objects": len(result.objects), "data_gc_bytes": result.bytes},
    )


@remote_app.command("add")
def remote_add(
    name: str = typer.Argument(..., help="A name for the remote, e.g. storage."),
    url: str = typer.Argument(..., help="A directory, or s3://bucket/path for S3-compatible storage."),
    default: bool = typer.Option(False, "--default", "-d", help="Make it the default remote."),
    endpoint_url: str | None = typer.Option(
        None, "--endpoint-url", help="S3-compatible endpoint, e.g. http://127.0.0.1:9000."
    ),
    force: bool = typer.Option(False, "--force", "-f", help="Replace a remote with the same name."),
    json_: bool = _JSON,
) -> None:
    """Add a DVC remote to `.dvc/config` (shared through git) and stage that file.

    Credentials in the URL (s3://KEY:SECRET@bucket/path, https://user:password@host/path) go to
    `.dvc/config.local`, which git ignores; the URL is stored without them.

    Example: mlkit data remote add storage s3://ml-data/churn --default --endpoint-url http://127.0.0.1:9000
    """
    from mlkit import data

    result = data.add_remote(load_project(), name, url, default=default, endpoint_url=endpoint_url, force=force)
    _output.emit(result, json_output=json_)


@remote_app.command("list")
def remote_list(json_: bool = _JSON) -> None:
    """List the DVC remotes, the default first.

    Example: mlkit data remote list --json
    """
    from mlkit import data

    found = data.remotes(load_project())

    def table() -> None:
        if not found:
            _output.status("no remotes; add one with `mlkit data remote add NAME URL --default`")
        else:
            _output.print_table(
                ("name", "url", "default", "endpoint"),
                [(r["name"], r["url"], _yes(r["default"]), r["endpoint_url"] or "") for r in found],
            )

    _output.emit(found, json_output=json_, table=table)


# --- rendering -----------------------------------------------------------------------------------


def _transfer_output(result: data.TransferResult, json_: bool, counted: str | None) -> None:
    rows = [(p, change) for change in ("added", "modified", "deleted") for p in getattr(result, change)]

    def table() -> None:
        if rows:
            _output.print_table(("path", "change"), rows)
        if counted:
            where = f" ({result.remote})" if result.remote else ""
            _output.status(f"{counted} {result.transferred} files{where}")
        elif not rows:
            _output.status("workspace already matches the .dvc files")

    _emit(
        result.to_dict(),
        json_,
        table,
        ("path", "change"),
        rows,
        {"data_transferred": result.transferred, "data_changed": ",".join(p for p, _ in rows)},
    )


def _emit(
    result: Any,
    json_: bool,
    table: Callable[[], None],
    columns: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    outputs: dict[str, Any],
) -> None:
    """The result on stdout (table or JSON); inside GitHub Actions the rows as the step summary and outputs."""
    summary = _output.markdown_table(columns, rows) if rows else "_no data sets changed_"
    _output.emit(result, json_output=json_, table=table, summary_markdown=summary, outputs=outputs)


@contextmanager
def _progress() -> Iterator[Callable[[ProgressEvent], None] | None]:
    """Rich progress bars on stderr for DVC's transfers; nothing when stderr is not a terminal."""
    console = _output.err()
    if not console.is_terminal or console.is_dumb_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    display = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[bytes]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    tasks: dict[int, Any] = {}

    def report(event: ProgressEvent) -> None:
        task = tasks.get(event.key)
        if task is None:
            if event.finished:
                return
            task = tasks[event.key] = display.add_task(event.description[:60] or "working", total=event.total, bytes="")
        extra = f"{_size(int(event.completed))}/{_size(int(event.total or 0))}" if event.unit == "B" else ""
        display.update(task, completed=event.completed, total=event.total, bytes=extra)
        if event.finished:
            display.remove_task(task)
            del tasks[event.key]

    with display:
        yield report


def _size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size)


def _yes(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "no")
