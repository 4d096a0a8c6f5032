"""`mlkit train`: fit the project's model on the DVC-tracked data and track everything in MLflow."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlkit import constants as C
from mlkit import lineage as L
from mlkit import tags, tracking
from mlkit.errors import MlkitError, OperationError, UsageError, first_line
from mlkit.progress import Progress

if TYPE_CHECKING:
    from mlkit.project import Project


# DVC sets this for every stage command it runs (dvc/stage/run.py); it also holds dvc.lock's lock then.
ENV_DVC_STAGE = "DVC_STAGE"


@dataclass(frozen=True)
class TrainOptions:
    """How to run: ``overrides`` are ``KEY=VALUE`` like ``--set`` (``params.*`` go to params.yaml)."""

    overrides: Sequence[str] = ()
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
    seconds: float
    stage_recorded: bool = False

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
            "seconds": self.seconds,
            "stage_recorded": self.stage_recorded,
        }


def train(
    project: Project, options: TrainOptions | None = None, progress: Progress | None = None
) -> TrainResult:
    """Train the model ``project`` describes, log it with its lineage, register a version, return the result.

    ``project.root`` may differ from the working directory (reproduction trains in a worktree). Nothing is
    printed; ``progress`` receives status lines. Expected failures raise :class:`MlkitError`; a run that
    was started is then ended FAILED (KILLED on KeyboardInterrupt) with the reason in ``mlkit.failure``,
    and no model version is registered.
    """
    options = options or TrainOptions()
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    project = _with_overrides(project, options.overrides)
    config, params = project.config, project.params
    from mlkit.training.fitting import check_backend

    check_backend(config.training.backend, config.training.scheduler)

    say(f"checking {config.model.entrypoint or config.model.estimator}")
    estimator, entrypoint = _resolve_model(project)

    inputs = [config.data.train] + ([config.data.test] if config.data.test else [])
    split = {
        "test_size": params.test_size,
        "cv_folds": params.cv_folds,
        "seed": params.seed,
        "stratify": config.model.task == "classification",
        "test_file": config.data.test,
    }
    say("recording lineage (git, data versions, environment)")
    lineage = L.collect_lineage(
        project.root,
        inputs=inputs,
        params=params.model_dump(mode="json"),
        seed=params.seed,
        split=split,
        command=options.command,
    )
    L.require_clean(lineage.git_dirty, options.allow_dirty)

    experiment = options.experiment or project.experiment
    run_tags = {
        **lineage.tags(),
        **dict(options.tags),
        "mlflow.source.name": "mlkit train",
        "mlflow.source.type": "LOCAL",
        "mlflow.user": _user(),
    }
    if lineage.git_commit:
        run_tags["mlflow.source.git.commit"] = lineage.git_commit
    from mlkit.training import interrupts
    from mlkit.training.session import TrackingSession, preimport_training

    preimport_training()
    say(f"opening the tracking store, experiment {experiment}")
    session = TrackingSession(project, experiment, run_tags).start()
    try:
        outcome = _train_in_run(project, session, estimator, entrypoint, lineage, options, say)
        opened = session.result()
        client, experiment_id, run_id = opened.client, opened.experiment_id, opened.run_id
        version = None
        if options.register:
            say(f"registering a new version of model {project.model_name}")
            version = _register(
                client,
                project.model_name,
                outcome["model_uri"],
                run_id,
                {
                    **lineage.tags(),
                    tags.RUN_ID: run_id,
                    tags.PREDICTIONS_SHA256: outcome["fingerprint"],
                    **{tags.METRIC_PREFIX + k: repr(v) for k, v in outcome["metrics"].items()},
                    **({tags.LABEL_MAPPING: outcome["labels"]} if outcome["labels"] else {}),
                    **outcome["profile_tags"],
                },
            )
        tracking.retry_locked(lambda: client.set_terminated(run_id, "FINISHED"))
    except KeyboardInterrupt:
        _end_session(session, "KILLED", "interrupted (Ctrl-C or SIGTERM)")
        raise
    except Exception as exc:
        if interrupts.requested():  # a native library turned the KeyboardInterrupt into its own error
            _end_session(session, "KILLED", "interrupted (Ctrl-C or SIGTERM)")
            raise KeyboardInterrupt from exc
        if isinstance(exc, MlkitError):
            _end_session(session, "FAILED", exc.message)
            raise
        reason = first_line(exc, with_type=True)
        opened = _end_session(session, "FAILED", reason)
        lost = tracking.lost_connection(exc, project.tracking_uri)
        if lost is not None:
            raise lost from exc
        where = f"see run {opened.run_id} (`mlkit runs show {opened.run_id}`); " if opened else ""
        raise OperationError(
            f"training failed: {reason}",
            hint=f"{where}run again with --debug for the traceback",
        ) from exc

    stage_recorded = False
    if options.write_metrics:
        _write_metrics(project.root, outcome["metrics"], outcome["cv"])
        stage_recorded = _record_stage(project.root, say)
    return TrainResult(
        run_id=run_id,
        experiment_id=experiment_id,
        experiment=experiment,
        model_name=project.model_name,
        model_version=version,
        model_uri=outcome["model_uri"],
        metrics=outcome["metrics"],
        cv_metrics=outcome["cv"],
        lineage=lineage,
        predictions_sha256=outcome["fingerprint"],
        artifacts=outcome["artifacts"],
        seconds=round(time.perf_counter() - started, 3),
        stage_recorded=stage_recorded,
    )


def _with_overrides(project: Project, overrides: Sequence[str]) -> Project:
    if not overrides:
        return project
    from mlkit.project import load_project

    return load_project(project.root, overrides=list(overrides))


def _resolve_model(project: Project) -> tuple[Any, Callable[..., Any] | None]:
    """The unfitted estimator (validated now, before any data is read), or the entrypoint to call."""
    config, params = project.config, project.params
    if config.model.entrypoint:
        from mlkit.training.datasets import load_callable

        return None, load_callable(config.model.entrypoint, project.root, "model.entrypoint")
    from mlkit.training.estimators import build_estimator

    return build_estimator(
        config.model.estimator, params.estimator, seed=params.seed, task=config.model.task
    ), None


def _train_in_run(
    project: Project,
    session: Any,
    estimator: Any,
    entrypoint: Any,
    lineage: L.RunLineage,
    options: TrainOptions,
    say: Progress,
) -> dict[str, Any]:
    from mlkit.training import datasets, evaluation, plots
    from mlkit.training.fitting import fit_model, table_reader
    from mlkit.training.preprocessing import build_preprocessor, infer_columns

    config, params = project.config, project.params
    task = config.model.task
    classification = task == "classification"
    say(f"loading {config.data.train}")
    read_table = table_reader(config.training.backend)
    frame = read_table(project.path(config.data.train))
    if config.data.hook:
        frame = datasets.apply_hook(frame, config.data.hook, project.root)
    data = datasets.prepare(
        frame, target=config.data.target, drop=config.data.drop, task=task, source=config.data.train
    )
    if config.data.test:
        test_frame = read_table(project.path(config.data.test))
        if config.data.hook:
            test_frame = datasets.apply_hook(test_frame, config.data.hook, project.root)
        test = datasets.prepare(
            test_frame,
            target=config.data.target,
            drop=config.data.drop,
            task=task,
            source=config.data.test,
            classes=data.classes,
        )
        X_train, y_train, X_test, y_test = data.features, data.target, test.features, test.target
    else:
        X_train, X_test, y_train, y_test = evaluation.split(
            data.features, data.target, test_size=params.test_size, seed=params.seed, stratify=classification
        )
    numeric, categorical = infer_columns(X_train, config.data.numeric, config.data.categorical)

    def make_model() -> tuple[Any, Any]:
        if entrypoint is not None:
            built = _call_entrypoint(entrypoint, params, X_train, y_train)
            from sklearn.pipeline import Pipeline

            if isinstance(built, Pipeline):
                return built, None
            return built, build_preprocessor(numeric, categorical)
        from sklearn.base import clone

        return clone(estimator), build_preprocessor(numeric, categorical)

    names = config.metrics
    cv: dict[str, float] = {}
    if params.cv_folds >= 2:
        say(f"{params.cv_folds}-fold cross-validation")
        cv = _cross_validate(
            make_model,
            X_train,
            y_train,
            names,
            task,
            params.cv_folds,
            params.seed,
            config.training.backend,
            config.training.scheduler,
        )

    model, preprocessor = make_model()
    eval_sets, fit_X, fit_y = _eval_sets(model, X_train, y_train, X_test, y_test, params, classification)
    if not _single_threaded(model):
        # a multi-threaded fit (XGBoost's OpenMP threads spin at barriers) slows down badly when the
        # tracking thread takes a core away from it: open the store first, then fit
        session.result()
    say(f"fitting {type(model).__name__} on {len(fit_X)} rows")
    fit_started = time.perf_counter()
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
    fit_seconds = time.perf_counter() - fit_started

    say("evaluating on the test split")
    predicted, scores = evaluation.predict_scores(fitted.pipeline, X_test, task)
    metrics = evaluation.compute_metrics(names, task, y_test, predicted, scores)
    fingerprint = L.predictions_fingerprint(scores if scores is not None else predicted)

    opened = session.result()  # usually ready by now: the store opened while the model was fitting
    client, run_id = opened.client, opened.run_id
    say(f"logging to run {run_id}: params, metrics, plots and the model")
    import mlflow

    artifacts: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlkit-train-") as scratch:
        folder = Path(scratch)
        importances = plots.feature_importances(fitted.estimator, fitted.feature_names())
        plots.write_plots(
            folder / tags.PLOTS_DIR,
            task=task,
            y_true=y_test,
            predicted=predicted,
            scores=scores,
            classes=data.classes,
            importances=importances,
        )
        lineage_dir = folder / "lineage"
        lineage_dir.mkdir()
        (lineage_dir / Path(tags.LOCK_ARTIFACT).name).write_text(lineage.package_lock)
        if lineage.git_dirty:
            (lineage_dir / Path(tags.DIFF_ARTIFACT).name).write_text(lineage.diff)
        labels = json.dumps(data.label_mapping, sort_keys=True) if data.label_mapping else ""
        if labels:
            (folder / tags.LABELS_ARTIFACT).write_text(labels + "\n")
        run_tags = {tags.PREDICTIONS_SHA256: fingerprint, **({tags.LABEL_MAPPING: labels} if labels else {})}
        # monitoring: the reference profile `mlkit monitor` compares current data with, and its hash
        from mlkit.monitoring.profile import write_reference

        profile_tags = write_reference(folder, X_train, numeric=numeric, categorical=categorical, task=task,
                                       predictions=predicted, target=y_train, classes=data.classes, metrics=metrics)
        run_tags.update(profile_tags)
        _log_batch(
            client,
            run_id,
            params=_run_params(project),
            metrics={
                **metrics,
                **cv,
                "fit_seconds": round(fit_seconds, 3),
                "train_rows": float(len(fit_X)),
                "test_rows": float(len(X_test)),
                **(
                    {"best_iteration": float(fitted.best_iteration_)}
                    if fitted.best_iteration_ is not None
                    else {}
                ),
            },
            history=fitted.history_,
            tags=run_tags,
        )
        _log_artifacts(client, run_id, folder)
        artifacts = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        with mlflow.start_run(run_id=run_id, nested=False):
            model_info = _log_model(fitted.pipeline, X_train, predicted, labels)
    artifacts.append(tags.MODEL_ARTIFACT)
    return {
        "metrics": metrics,
        "cv": cv,
        "fingerprint": fingerprint,
        "model_uri": model_info.model_uri,
        "labels": labels,
        "artifacts": sorted(artifacts),
        "profile_tags": profile_tags,
    }


def _single_threaded(model: Any) -> bool:
    """Whether fitting ``model`` keeps to one core (then the tracking thread can use the other)."""
    from mlkit.training.estimators import is_xgboost

    final = model.steps[-1][1] if hasattr(model, "steps") else model
    if is_xgboost(final):
        return False
    try:
        return final.get_params(deep=False).get("n_jobs") in (None, 1)
    except Exception:
        return False


def _call_entrypoint(entrypoint: Callable[..., Any], params: Any, X: Any, y: Any) -> Any:
    """Call ``entrypoint(params)`` or ``entrypoint(params, X, y)``; it must return an estimator."""
    import inspect

    resolved = params.model_dump(mode="json")
    try:
        accepts_data = len(inspect.signature(entrypoint).parameters) >= 3
    except (TypeError, ValueError):
        accepts_data = False
    built = entrypoint(resolved, X, y) if accepts_data else entrypoint(resolved)
    if not (hasattr(built, "fit") and hasattr(built, "predict")):
        raise UsageError(
            f"{C.CONFIG_FILE}: model.entrypoint: returned {type(built).__name__}, which has no fit/predict",
            hint="return a scikit-learn estimator or Pipeline",
        )
    return built


def _eval_sets(
    model: Any, X_train: Any, y_train: Any, X_test: Any, y_test: Any, params: Any, classification: bool
) -> tuple[list[tuple[str, Any, Any]], Any, Any]:
    """XGBoost evaluation sets. With early stopping, a validation split is carved out of the training
    data (never the test split, which must stay unseen)."""
    from mlkit.training.estimators import is_xgboost

    if not is_xgboost(model):
        return [], X_train, y_train
    if params.early_stopping_rounds:
        from mlkit.training.evaluation import split

        fit_X, val_X, fit_y, val_y = split(
            X_train, y_train, test_size=0.15, seed=params.seed, stratify=classification
        )
        return [("train", fit_X, fit_y), ("validation", val_X, val_y)], fit_X, fit_y
    return [("train", X_train, y_train), ("test", X_test, y_test)], X_train, y_train


def _cross_validate(
    make_model: Callable[[], tuple[Any, Any]],
    X: Any,
    y: Any,
    names: Sequence[str],
    task: str,
    n_folds: int,
    seed: int,
    backend: str,
    scheduler: str | None = None,
) -> dict[str, float]:
    import numpy as np

    from mlkit.training import evaluation
    from mlkit.training.fitting import fit_model

    scores: dict[str, list[float]] = {name: [] for name in names}
    splitter = evaluation.folds(n_folds, seed=seed, stratify=task == "classification")
    for fold_train, fold_test in splitter.split(X, y):
        model, preprocessor = make_model()
        fitted = fit_model(
            model,
            X.iloc[fold_train],
            y[fold_train],
            preprocessor=preprocessor,
            backend=backend,
            scheduler=scheduler,
        )
        predicted, probabilities = evaluation.predict_scores(fitted.pipeline, X.iloc[fold_test], task)
        for name, value in evaluation.compute_metrics(
            names, task, y[fold_test], predicted, probabilities
        ).items():
            scores[name].append(value)
    out: dict[str, float] = {}
    for name, values in scores.items():
        out[f"cv_{name}_mean"] = float(np.mean(values))
        out[f"cv_{name}_std"] = float(np.std(values))
    return out


def _run_params(project: Project) -> dict[str, str]:
    from mlkit.config import flatten

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


def _log_batch(
    client: Any,
    run_id: str,
    *,
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    history: Mapping[str, list[float]],
    tags: Mapping[str, str],
) -> None:
    """Everything in as few store round trips as possible (MLflow caps a batch at 1000 metrics)."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    metric_rows = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v == v]  # NaN: not logged
    for key, values in history.items():
        metric_rows += [Metric(key, value, now, step) for step, value in enumerate(values)]
    param_rows = [Param(k, v[:6000]) for k, v in params.items()]
    tag_rows = [RunTag(k, v) for k, v in tags.items()]
    batches: list[tuple[list[Any], list[Any], list[Any]]] = [
        (metric_rows[i : i + 1000], [], []) for i in range(0, len(metric_rows), 1000)
    ] or [([], [], [])]
    batches[0] = (batches[0][0], param_rows[:100], tag_rows)
    batches += [([], param_rows[i : i + 100], []) for i in range(100, len(param_rows), 100)]
    for metrics_, params_, tags_ in batches:
        tracking.retry_locked(partial(client.log_batch, run_id, metrics=metrics_, params=params_, tags=tags_))


def _log_artifacts(client: Any, run_id: str, folder: Path) -> None:
    if any(folder.iterdir()):
        client.log_artifacts(run_id, str(folder))


def _log_model(pipeline: Any, X_train: Any, predicted: Any, labels: str) -> Any:
    """Log the fitted Pipeline with signature, input example and explicit requirements.

    cloudpickle, not MLflow 3's default skops: skops refuses tree models (RandomForest, XGBoost) unless
    every type is trusted by hand. Explicit ``pip_requirements`` skip MLflow's requirement inference,
    which re-imports the model in a child process (about 10 s on two cores).
    """
    import mlflow.sklearn
    from mlflow.models import infer_signature

    # the preprocessor imputes, so integer columns may be missing at serving time: declare them as doubles
    example = X_train.head(5)
    example = example.astype({c: "float64" for c in example.columns if example[c].dtype.kind in "iu"})
    signature = infer_signature(example, predicted[:5])
    metadata = {tags.LABEL_MAPPING: json.loads(labels)} if labels else None
    with (
        _quiet_loggers("mlflow.sklearn", "mlflow.utils.environment", "mlflow.models.model"),
        _skip_requirement_check(),
    ):
        return mlflow.sklearn.log_model(
            pipeline,
            name=tags.MODEL_ARTIFACT,
            serialization_format="cloudpickle",
            signature=signature,
            input_example=example,
            pip_requirements=_requirements(pipeline),
            metadata=metadata,
        )


@contextmanager
def _skip_requirement_check() -> Iterator[None]:
    """Skip MLflow's check that the running environment satisfies the model's requirements.

    mlkit pins every requirement to the version installed right now (:func:`_requirements`), so the
    check cannot find a mismatch, yet it maps every installed distribution to its modules first: about
    3 s of CPU, run twice per logged model (when saving it and when MLflow reloads it to validate the
    input example). Where MLflow no longer has the hook, nothing is patched and the check simply runs.
    """
    import importlib

    patched = []
    for name in ("mlflow.utils.environment", "mlflow.pyfunc"):
        module = importlib.import_module(name)
        original = getattr(module, "warn_dependency_requirement_mismatches", None)
        if callable(original):
            patched.append((module, original))
            module.warn_dependency_requirement_mismatches = _no_check  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module, original in patched:
            module.warn_dependency_requirement_mismatches = original  # type: ignore[attr-defined]


def _no_check(_requirements: Any) -> None:
    return None


@contextmanager
def _quiet_loggers(*names: str) -> Iterator[None]:
    """MLflow warns on stderr about choices made here on purpose (cloudpickle, no pip version)."""
    import logging

    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=False):
            logger.setLevel(level)


def _requirements(pipeline: Any) -> list[str]:
    from importlib import metadata

    from mlkit.training.estimators import is_xgboost

    names = ["scikit-learn", "cloudpickle", "pandas", "numpy", "scipy"]
    if is_xgboost(pipeline.steps[-1][1]):
        names.append("xgboost")
    out = []
    for name in names:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def _register(client: Any, name: str, model_uri: str, run_id: str, tags: Mapping[str, str]) -> str:
    from mlflow.exceptions import MlflowException

    try:
        tracking.retry_locked(lambda: client.create_registered_model(name))
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code) and "already exists" not in str(exc):
            raise
    # MLflow 3 logs models as `models:/m-<id>`; a tracking server only accepts that source with its model_id
    model_id = model_uri.split("/", 1)[1] if model_uri.startswith("models:/m-") else None
    version = tracking.retry_locked(
        lambda: client.create_model_version(name, model_uri, run_id=run_id, tags=dict(tags), model_id=model_id)
    )
    return str(version.version)


def _end_session(session: Any, status: str, reason: str) -> Any:
    """End the session's run (if it could be created) with ``status`` and the reason; return it."""
    opened = session.opened()
    if opened is not None:
        _end_run(opened.client, opened.run_id, status, reason)
    return opened


def _end_run(client: Any, run_id: str, status: str, reason: str) -> None:
    import mlflow

    try:
        client.set_tag(run_id, tags.FAILURE, reason[:5000])
        client.set_terminated(run_id, status)
    except Exception:
        pass  # the store itself may be what failed: never hide the original error behind this one
    finally:
        active = mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            mlflow.end_run(status)


def _write_metrics(root: Path, metrics: Mapping[str, float], cv: Mapping[str, float]) -> None:
    """metrics.json for `dvc metrics show`: test metrics at the top level, CV under ``cv``."""
    data: dict[str, Any] = {k: _json_number(v) for k, v in metrics.items()}
    if cv:
        data["cv"] = {k: _json_number(v) for k, v in cv.items()}
    target = root / C.METRICS_FILE
    handle, temporary = tempfile.mkstemp(prefix=".metrics-", suffix=".json", dir=root)
    with os.fdopen(handle, "w") as stream:
        stream.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, target)


def _json_number(value: float) -> float | None:
    return None if value != value else round(float(value), 6)


def _record_stage(root: Path, say: Progress) -> bool:
    """Re-record the `train` stage in dvc.lock so `dvc status` stays clean; not inside `dvc repro`."""
    if os.environ.get(ENV_DVC_STAGE):
        return False  # dvc repro is running us and holds the repository lock; it records the stage itself
    if not (root / "dvc.yaml").is_file() or not (root / ".dvc").is_dir():
        return False
    say("recording the train stage in dvc.lock")
    from mlkit import dvcops

    dvcops.commit_stage(root, "train")
    return True


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
