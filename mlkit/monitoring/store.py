"""What monitoring reads from and writes to the tracking store: the version a reference points at, its
reference profile, its model, and the monitoring run that records a report."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlkit import registry, tags
from mlkit.clock import utc_iso
from mlkit.engines import mlflow
from mlkit.errors import OperationError, UsageError, first_line
from mlkit.monitoring.profile import ReferenceProfile

if TYPE_CHECKING:
    from mlkit.project import Project

EXPERIMENT_SUFFIX = "-monitoring"
"""Monitoring runs go to the project's experiment name + this, apart from the training runs."""


@dataclass
class WatchedVersion:
    name: str
    version: str
    stage: str | None
    run_id: str
    metrics: dict[str, float]
    tags: dict[str, str]


def resolve(project: Project, target: str) -> WatchedVersion:
    """The model version ``NAME@STAGE``, ``NAME/VERSION`` or ``NAME`` (latest) points at."""
    info = registry.show_version(project, target)
    if not info.run_id:
        raise UsageError(
            f"{info.name} version {info.version} has no training run to read its profile from",
            hint="monitor a version registered by `mlkit train`",
        )
    stage = registry.ModelRef.parse(target).stage
    return WatchedVersion(
        info.name, info.version, stage or info.stage, info.run_id, dict(info.metrics), dict(info.tags)
    )


def load_profile(project: Project, watched: WatchedVersion) -> ReferenceProfile:
    """The reference profile logged with the version's training run, checked against the recorded hash."""
    client = mlflow.client(project)
    with tempfile.TemporaryDirectory(prefix="mlkit-monitor-") as scratch:
        try:
            local = client.download_artifacts(watched.run_id, tags.PROFILE_ARTIFACT, scratch)
            text = Path(local).read_text(encoding="utf-8")
        except Exception as exc:
            if "not found" in str(exc).lower() or "no such file" in str(exc).lower() or isinstance(exc, OSError):
                raise UsageError(
                    f"{watched.name} version {watched.version} has no reference profile "
                    f"({tags.PROFILE_ARTIFACT} in run {watched.run_id})",
                    hint="it was trained before monitoring existed: run `mlkit train` and promote the new version",
                ) from None
            raise OperationError(
                f"cannot read the reference profile of run {watched.run_id}: {first_line(exc)}",
                hint="check the tracking store, then run the command again",
            ) from None
    profile = ReferenceProfile.from_json(text, source=tags.PROFILE_ARTIFACT)
    recorded = watched.tags.get(tags.PROFILE_SHA256)
    if recorded and recorded != profile.sha256:
        raise OperationError(
            f"the reference profile of {watched.name} version {watched.version} does not match its recorded "
            f"sha256 ({profile.sha256[:12]} != {recorded[:12]})",
            hint=f"the artifact {tags.PROFILE_ARTIFACT} of run {watched.run_id} was changed; retrain the model",
        )
    return profile


def load_model(project: Project, watched: WatchedVersion) -> Any:
    """The version's model as the fitted scikit-learn pipeline."""
    from mlflow import sklearn as mlflow_sklearn

    mlflow.configure(project)
    try:
        with mlflow.fluent_store(project.tracking_uri):  # models:/ URIs resolve through the process-wide store
            return mlflow_sklearn.load_model(f"models:/{watched.name}/{watched.version}")
    except Exception as exc:
        raise OperationError(
            f"cannot load {watched.name} version {watched.version}: {first_line(exc)}",
            hint="run again with --debug for the traceback",
        ) from None


def log_run(
    project: Project,
    watched: WatchedVersion,
    *,
    metrics: Mapping[str, float],
    run_tags: Mapping[str, str],
    files: Mapping[str, str],
) -> str:
    """A finished monitoring run tagged with the version it watched; ``files`` are artifact path -> text."""
    from mlflow.entities import Metric

    client = mlflow.client(project)
    experiment_id = mlflow.ensure_experiment(project, project.experiment + EXPERIMENT_SUFFIX, opened=client)
    all_tags = {
        tags.RUN_TYPE: tags.MONITORING_RUN_TYPE,
        tags.MONITORED_MODEL: watched.name,
        tags.MONITORED_VERSION: watched.version,
        **({tags.MONITORED_STAGE: watched.stage} if watched.stage else {}),
        tags.RUN_ID: watched.run_id,
        "mlflow.source.name": "mlkit monitor",
        "mlflow.runName": f"monitor {watched.name}/{watched.version}",
        **run_tags,
    }
    run = mlflow.retry_locked(lambda: client.create_run(experiment_id, tags=all_tags))
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    rows = [Metric(k[:250], float(v), now, 0) for k, v in metrics.items() if v == v]
    for start in range(0, len(rows), 1000):
        mlflow.retry_locked(partial(client.log_batch, run_id, metrics=rows[start : start + 1000]))
    with tempfile.TemporaryDirectory(prefix="mlkit-monitor-") as scratch:
        folder = Path(scratch)
        for relative, text in files.items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        client.log_artifacts(run_id, str(folder))
    mlflow.retry_locked(lambda: client.set_terminated(run_id, "FINISHED"))
    return str(run_id)


def mark_version(project: Project, watched: WatchedVersion, run_id: str, crossed: bool) -> bool:
    """Point the watched version at its latest monitoring run; False when the store refused the tags.

    A user who may read a model but not edit it still monitors it: the run is recorded, only the pointer on
    the version is left as it was.
    """
    client = mlflow.client(project)
    values = {
        tags.MONITORING_LATEST_RUN: run_id,
        tags.MONITORING_LATEST_CROSSED: str(crossed).lower(),
        tags.MONITORING_LATEST_TIME: utc_iso(time.time() * 1000),
    }
    try:
        for key, value in values.items():
            mlflow.retry_locked(partial(client.set_model_version_tag, watched.name, watched.version, key, value))
    except Exception as exc:
        if mlflow.denied_status(exc) is not None:
            return False
        raise
    return True
