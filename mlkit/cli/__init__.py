"""The `mlkit` command: one Typer app per command group, mounted here.

Exit codes are translated from exceptions in exactly one place, :meth:`_RootGroup.invoke`. Modules
imported here must stay light: heavy libraries are imported inside the commands that use them.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from mlkit import __version__
from mlkit import constants as C
from mlkit.cli import ci as ci_cli
from mlkit.cli import config as config_cli
from mlkit.cli import data as data_cli
from mlkit.cli import init as init_cli
from mlkit.cli import models as models_cli
from mlkit.cli import monitor as monitor_cli
from mlkit.cli import promote as promote_cli
from mlkit.cli import reproduce as reproduce_cli
from mlkit.cli import runs as runs_cli
from mlkit.cli import serve as serve_cli
from mlkit.cli import server as server_cli
from mlkit.cli import train as train_cli
from mlkit.errors import ExitCode, MlkitError
from mlkit.uris import redact_text

_state = {"debug": False}


def debug_enabled() -> bool:
    return _state["debug"] or os.environ.get(C.ENV_DEBUG, "") not in ("", "0", "false")


# options of the root command that are also accepted after a subcommand (`mlkit train --debug`)
_GLOBAL_FLAGS = ("--debug",)


def _lift_global_options(args: list[str]) -> list[str]:
    """``args`` with the global flags moved in front of the subcommand; nothing after ``--`` moves."""
    end = args.index("--") if "--" in args else len(args)
    lifted = [arg for arg in args[:end] if arg in _GLOBAL_FLAGS]
    rest = [arg for arg in args[:end] if arg not in _GLOBAL_FLAGS]
    return [*dict.fromkeys(lifted), *rest, *args[end:]]


class _RootGroup(TyperGroup):
    """Turns every exception that leaves a command into an exit code and (at most) one error line."""

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        # the error hints say "run again with --debug": that must work wherever the user puts it
        argv = list(sys.argv[1:] if args is None else args)
        return super().main(_lift_global_options(argv), *rest, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        from mlkit.cli import _output

        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except MlkitError as exc:
            if debug_enabled():
                _print_traceback()
            _output.report_error(redact_text(exc.message), redact_text(exc.hint) if exc.hint else None)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            _output.report_error("interrupted", None)
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:
            if debug_enabled():
                _print_traceback()
            message = redact_text(f"unexpected {type(exc).__name__}: {exc}".splitlines()[0])
            _output.report_error(message, f"run again with --debug (or {C.ENV_DEBUG}=1) for the traceback")
            raise typer.Exit(int(ExitCode.FAILED)) from None


def _print_traceback() -> None:
    import traceback

    # plain traceback, never local variables: they may hold credentials
    traceback.print_exc(file=sys.stderr)


app = typer.Typer(
    cls=_RootGroup,
    name="mlkit",
    help="From an empty folder to a model in production: versioned code, data and models, "
    "tracked runs, gated promotion, CI.\n\nExample: mlkit init churn && cd churn && mlkit train",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # plain help and usage errors: rich's help renderer costs more than the rest of startup together
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"mlkit {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_show_version, is_eager=True, help="Show the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help=f"Show tracebacks for errors (or set {C.ENV_DEBUG}=1)."),
) -> None:
    _state["debug"] = debug


# in the order of the loop: create, version data, train, look, promote, prove, automate, scale
app.command("init")(init_cli.init)
app.add_typer(config_cli.app, name="config")
app.add_typer(data_cli.app, name="data")
app.command("train")(train_cli.train)
app.add_typer(runs_cli.app, name="runs")
app.command("ui")(train_cli.ui)
app.command("promote")(promote_cli.promote)
app.command("rollback")(promote_cli.rollback)
app.add_typer(models_cli.app, name="models")
app.command("reproduce")(reproduce_cli.reproduce)
app.command("monitor")(monitor_cli.monitor)
app.add_typer(ci_cli.app, name="ci")
app.add_typer(server_cli.app, name="server")
app.command("serve")(serve_cli.serve)
app.command("predict")(serve_cli.predict)

# A command such as `mlkit train` imports MLflow, DVC, SQLAlchemy, pandas and scikit-learn: close to half
# a million long-lived objects. With CPython's default first threshold (700 allocations) the cycle
# collector then runs about a thousand times per run and walks the older generations again and again,
# about 1 s of a training run. A larger first threshold leaves it to real garbage.
_GC_FIRST_THRESHOLD = 10_000


def main() -> None:
    """Console-script entry point."""
    import gc

    first, second, third = gc.get_threshold()
    gc.set_threshold(max(_GC_FIRST_THRESHOLD, first), second, third)
    # SIGTERM is an interrupt like Ctrl-C on every command: the same clean-up, exit 130
    import signal

    def _terminated(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminated)
    try:
        app(prog_name="mlkit")
    finally:
        # The command is over. CPython's finalization puts signals with Python handlers back to their
        # default action, so a SIGTERM now would kill the process (-15) after the work was done and
        # reported; ignored, the process exits with the command's own code.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        # Whatever is alive now lives until the process exits. The interpreter's final collections
        # would walk all of it (about 1.4 s after a training run) to free memory the OS takes back
        # anyway; frozen objects are skipped. Module teardown still runs, and files are still closed.
        gc.freeze()
