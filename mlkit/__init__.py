"""mlkit: versioned code, data and models, tracked runs, gated promotion and CI from one command.

The Python API is the command line's own core, one call per operation::

    import mlkit

    created = mlkit.init("churn", directory=Path("churn"), data_remote=Path("/srv/dvc/churn"))
    project = mlkit.load_project(Path(created.root))
    run = mlkit.train(project)
    mlkit.promote(project, "churn", run.model_version, to="staging")
    mlkit.reproduce(project, "churn@staging")
    mlkit.promote(project, "churn", from_stage="staging", to="production")
    mlkit.rollback(project, "churn", "production")  # production goes back to the version it had before

===================  ===========================================================================
``init``             create a project: template, git, DVC with a data remote, first commit
``load_project``     find the project above a folder and resolve its settings
``train``            fit, log with full lineage to MLflow and register a model version
``TrainOptions``     how ``train`` runs: ``--set`` overrides, experiment, register or not
``promote``          move a version to a stage if the policy gates pass; audited
``rollback``         give a stage back to the version that held it before; audited
``reproduce``        retrain a run or version from its lineage and compare with the original
``serve``            answer requests with the version a stage points at (``ServeOptions``)
``predict``          score a CSV or Parquet file of any size with a stage's version
``monitor``          compare current data with the version's training profile (``MonitorOptions``)
``MlkitError``       the root of every expected failure (``.message``, ``.hint``, ``.exit_code``)
===================  ===========================================================================

Nothing is imported until a name is used, so ``import mlkit`` stays instant and the command line's
``--help`` pays for none of it. The library never prints: pass ``progress=print`` to see status lines.
See docs/api.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> (module, attribute). Moving an operation to another module is a one-line change here.
_API: dict[str, tuple[str, str]] = {
    "init": ("mlkit.scaffold", "init_project"),
    "load_project": ("mlkit.project", "load_project"),
    "train": ("mlkit.training.runner", "train"),
    "TrainOptions": ("mlkit.training.runner", "TrainOptions"),
    "promote": ("mlkit.promotion", "promote"),
    "rollback": ("mlkit.promotion", "rollback"),
    "reproduce": ("mlkit.reproduction", "reproduce"),
    "serve": ("mlkit.serving.server", "serve"),
    "ServeOptions": ("mlkit.serving.server", "ServeOptions"),
    "predict": ("mlkit.serving.batch", "predict_file"),
    "monitor": ("mlkit.monitoring.monitor", "monitor"),
    "MonitorOptions": ("mlkit.monitoring.monitor", "MonitorOptions"),
    "MlkitError": ("mlkit.errors", "MlkitError"),
}

__all__ = [
    "MlkitError",
    "MonitorOptions",
    "ServeOptions",
    "TrainOptions",
    "__version__",
    "init",
    "load_project",
    "monitor",
    "predict",
    "promote",
    "reproduce",
    "rollback",
    "serve",
    "train",
]

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ resolves the same names
    from mlkit.errors import MlkitError
    from mlkit.monitoring.monitor import MonitorOptions, monitor
    from mlkit.project import load_project
    from mlkit.promotion import promote, rollback
    from mlkit.reproduction import reproduce
    from mlkit.scaffold import init_project as init
    from mlkit.serving.batch import predict_file as predict
    from mlkit.serving.server import ServeOptions, serve
    from mlkit.training.runner import TrainOptions, train


def __getattr__(name: str) -> Any:
    """Resolve an API name on first use (PEP 562) and keep it, so later uses cost nothing."""
    try:
        module, attribute = _API[name]
    except KeyError:
        raise AttributeError(f"module 'mlkit' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The documented names, so completion in a shell or an editor offers the API and not its plumbing."""
    return sorted(__all__)
