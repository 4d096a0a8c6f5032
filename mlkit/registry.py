"""The model registry as mlkit reads it: models, versions, the stages they hold, and their lineage.

Stages
    MLflow deprecated registry stages, so a stage is an MLflow **alias** named after it (``staging``,
    ``production``, the names and order come from ``stages`` in mlkit.yaml) plus an ``mlkit.stage`` tag on
    the version. Anyone using MLflow directly resolves ``models:/NAME@production`` to the same version
    mlkit shows. A version holds at most one stage: moving it to a stage drops its other stage aliases. The
    version a move displaces is recorded in the audit entry; when it leaves the last stage (production) it
    is tagged ``mlkit.stage=archived``, when it leaves an earlier stage its ``mlkit.stage`` tag is removed.

This module only reads. Moving a stage is :mod:`mlkit.promotion` (``promote``, ``rollback``); the audit
trail, the write lock and the crash-safe write sequence of a move are :mod:`mlkit.audit`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from mlkit import audit, tags
from mlkit.audit import AuditEntry
from mlkit.clock import utc_iso
from mlkit.engines import mlflow
from mlkit.errors import UsageError
from mlkit.lineage import RunLineage

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

    from mlkit.project import Project

_VERSION = re.compile(r"^v?(\d+)$")

T = TypeVar("T")


# --- references ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """``NAME``, ``NAME@STAGE`` or ``NAME/VERSION`` as typed on the command line."""

    name: str
    stage: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        if "@" in text:
            name, _, stage = text.partition("@")
            if not name or not stage:
                raise UsageError(
                    f"{text!r}: must look like NAME, NAME@STAGE or NAME/VERSION",
                    hint="e.g. `mlkit models show churn@production`",
                )
            return cls(name, stage=stage)
        name, sep, version = text.rpartition("/")
        if sep and name and _VERSION.match(version):
            return cls(name, version=normalize_version(version))
        return cls(text)  # a model name may contain "/" itself


MAX_VERSION = 2**31 - 1


def normalize_version(text: str | int) -> str:
    """``3``, ``"3"`` or ``"v3"`` -> ``"3"``; anything else is bad input."""
    match = _VERSION.match(str(text).strip())
    if not match:
        raise UsageError(f"version {text!r} is not a version number", hint="versions are numbers, e.g. 3")
    number = int(match.group(1))
    if number > MAX_VERSION:  # MLflow keeps versions as 32-bit integers: a larger one is no version at all
        raise UsageError(
            f"version {str(text)[:20]}... is larger than any model version",
            hint="`mlkit models show NAME` shows the latest version",
        )
    return str(number)


# --- reading ------------------------------------------------------------------------------------------


@dataclass
class VersionInfo:
    """One model version with everything `mlkit models show` prints."""

    name: str
    version: str
    stage: str | None
    aliases: list[str]
    run_id: str | None
    source: str
    created_at: str
    metrics: dict[str, float]
    git_commit: str | None
    git_branch: str | None
    git_dirty: bool | None
    data_md5s: dict[str, str]
    params: dict[str, Any]
    promoted_at: str | None
    promoted_by: str | None
    reproduced: str | None
    tags: dict[str, str] = field(repr=False)
    # the latest `mlkit monitor` of this version: run_id, crossed ("true"/"false"), time
    monitored: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelSummary:
    name: str
    latest_version: str | None
    stages: dict[str, str]
    last_event: str | None
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_models(project: Project) -> list[ModelSummary]:
    """Every registered model in the project's registry, with the versions holding each stage."""
    client = mlflow.client(project)
    models: list[RegisteredModel] = []
    token = None
    while True:
        page = call(client.search_registered_models, max_results=1000, page_token=token)
        models.extend(page)
        token = page.token
        if not token:
            break
    stages = project.config.stages
    out = []
    for model in sorted(models, key=lambda m: m.name):
        aliases = stage_holders(model)
        latest = max((int(v.version) for v in (model.latest_versions or [])), default=None)
        out.append(
            ModelSummary(
                name=model.name,
                latest_version=str(latest) if latest is not None else None,
                stages={s: aliases[s] for s in stages if s in aliases},
                last_event=audit.last_event_time(model),
                updated_at=utc_iso(model.last_updated_timestamp),
            )
        )
    return out


def show_version(project: Project, ref: ModelRef | str) -> VersionInfo:
    """The version a reference points at: ``NAME@STAGE``, ``NAME/VERSION``, or ``NAME`` (latest version)."""
    if isinstance(ref, str):
        ref = ModelRef.parse(ref)
    client = mlflow.client(project)
    model = get_model(client, ref.name)
    if ref.stage is not None:
        require_stage(project, ref.stage)
        version = stage_holders(model).get(ref.stage)
        if version is None:
            raise UsageError(
                f"no version of {ref.name!r} holds {ref.stage}",
                hint=f"run `mlkit promote {ref.name} VERSION --to {ref.stage}`",
            )
    elif ref.version is not None:
        version = ref.version
    else:
        latest = max((int(v.version) for v in (model.latest_versions or [])), default=None)
        if latest is None:
            raise UsageError(f"model {ref.name!r} has no versions", hint="run `mlkit train` to register one")
        version = str(latest)
    return describe_version(
        client, get_version(client, ref.name, version), project.config.stages, audit.read_trail(model)
    )


def describe_version(
    client: MlflowClient, mv: ModelVersion, stages: Sequence[str], trail: Sequence[AuditEntry] = ()
) -> VersionInfo:
    """Everything known about ``mv``; who promoted it and when come from the audit ``trail``."""
    version_tags = dict(mv.tags or {})
    metrics, run_tags = run_facts(client, mv)
    # train copies the lineage onto the version; versions registered by hand only have it on the run
    lineage_tags = version_tags if tags.GIT_COMMIT in version_tags else {**run_tags, **version_tags}
    try:
        lineage = RunLineage.from_tags(lineage_tags)
        params: dict[str, Any] = dict(lineage.params)
        md5s = dict(lineage.data_md5s)
        commit, branch = lineage.git_commit, lineage.git_branch
    except (ValueError, TypeError):  # hand-written tags that are not mlkit's JSON
        params, md5s, commit, branch = {}, {}, None, None
    dirty_tag = lineage_tags.get(tags.GIT_DIRTY)
    aliases = [str(a) for a in (mv.aliases or [])]
    stage = next((s for s in stages if s in aliases), None)
    moved = [
        e
        for e in trail
        if e.to_version == str(mv.version)
        and e.state in (audit.DONE, audit.SUPERSEDED)
        and e.action in ("promote", "rollback")
    ]
    return VersionInfo(
        name=mv.name,
        version=str(mv.version),
        stage=stage or _tag_stage(version_tags, stages),
        aliases=aliases,
        run_id=mv.run_id or None,
        source=mv.source or "",
        created_at=utc_iso(mv.creation_timestamp),
        metrics=metrics,
        git_commit=commit,
        git_branch=branch,
        git_dirty=None if dirty_tag is None else dirty_tag == "true",
        data_md5s=md5s,
        params=params,
        promoted_at=moved[-1].time if moved else None,
        promoted_by=moved[-1].actor if moved else None,
        reproduced=version_tags.get(tags.REPRODUCED),
        tags=version_tags,
        monitored={
            "run_id": version_tags[tags.MONITORING_LATEST_RUN],
            "crossed": version_tags.get(tags.MONITORING_LATEST_CROSSED, ""),
            "time": version_tags.get(tags.MONITORING_LATEST_TIME, ""),
        }
        if tags.MONITORING_LATEST_RUN in version_tags
        else None,
    )


def history(project: Project, name: str, stage: str | None = None) -> list[AuditEntry]:
    """The audit trail of a model, oldest first (optionally only one stage's entries)."""
    if stage is not None:
        require_stage(project, stage)
    client = mlflow.client(project)
    entries = audit.read_trail(get_model(client, name))
    return [e for e in entries if stage is None or e.stage == stage]


def run_facts(client: MlflowClient, mv: ModelVersion) -> tuple[dict[str, float], dict[str, str]]:
    """The metrics and tags of the run that made ``mv``.

    Without a run (deleted, or a version registered from elsewhere) the metrics come from the
    ``mlkit.metric.<name>`` tags `mlkit train` copies onto the version.
    """
    run = get_run(client, mv.run_id) if mv.run_id else None
    if run is not None:
        return dict(run.data.metrics), dict(run.data.tags)
    metrics = {}
    for key, value in (mv.tags or {}).items():
        if key.startswith(tags.METRIC_PREFIX):
            try:
                metrics[key[len(tags.METRIC_PREFIX) :]] = float(value)
            except ValueError:
                continue
    return metrics, {}


def get_model(client: MlflowClient, name: str) -> RegisteredModel:
    try:
        return call(client.get_registered_model, name)
    except Exception as exc:
        if _not_found(exc):
            raise UsageError(
                f"no registered model {name!r} in the registry", hint="`mlkit models list` shows the registered models"
            ) from None
        raise


def get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return call(client.get_model_version, name, version)
    except Exception as exc:
        if _not_found(exc):
            raise UsageError(
                f"model {name!r} has no version {version}", hint=f"`mlkit models show {name}` shows the latest version"
            ) from None
        raise


def get_run(client: MlflowClient, run_id: str) -> Any:
    """The run, or None when it was deleted."""
    try:
        return call(client.get_run, run_id)
    except Exception as exc:
        if _not_found(exc):
            return None
        raise


def require_stage(project: Project, stage: str) -> None:
    """An unknown stage (not in mlkit.yaml's ``stages``) is bad input."""
    stages = project.config.stages
    if stage not in stages:
        raise UsageError(
            f"unknown stage {stage!r}; stages in mlkit.yaml: {', '.join(stages)}",
            hint="use one of those, or add the stage to `stages` in mlkit.yaml",
        )


def stage_holders(model: RegisteredModel) -> dict[str, str]:
    """``{alias: version}`` as the registered model was read."""
    return audit.model_aliases(model)


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, retried with backoff while SQLite reports `database is locked`.

    Registry writes go through :mod:`mlkit.audit`, which also retries a lost insert race.
    """
    return mlflow.retry_locked(lambda: fn(*args, **kwargs))


# --- private ------------------------------------------------------------------------------------------


def _tag_stage(version_tags: dict[str, str], stages: Sequence[str]) -> str | None:
    """The ``mlkit.stage`` tag of a version holding no stage alias: ``archived`` is shown, a stage name is
    not (a stale tag a concurrent move left behind; the alias is the truth)."""
    value = version_tags.get(tags.STAGE)
    return None if value in stages else value


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"
