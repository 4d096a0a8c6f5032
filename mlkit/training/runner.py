"""`mlkit train`: fit the project's model on the DVC-tracked data and track everything in MLflow.

A run, step by step: resolve the model, record the lineage, open the tracking run (in the background,
see ``session``), load and split the data, cross-validate, fit, evaluate, log, register, then write the
DVC outputs. This module only orders the steps; MLflow is driven through :mod:`mlkit.engines.mlflow`,
the metrics through ``evaluation`` and the DVC outputs through ``outputs``.
"""

from __future__ import annotations

import getpass
import json
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlkit import lineage as L
from mlkit import runs, tags
from mlkit.config import flatten
from mlkit.engines import mlflow
from mlkit.errors import MlkitError, OperationError, first_line
from mlkit.monitoring.profile import write_reference
from mlkit.progress import Progress
from mlkit.project import Project, load_project
from mlkit.runs import FIT_SECONDS
from mlkit.serving import model as serving_model
from mlkit.training import datasets, distributed, evaluation, interrupts, outputs, plots
from mlkit.training.estimators import build_estimator, call_entrypoint, fits_on_one_core, is_xgboost
from mlkit.training.evaluation import ModelFactory
from mlkit.training.fitted import FittedModel
from mlkit.training.fitting import check_backend, fit_model, record_backend, table_reader
from mlkit.training.preprocessing import build_preprocessor, infer_columns
from mlkit.training.session import OpenedRun, TrackingSession, preimport_training
from mlkit.uris import redact

_INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"
# what a logged model needs to load: pinned to the versions installed now
_MODEL_DISTRIBUTIONS = ("scikit-learn", "cloudpickle", "pandas", "numpy", "scipy")


@dataclass(frozen=True)
class TrainOptions:
    """How to run: ``overrides`` map dotted keys to values, like ``--set`` (``params.*`` go to params.yaml),
    e.g. ``{"params.estimator.max_depth": 6}``."""

    overrides: Mapping[str, Any] = field(default_factory=dict)
    experiment: str | None = None
    register: bool = True
    allow_dirty: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)
    command: Sequence[str] | None = None  # the argv recorded as lineage; default sys.argv
    write_metrics: bool = True  # metrics.json and the train stage in dvc.lock


@dataclass
class TrainResult:
    run_id: str
    experiment_id: str
    experiment: str
    model_name: str
    model_version: str | None
    model_uri: str
    metrics: dict[str, float]
    cv_metrics: dict[str, float]
    lineage: L.RunLineage
    predictions_sha256: str
    artifacts: list[str]
    total_seconds: float  # the whole call, from settings to dvc.lock
    fit_seconds: float  # fitting the model alone (also the run's metric of that name)
    stage_recorded: bool = False
    warnings: list[str] = field(default_factory=list)
    uncommitted: list[str] = field(default_factory=list)  # dvc.lock, metrics.json when they now differ
    backend: str = "local"  # where the model was fitted: local, or dask
    scheduler: str | None = None  # the Dask scheduler's address, redacted

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "experiment": self.experiment,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_uri": self.model_uri,
            "metrics": self.metrics,
            "cv_metrics": self.cv_metrics,
            "predictions_sha256": self.predictions_sha256,
            "lineage": self.lineage.tags(),
            "artifacts": self.artifacts,
            "total_seconds": self.total_seconds,
            "fit_seconds": self.fit_seconds,
            "stage_recorded": self.stage_recorded,
            "warnings": self.warnings,
            "uncommitted": self.uncommitted,
            "backend": self.backend,
            "scheduler": self.scheduler,
        }


@dataclass(frozen=True)
class TrainOutcome:
    """What the tracked run produced, before registration."""

    metrics: dict[str, float]
    cv_metrics: dict[str, float]
    predictions_sha256: str
    model_uri: str
    label_mapping: str  # JSON of the original labels by encoded class; "" when the labels were kept
    artifacts: list[str]
    fit_seconds: float
    warnings: list[str] = field(default_factory=list)
    profile_tags: dict[str, str] = field(default_factory=dict)  # the reference profile's hash, for monitoring


@dataclass(frozen=True)
class _Fit:
    fitted: FittedModel
    rows: int
    seconds: float


@dataclass(frozen=True)
class _Evaluation:
    predicted: Any
    scores: Any | None
    metrics: dict[str, float]
    fingerprint: str


def finished_before_interrupt(run_id: str, model_name: str, version: str | None) -> str:
    """The line that tells an interrupted user the run had already finished (and which version it made)."""
    registered = f" with version {version} of {model_name}" if version else ""
    return f"interrupted after the run had begun to finish: run {run_id} is FINISHED{registered}"


def train(project: Project, options: TrainOptions | None = None, progress: Progress | None = None) -> TrainResult:
    """Train the model ``project`` describes, log it with its lineage, register a version, return the result.

    ``project.root`` may differ from the working directory (reproduction trains in a worktree). Nothing is
    printed; ``progress`` receives status lines. Expected failures raise :class:`MlkitError`; a run that
    was started is then ended FAILED (KILLED on KeyboardInterrupt) with the reason in ``mlkit.failure``,
    and no model version is registered. Once registration has begun, SIGINT and SIGTERM wait until the
    version exists, the run is FINISHED and the outputs are written; KeyboardInterrupt is raised then.
    Lost runs of the experiment (see :func:`mlkit.runs.lost_reason`) are ended FAILED first.
    """
    options = options or TrainOptions()
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    heartbeat_seconds = runs.heartbeat_seconds()
    project = _with_overrides(project, options.overrides)
    config = project.config
    check_backend(config.training.backend, config.training.scheduler)
    backend, scheduler = describe_backend(config.training.backend, config.training.scheduler)

    say(f"checking {config.model.entrypoint or config.model.estimator}")
    estimator, entrypoint = _resolve_model(project)
    check_columns(project)
    say("recording lineage (git, data versions, environment)")
    lineage = _collect_lineage(project, options.command)
    L.require_clean(lineage.git_dirty, options.allow_dirty)

    experiment = options.experiment or project.experiment
    preimport_training()
    say(f"opening the tracking store, experiment {experiment}")
    session = TrackingSession(
        project, experiment, _run_tags(lineage, options.tags), heartbeat_seconds=heartbeat_seconds
    ).start()
    try:
        outcome = _train_in_run(project, session, estimator, entrypoint, lineage, say)
        opened = session.result()
    except KeyboardInterrupt:
        replacement = _end_interrupted(session, project)
        if replacement is None:
            raise
        raise replacement from None
    except Exception as exc:
        replacement = _end_failed(session, project, exc)
        if replacement is None:
            raise
        raise replacement from exc

    # The last step is done whole or not begun: once registration starts, an interrupt waits until the
    # version exists, the run is FINISHED and the outputs are written, then takes effect (exit 130).
    stage_recorded = False
    uncommitted: list[str] = []
    with interrupts.deferred() as held:
        session.stop_heartbeat()
        try:
            _require_running(opened)
            version = _register(project, opened, lineage, outcome, say) if options.register else None
            mlflow.finish_run(opened.client, opened.run_id)
        except Exception as exc:
            replacement = _end_failed(session, project, exc)
            if replacement is None:
                raise
            raise replacement from exc
        if options.write_metrics:
            outputs.write_metrics(project.root, outcome.metrics, outcome.cv_metrics)
            stage_recorded = outputs.record_stage(project.root, say)
            uncommitted = outputs.uncommitted(project.root)
    if held.signalled:
        say(finished_before_interrupt(opened.run_id, project.model_name, version))
        raise KeyboardInterrupt
    return TrainResult(
        run_id=opened.run_id,
        experiment_id=opened.experiment_id,
        experiment=experiment,
        model_name=project.model_name,
        model_version=version,
        model_uri=outcome.model_uri,
        metrics=outcome.metrics,
        cv_metrics=outcome.cv_metrics,
        lineage=lineage,
        predictions_sha256=outcome.predictions_sha256,
        artifacts=outcome.artifacts,
        total_seconds=round(time.perf_counter() - started, 3),
        fit_seconds=outcome.fit_seconds,
        stage_recorded=stage_recorded,
        warnings=outcome.warnings,
        uncommitted=uncommitted,
        backend=backend,
        scheduler=scheduler,
    )


# --- before the run ------------------------------------------------------------------------------------


def _with_overrides(project: Project, overrides: Mapping[str, Any]) -> Project:
    if not overrides:
        return project
    return load_project(project.root, overrides=overrides)


def _resolve_model(project: Project) -> tuple[Any, Callable[..., Any] | None]:
    """The unfitted estimator (validated now, before any data is read), or the entrypoint to call."""
    config, params = project.config, project.params
    if config.model.entrypoint:
        return None, datasets.load_callable(config.model.entrypoint, project.root, "model.entrypoint")
    return build_estimator(config.model.estimator, params.estimator, seed=params.seed, task=config.model.task), None


def check_columns(project: Project) -> None:
    """The target and dropped columns against the data files' headers, before any data is read and before
    the tracking store opens. With a feature hook the columns are known only after it ran: not checked."""
    config = project.config
    if config.data.hook:
        return
    for source in [config.data.train] + ([config.data.test] if config.data.test else []):
        columns = datasets.read_columns(project.path(source))
        if columns is not None:
            datasets.check_columns(columns, target=config.data.target, drop=config.data.drop, source=source)


def describe_backend(backend: str, scheduler: str | None) -> tuple[str, str | None]:
    """(backend, its scheduler's address with any password hidden), as the result reports them."""
    return backend, redact(scheduler) if backend == "dask" and scheduler else None


def _collect_lineage(project: Project, command: Sequence[str] | None) -> L.RunLineage:
    config, params = project.config, project.params
    inputs = [config.data.train] + ([config.data.test] if config.data.test else [])
    split = {
        "test_size": params.test_size,
        "cv_folds": params.cv_folds,
        "seed": params.seed,
        "stratify": config.model.task == "classification",
        "test_file": config.data.test,
    }
    return L.collect_lineage(
        project.root,
        inputs=inputs,
        params=params.model_dump(mode="json"),
        seed=params.seed,
        split=split,
        command=command,
        backend=record_backend(project),  # for Dask, the cluster's shape: an unreachable one fails here
    )


def _run_tags(lineage: L.RunLineage, extra: Mapping[str, str]) -> dict[str, str]:
    """The tags the run is created with: the lineage, the caller's, and MLflow's own source tags."""
    run_tags = {
        **lineage.tags(),
        **dict(extra),
        "mlflow.source.name": "mlkit train",
        "mlflow.source.type": "LOCAL",
        "mlflow.user": _user(),
    }
    if lineage.git_commit:
        run_tags["mlflow.source.git.commit"] = lineage.git_commit
    return run_tags


# --- inside the run ------------------------------------------------------------------------------------


def _train_in_run(
    project: Project,
    session: TrackingSession,
    estimator: Any,
    entrypoint: Callable[..., Any] | None,
    lineage: L.RunLineage,
    say: Progress,
) -> TrainOutcome:
    config, params = project.config, project.params
    data = _load_data(project, say)
    make_model = _model_factory(project, estimator, entrypoint, data)
    cv: dict[str, float] = {}
    if params.cv_folds >= 2:
        say(f"{params.cv_folds}-fold cross-validation")
        cv = evaluation.cross_validate(
            make_model,
            data.X_train,
            data.y_train,
            config.metrics,
            config.model.task,
            n_folds=params.cv_folds,
            seed=params.seed,
            backend=config.training.backend,
            scheduler=config.training.scheduler,
        )
    fit = _fit(project, session, make_model, data, say)
    say("evaluating on the test split")
    evaluated = _evaluate(project, fit.fitted, data)
    opened = session.result()  # usually ready by now: the store opened while the model was fitting
    if opened.ended_lost:
        say(_ended_lost_line(opened.ended_lost))
    say(f"logging to run {opened.run_id}: params, metrics, plots and the model")
    model_uri, artifacts, profile_tags = _log_run(project, opened, lineage, data, fit, evaluated, cv)
    return TrainOutcome(
        metrics=evaluated.metrics,
        cv_metrics=cv,
        predictions_sha256=evaluated.fingerprint,
        model_uri=model_uri,
        label_mapping=data.label_mapping,
        artifacts=artifacts,
        fit_seconds=round(fit.seconds, 3),
        warnings=data.warnings,
        profile_tags=profile_tags,
    )


def _load_data(project: Project, say: Progress) -> datasets.Splits:
    """The training file (and the test file, else a seeded split of the training file), prepared."""
    config, params = project.config, project.params
    task = config.model.task
    say(f"loading {config.data.train}")
    if distributed.keeps_rows_on_workers(config):
        return distributed.load_split(project, say, evaluation.split_warnings)  # rows stay there
    read_table = table_reader(config.training.backend)

    def prepared(frame: Any, source: str, classes: list[Any] | None = None) -> datasets.Dataset:
        if config.data.hook:
            frame = datasets.apply_hook(frame, config.data.hook, project.root)
        return datasets.prepare(
            frame, target=config.data.target, drop=config.data.drop, task=task, source=source, classes=classes
        )

    raw = read_table(project.path(config.data.train))  # rows as in the file: what the registered model takes
    data = prepared(raw, config.data.train)
    if config.data.test:
        test = prepared(read_table(project.path(config.data.test)), config.data.test, data.classes)
        X_train, y_train, X_test, y_test = data.features, data.target, test.features, test.target
    else:
        X_train, X_test, y_train, y_test = evaluation.split(
            data.features,
            data.target,
            test_size=params.test_size,
            seed=params.seed,
            stratify=task == "classification",
        )
    labels = json.dumps(data.label_mapping, sort_keys=True) if data.label_mapping else ""
    warnings = evaluation.split_warnings(y_test, task, data.classes)
    for warning in warnings:
        say(f"warning: {warning}")
    return datasets.Splits(X_train, y_train, X_test, y_test, data.classes, labels, raw, warnings)


def _model_factory(
    project: Project, estimator: Any, entrypoint: Callable[..., Any] | None, data: datasets.Splits
) -> ModelFactory:
    """Fresh (model, preprocessor) pairs: a clone of the estimator, or what the entrypoint builds (a
    whole Pipeline from an entrypoint brings its own preprocessing)."""
    config, params = project.config, project.params
    numeric, categorical = infer_columns(data.X_train, config.data.numeric, config.data.categorical)

    def make_model() -> tuple[Any, Any]:
        if entrypoint is not None:
            built = call_entrypoint(entrypoint, params.model_dump(mode="json"), data.X_train, data.y_train)
            from sklearn.pipeline import Pipeline

            if isinstance(built, Pipeline):
                return built, None
            return built, build_preprocessor(numeric, categorical)
        from sklearn.base import clone

        return clone(estimator), build_preprocessor(numeric, categorical)

    return make_model


def _fit(
    project: Project, session: TrackingSession, make_model: ModelFactory, data: datasets.Splits, say: Progress
) -> _Fit:
    config, params = project.config, project.params
    model, preprocessor = make_model()
    eval_sets, fit_X, fit_y = evaluation.eval_sets(
        model,
        data.X_train,
        data.y_train,
        data.X_test,
        data.y_test,
        early_stopping_rounds=params.early_stopping_rounds,
        seed=params.seed,
        stratify=config.model.task == "classification",
    )
    if not fits_on_one_core(model):
        # a multi-threaded fit (XGBoost's OpenMP threads spin at barriers) slows down badly when the
        # tracking thread takes a core away from it: open the store first, then fit
        session.result()
    _, scheduler = describe_backend(config.training.backend, config.training.scheduler)
    where = f" on the Dask cluster at {scheduler}" if scheduler else ""
    say(f"fitting {type(model).__name__} on {len(fit_X)} rows{where}")
    started = time.perf_counter()
    fitted = fit_model(
        model,
        fit_X,
        fit_y,
        preprocessor=preprocessor,
        backend=config.training.backend,
        scheduler=config.training.scheduler,
        eval_sets=eval_sets,
        early_stopping_rounds=params.early_stopping_rounds,
    )
    return _Fit(fitted, len(fit_X), time.perf_counter() - started)


def _evaluate(project: Project, fitted: FittedModel, data: datasets.Splits) -> _Evaluation:
    task = project.config.model.task
    predicted, scores = evaluation.predict_scores(fitted.pipeline, data.X_test, task)
    metrics = evaluation.compute_metrics(project.config.metrics, task, data.y_test, predicted, scores)
    fingerprint = L.predictions_fingerprint(scores if scores is not None else predicted)
    return _Evaluation(predicted, scores, metrics, fingerprint)


def _log_run(
    project: Project,
    opened: OpenedRun,
    lineage: L.RunLineage,
    data: datasets.Splits,
    fit: _Fit,
    evaluated: _Evaluation,
    cv: Mapping[str, float],
) -> tuple[str, list[str], dict[str, str]]:
    """Params, metrics, tags, artifacts and the model into the run; (the model's URI, artifact names, the
    tags naming the reference profile that `mlkit monitor` compares current data with)."""
    fitted = fit.fitted
    config = project.config
    with tempfile.TemporaryDirectory(prefix="mlkit-train-") as scratch:
        folder = Path(scratch)
        _write_artifacts(folder, project, lineage, data, fitted, evaluated)
        numeric, categorical = infer_columns(data.X_train, config.data.numeric, config.data.categorical)
        profile_tags = write_reference(
            folder,
            data.X_train,
            numeric=numeric,
            categorical=categorical,
            task=config.model.task,
            predictions=evaluated.predicted,
            target=data.y_train,
            classes=data.classes,
            metrics=evaluated.metrics,
        )
        mlflow.log_batch(
            opened.client,
            opened.run_id,
            params=_run_params(project),
            metrics={
                **evaluated.metrics,
                **cv,
                FIT_SECONDS: round(fit.seconds, 3),
                "train_rows": float(fit.rows),
                "test_rows": float(len(data.X_test)),
                **({"best_iteration": float(fitted.best_iteration_)} if fitted.best_iteration_ is not None else {}),
            },
            history=fitted.history_,
            run_tags={
                tags.PREDICTIONS_SHA256: evaluated.fingerprint,
                **({tags.LABEL_MAPPING: data.label_mapping} if data.label_mapping else {}),
                **profile_tags,
            },
        )
        mlflow.log_artifacts(opened.client, opened.run_id, folder)
        artifacts = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    with mlflow.logging_model(project.tracking_uri, opened.run_id):
        info = serving_model.log_model(
            fitted.pipeline,
            data.raw,
            project=project,
            classes=data.classes,
            pip_requirements=mlflow.pinned_requirements(_model_distributions(fitted.pipeline)),
        )
    return str(info.model_uri), sorted([*artifacts, tags.MODEL_ARTIFACT]), profile_tags


def _write_artifacts(
    folder: Path,
    project: Project,
    lineage: L.RunLineage,
    data: datasets.Splits,
    fitted: FittedModel,
    evaluated: _Evaluation,
) -> None:
    """Plots, the package lock, the uncommitted diff (when dirty) and the label mapping, as files."""
    plots.write_plots(
        folder / tags.PLOTS_DIR,
        task=project.config.model.task,
        y_true=data.y_test,
        predicted=evaluated.predicted,
        scores=evaluated.scores,
        classes=data.classes,
        importances=plots.feature_importances(fitted.estimator, fitted.feature_names()),
    )
    lineage_dir = folder / "lineage"
    lineage_dir.mkdir()
    for name, content in lineage.artifacts().items():  # lock, diff (its sha256 is in the tags), file list
        (folder / name).write_bytes(content)
    if data.label_mapping:
        (folder / tags.LABELS_ARTIFACT).write_text(data.label_mapping + "\n")


def _model_distributions(pipeline: Any) -> list[str]:
    return [*_MODEL_DISTRIBUTIONS, *(["xgboost"] if is_xgboost(pipeline.steps[-1][1]) else [])]


def _run_params(project: Project) -> dict[str, str]:
    config = project.config
    values = {
        **flatten(project.params.model_dump(mode="json")),
        "model.estimator": config.model.entrypoint or config.model.estimator,
        "model.task": config.model.task,
        "data.train": config.data.train,
        "data.target": config.data.target,
        "training.backend": config.training.backend,
    }
    return {k: json.dumps(v) if isinstance(v, (dict, list)) else str(v) for k, v in values.items()}


# --- after the run -------------------------------------------------------------------------------------


def _register(project: Project, opened: OpenedRun, lineage: L.RunLineage, outcome: TrainOutcome, say: Progress) -> str:
    """A new version of the project's model, tagged with the run's lineage, metrics and fingerprint."""
    say(f"registering a new version of model {project.model_name}")
    version_tags = {
        **lineage.tags(),
        tags.RUN_ID: opened.run_id,
        tags.PREDICTIONS_SHA256: outcome.predictions_sha256,
        **{tags.METRIC_PREFIX + k: repr(v) for k, v in outcome.metrics.items()},
        **({tags.LABEL_MAPPING: outcome.label_mapping} if outcome.label_mapping else {}),
        **outcome.profile_tags,
    }
    return mlflow.register_version(opened.client, project.model_name, outcome.model_uri, opened.run_id, version_tags)


def _require_running(opened: OpenedRun) -> None:
    """The run is still RUNNING: nobody ended it as lost while this process was away (suspended, or cut
    off from the store for longer than its heartbeat allows)."""
    run = opened.client.get_run(opened.run_id)
    if run.info.status != "RUNNING":
        raise OperationError(
            f"run {opened.run_id} was ended {run.info.status} while it trained: "
            f"{run.data.tags.get(tags.FAILURE, 'no reason recorded')}",
            hint="nothing was registered; run `mlkit train` again",
        )


def _end_interrupted(session: TrackingSession, project: Project) -> BaseException | None:
    """End the run after a KeyboardInterrupt: KILLED for a signal, FAILED when the heartbeat stopped the
    training because the store went away; the error to raise instead, or None to raise the interrupt."""
    lost = session.store_lost()
    if lost is not None:
        return _end_failed(session, project, lost)  # type: ignore[arg-type]
    with interrupts.deferred():  # a second Ctrl-C must not leave the run RUNNING
        _end_session(session, project, "KILLED", _INTERRUPTED)
    return None


def _end_failed(session: TrackingSession, project: Project, exc: Exception) -> BaseException | None:
    """End the run after ``exc``; the error to raise in its place, or None to raise ``exc`` itself."""
    with interrupts.deferred():  # ending the run is never cut short
        return _end_failed_now(session, project, exc)


def _end_failed_now(session: TrackingSession, project: Project, exc: Exception) -> BaseException | None:
    lost = session.store_lost()
    if lost is not None:
        # the heartbeat stopped the training because the store refused it for two intervals: ending the
        # run there would wait out MLflow's retries again and fail; it shows as lost once the store is back
        session.stop_heartbeat()
        exc = lost if isinstance(lost, Exception) else exc
        return mlflow.lost_connection(exc, project.tracking_uri) or OperationError(
            f"tracking server {redact(project.tracking_uri)} stopped answering during the run "
            f"({first_line(exc)}); nothing was registered",
            hint="check the server (`mlkit server status`); `mlkit runs end-lost` ends the run once it is back",
        )
    if interrupts.requested():  # a native library turned the KeyboardInterrupt into its own error
        _end_session(session, project, "KILLED", _INTERRUPTED)
        return KeyboardInterrupt()
    if isinstance(exc, MlkitError):
        _end_session(session, project, "FAILED", exc.message)
        return None
    reason = first_line(exc, with_type=True)
    opened = _end_session(session, project, "FAILED", reason)
    lost = mlflow.lost_connection(exc, project.tracking_uri)
    if lost is not None:
        return lost
    where = f"see run {opened.run_id} (`mlkit runs show {opened.run_id}`); " if opened else ""
    return OperationError(f"training failed: {reason}", hint=f"{where}run again with --debug for the traceback")


def _end_session(session: TrackingSession, project: Project, status: str, reason: str) -> OpenedRun | None:
    """End the session's run (if it could be created) with ``status`` and the reason; return it."""
    session.stop_heartbeat()
    opened = session.opened()
    if opened is not None:
        mlflow.end_run(opened.client, project.tracking_uri, opened.run_id, status, reason)
    return opened


def _ended_lost_line(ended: Sequence[runs.LostRun]) -> str:
    first = ended[0]
    more = f" and {len(ended) - 1} more" if len(ended) > 1 else ""
    return f"ended lost run {first.run_id}{more} as FAILED ({first.reason})"


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
