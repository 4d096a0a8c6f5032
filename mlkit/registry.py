"""The model registry as mlkit sees it: stages, the versions that hold them, and the audit trail.

Stages
    MLflow deprecated registry stages, so a stage is an MLflow **alias** named after it (``staging``,
    ``production``, the names and order come from ``stages`` in mlkit.yaml) plus an ``mlkit.stage`` tag on
    the version. Anyone using MLflow directly resolves ``models:/NAME@production`` to the same version
    mlkit shows. A version holds at most one stage: moving it to a stage drops its other stage aliases. The
    version a move displaces is recorded in the audit entry; when it leaves the last stage (production) it
    is tagged ``mlkit.stage=archived``, when it leaves an earlier stage its ``mlkit.stage`` tag is removed.

Audit trail
    MLflow keeps no history of alias moves, so mlkit writes one **registered-model tag per event**:
    key ``mlkit.audit.<UTC time>.<random>`` (keys sort in time order), value a JSON document (time, actor,
    action, stage, from and to versions, reason, gate results, state). Why tags rather than a file or a
    table of our own:

    * they live in the registry itself, on every backend (SQLite, a tracking server over PostgreSQL), and
      anyone reads them with MLflow's own client: ``MlflowClient().get_registered_model(NAME).tags``;
    * one tag write is one row upserted in one transaction, so an entry is whole or absent, and entries
      are never read-modify-written as a shared document, so concurrent writers cannot lose each other's.

    The sequence of a stage move is write-ahead, which makes it crash-safe:

    1. the entry is written with state ``pending`` (what is about to happen),
    2. the alias moves: **this single write is the commit point**,
    3. the other stage alias of the version is dropped, the version and the displaced version are tagged,
    4. the entry is rewritten with state ``done``.

    A process killed between 1 and 4 leaves a ``pending`` entry. The next mlkit write on that model settles
    it before doing anything else: if the alias points at the entry's version, the move happened, so steps
    3 and 4 are finished (state ``done``, ``recovered: true``); otherwise it did not (state ``aborted``). The
    trail therefore never claims a move that did not happen and never misses one that did.

Concurrency
    On the embedded SQLite store every write sequence runs under a file lock next to the database, so
    concurrent promotions are serialised: each reads the holder, evaluates its gates and moves the alias
    as one unit, and every call retries with backoff while SQLite reports ``database is locked``. A server
    URI has no such lock: each step is still atomic and every process writes its own entry, but two
    promotions to the same stage at the same instant may both record the same displaced version and
    evaluate ``beat_current`` against a holder that is being replaced; the last alias write wins. After
    moving the alias mlkit re-reads it and marks its entry ``superseded`` when another writer got there
    first, so the trail says so. A first-time alias write that loses an insert race on PostgreSQL (a
    unique-key violation) is retried and becomes an update. Pending entries on a server are settled only
    when older than :data:`_SETTLE_AFTER_S`, so a move still in flight elsewhere is not mistaken for a
    crash. The ``mlkit.stage`` tags of racing versions may disagree with the alias until the next move;
    the alias is the truth. The CI workflows mlkit generates put promotions to one stage in a
    concurrency group, which removes the race.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from mlkit import tags
from mlkit.clock import utc_iso
from mlkit.engines import git, mlflow
from mlkit.errors import OperationError, UsageError
from mlkit.progress import Progress

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

    from mlkit.project import Project

ARCHIVED = "archived"

PENDING, DONE, ABORTED, REFUSED, SUPERSEDED = "pending", "done", "aborted", "refused", "superseded"

_LOCK_TIMEOUT_S = 120.0
_CONFLICT_ATTEMPTS = 6
_WRITE_CONFLICTS = ("UniqueViolation", "duplicate key value", "UNIQUE constraint failed", "IntegrityError")
_SETTLE_AFTER_S = 300.0
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
                raise UsageError(f"{text!r}: must look like NAME, NAME@STAGE or NAME/VERSION",
                                 hint="e.g. `mlkit models show churn@production`")
            return cls(name, stage=stage)
        name, sep, version = text.rpartition("/")
        if sep and name and _VERSION.match(version):
            return cls(name, version=normalize_version(version))
        return cls(text)  # a model name may contain "/" itself


def normalize_version(text: str | int) -> str:
    """``3``, ``"3"`` or ``"v3"`` -> ``"3"``; anything else is bad input."""
    match = _VERSION.match(str(text).strip())
    if not match:
        raise UsageError(f"version {text!r} is not a version number", hint="versions are numbers, e.g. 3")
    return str(int(match.group(1)))


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
        aliases = _aliases(model)
        audit = sorted(k for k in model.tags if k.startswith(tags.AUDIT_PREFIX))
        latest = max((int(v.version) for v in (model.latest_versions or [])), default=None)
        out.append(ModelSummary(
            name=model.name,
            latest_version=str(latest) if latest is not None else None,
            stages={s: aliases[s] for s in stages if s in aliases},
            last_event=_entry_time(audit[-1]) if audit else None,
            updated_at=utc_iso(model.last_updated_timestamp),
        ))
    return out


def show_version(project: Project, ref: ModelRef | str) -> VersionInfo:
    """The version a reference points at: ``NAME@STAGE``, ``NAME/VERSION``, or ``NAME`` (latest version)."""
    if isinstance(ref, str):
        ref = ModelRef.parse(ref)
    client = mlflow.client(project)
    model = get_model(client, ref.name)
    if ref.stage is not None:
        require_stage(project, ref.stage)
        version = _aliases(model).get(ref.stage)
        if version is None:
            raise UsageError(f"no version of {ref.name!r} holds {ref.stage}",
                             hint=f"run `mlkit promote {ref.name} VERSION --to {ref.stage}`")
    elif ref.version is not None:
        version = ref.version
    else:
        latest = max((int(v.version) for v in (model.latest_versions or [])), default=None)
        if latest is None:
            raise UsageError(f"model {ref.name!r} has no versions", hint="run `mlkit train` to register one")
        version = str(latest)
    return describe_version(client, get_version(client, ref.name, version), project.config.stages,
                            audit_entries(model))


def describe_version(client: MlflowClient, mv: ModelVersion, stages: Sequence[str],
                     trail: Sequence[Mapping[str, Any]] = ()) -> VersionInfo:
    """Everything known about ``mv``; who promoted it and when come from the audit ``trail``."""
    from mlkit.lineage import RunLineage

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
    moved = [e for e in trail if e.get("to_version") == str(mv.version)
             and e.get("state") in (DONE, SUPERSEDED) and e.get("action") in ("promote", "rollback")]
    return VersionInfo(
        name=mv.name, version=str(mv.version), stage=stage or version_tags.get(tags.STAGE), aliases=aliases,
        run_id=mv.run_id or None, source=mv.source or "", created_at=utc_iso(mv.creation_timestamp),
        metrics=metrics, git_commit=commit, git_branch=branch,
        git_dirty=None if dirty_tag is None else dirty_tag == "true", data_md5s=md5s, params=params,
        promoted_at=moved[-1].get("time") if moved else None,
        promoted_by=moved[-1].get("actor") if moved else None,
        reproduced=version_tags.get(tags.REPRODUCED), tags=version_tags,
    )


def history(project: Project, name: str, stage: str | None = None) -> list[dict[str, Any]]:
    """The audit trail of a model, oldest first (optionally only one stage's entries)."""
    if stage is not None:
        require_stage(project, stage)
    client = mlflow.client(project)
    entries = audit_entries(get_model(client, name))
    return [e for e in entries if stage is None or e.get("stage") == stage]


def audit_entries(model: RegisteredModel) -> list[dict[str, Any]]:
    out = []
    for key in sorted(k for k in model.tags if k.startswith(tags.AUDIT_PREFIX)):
        try:
            entry = json.loads(model.tags[key])
        except ValueError:
            entry = {"state": "unreadable", "raw": model.tags[key]}
        entry["id"] = key
        out.append(entry)
    return out


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, retried with backoff while SQLite reports `database is locked` and when a
    concurrent writer won an insert race (a tracking server over PostgreSQL answers two first-time
    ``set_registered_model_alias`` calls at once with a unique-key violation; the retry updates instead).
    """
    for attempt in range(_CONFLICT_ATTEMPTS):
        try:
            return mlflow.retry_locked(lambda: fn(*args, **kwargs))
        except Exception as exc:
            text = str(exc)
            if attempt == _CONFLICT_ATTEMPTS - 1 or not any(mark in text for mark in _WRITE_CONFLICTS):
                raise
            time.sleep(0.05 * (2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


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
                metrics[key[len(tags.METRIC_PREFIX):]] = float(value)
            except ValueError:
                continue
    return metrics, {}


def get_model(client: MlflowClient, name: str) -> RegisteredModel:
    try:
        return call(client.get_registered_model, name)
    except Exception as exc:
        if _not_found(exc):
            raise UsageError(f"no registered model {name!r} in the registry",
                             hint="`mlkit models list` shows the registered models") from None
        raise


def get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return call(client.get_model_version, name, version)
    except Exception as exc:
        if _not_found(exc):
            raise UsageError(f"model {name!r} has no version {version}",
                             hint=f"`mlkit models show {name}` shows the latest version") from None
        raise


def require_stage(project: Project, stage: str) -> None:
    """An unknown stage (not in mlkit.yaml's ``stages``) is bad input."""
    stages = project.config.stages
    if stage not in stages:
        raise UsageError(f"unknown stage {stage!r}; stages in mlkit.yaml: {', '.join(stages)}",
                         hint="use one of those, or add the stage to `stages` in mlkit.yaml")


def stage_holders(model: RegisteredModel) -> dict[str, str]:
    return _aliases(model)


# --- writing ------------------------------------------------------------------------------------------

@contextmanager
def write_lock(project: Project) -> Iterator[bool]:
    """Serialise registry writes on the embedded SQLite store; yields whether a lock is held."""
    uri = project.tracking_uri
    if not mlflow.is_sqlite(uri):
        yield False
        return
    from filelock import FileLock, Timeout

    db = mlflow.sqlite_path(uri)
    db.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(db.parent / f"{db.name}.registry.lock"))
    try:
        lock.acquire(timeout=_LOCK_TIMEOUT_S)
    except Timeout:
        raise OperationError(
            f"another mlkit process has held the registry lock for {_LOCK_TIMEOUT_S:g}s",
            hint=f"wait for it to finish, or remove {lock.lock_file} if no mlkit is running",
        ) from None
    try:
        yield True
    finally:
        lock.release()


def new_entry(action: str, name: str, stage: str, version: str | None, *, actor: str, reason: str,
              from_version: str | None, from_stage: str | None = None,
              gates: Sequence[Mapping[str, Any]] = (), state: str = PENDING) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    return {
        "id": f"{tags.AUDIT_PREFIX}{now.strftime('%Y%m%dT%H%M%S.%fZ')}.{uuid.uuid4().hex[:8]}",
        "time": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "action": action,
        "model": name,
        "stage": stage,
        "version": version,
        "from_version": from_version,
        "to_version": version,
        "from_stage": from_stage,
        "actor": actor,
        "reason": reason,
        "gates": [dict(g) for g in gates],
        "state": state,
    }


def write_entry(client: MlflowClient, entry: Mapping[str, Any]) -> None:
    """One atomic tag write: the entry is in the registry whole, or not at all."""
    body = {k: v for k, v in entry.items() if k != "id"}
    text = json.dumps(body, sort_keys=True, default=str)
    call(client.set_registered_model_tag, entry["model"], entry["id"], text)


def move_stage(client: MlflowClient, name: str, stage: str, version: str, stages: Sequence[str],
               entry: dict[str, Any], *, locked: bool, aliases: Mapping[str, str] | None = None,
               progress: Progress | None = None) -> dict[str, Any]:
    """Point ``stage``'s alias at ``version`` following the write-ahead sequence in the module docstring.

    ``entry`` is a pending audit entry from :func:`new_entry`; it is written first and returned ``done``
    (or ``superseded`` when, without a lock, another writer moved the alias right after). ``aliases``:
    the model's aliases as read under the lock, to save reading them again.
    """
    say = progress or (lambda _m: None)
    write_entry(client, entry)
    say(f"moving {name}@{stage} to version {version}")
    try:
        call(client.set_registered_model_alias, name, stage, version)
    except Exception:
        _settle_after_failure(client, entry, stages)
        raise
    _finish_move(client, entry, stages, aliases if locked else None)
    if not locked:
        current = _aliases(get_model(client, name)).get(stage)
        if current != version:
            entry["state"] = SUPERSEDED
            entry["superseded_by"] = current
    write_entry(client, entry)
    return entry


def settle_pending(client: MlflowClient, model: RegisteredModel, stages: Sequence[str], *, locked: bool,
                   progress: Progress | None = None) -> list[dict[str, Any]]:
    """Finish or abort the moves a crashed process left ``pending`` (see the module docstring)."""
    settled = []
    aliases = _aliases(model)
    now = datetime.now(timezone.utc)
    for entry in audit_entries(model):
        if entry.get("state") != PENDING:
            continue
        if not locked and (now - _parse_time(entry.get("time"))).total_seconds() < _SETTLE_AFTER_S:
            continue
        entry["recovered"] = True
        if aliases.get(entry["stage"]) == entry.get("to_version"):
            _finish_move(client, entry, stages)
        else:
            entry["state"] = ABORTED
        if progress:
            progress(f"settled an interrupted {entry['action']} of {entry['model']} to {entry['stage']}: "
                     f"{entry['state']}")
        write_entry(client, entry)
        settled.append(entry)
    return settled


def rollback_target(entries: Sequence[Mapping[str, Any]], stage: str, holder: str) -> str | None:
    """The version that held ``stage`` before ``holder`` got it, replaying the trail as a stack.

    A promotion pushes its version (and, first, the version it displaced when the trail did not know it,
    e.g. an alias set outside mlkit); a rollback pops. Pure: unit-tested on hand-made entries.
    """
    stack: list[str] = []
    for entry in entries:
        if entry.get("stage") != stage or entry.get("state") not in (DONE, SUPERSEDED):
            continue
        to, displaced = entry.get("to_version"), entry.get("from_version")
        if entry.get("action") == "promote":
            if displaced and (not stack or stack[-1] != displaced):
                stack.append(displaced)
            if to and (not stack or stack[-1] != to):
                stack.append(to)
        elif entry.get("action") == "rollback":
            while stack and stack[-1] != to:
                stack.pop()
            if not stack and to:
                stack.append(to)
    for index in range(len(stack) - 1, 0, -1):
        if stack[index] == holder:
            return stack[index - 1]
    return None


@dataclass
class RollbackResult:
    model: str
    stage: str
    from_version: str
    to_version: str
    actor: str
    reason: str
    audit_id: str
    state: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rollback(project: Project, name: str, stage: str, *, reason: str = "",
             progress: Progress | None = None) -> RollbackResult:
    """Put ``stage``'s alias back on the version that held it before the current one; audited."""
    require_stage(project, stage)
    stages = project.config.stages
    client = mlflow.client(project)
    who = actor(project.root)
    with write_lock(project) as locked:
        model = get_model(client, name)
        if settle_pending(client, model, stages, locked=locked, progress=progress):
            model = get_model(client, name)
        holder = _aliases(model).get(stage)
        if holder is None:
            raise UsageError(f"no version of {name!r} holds {stage}; nothing to roll back",
                             hint=f"`mlkit models history {name}` shows what happened")
        target = rollback_target(audit_entries(model), stage, holder)
        if target is None:
            raise UsageError(f"no earlier version of {name!r} held {stage} before version {holder}",
                             hint=f"`mlkit models history {name}` shows what happened")
        get_version(client, name, target)  # it may have been deleted since
        entry = new_entry("rollback", name, stage, target, actor=who, reason=reason,
                          from_version=holder, from_stage=_holds(model, target, stages))
        entry = move_stage(client, name, stage, target, stages, entry, locked=locked, aliases=_aliases(model),
                           progress=progress)
    return RollbackResult(model=name, stage=stage, from_version=holder, to_version=target,
                          actor=entry["actor"], reason=reason, audit_id=entry["id"], state=entry["state"])


def actor(root: os.PathLike[str] | str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Who is acting: ``GITHUB_ACTOR`` inside GitHub Actions, else the git user, else the login name."""
    env = os.environ if environ is None else environ
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_ACTOR"):
        return f"{env['GITHUB_ACTOR']} (github actions)"
    name, email = git.config_value(root, "user.name"), git.config_value(root, "user.email")
    if name:
        return f"{name} <{email}>" if email else name
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


# --- private ------------------------------------------------------------------------------------------

def _finish_move(client: MlflowClient, entry: dict[str, Any], stages: Sequence[str],
                 aliases: Mapping[str, str] | None = None) -> None:
    """Steps after the commit point; idempotent, so a recovery can run them again.

    Who moved the version and when stays in the audit entry only: one tag write fewer per move.
    """
    name, stage, version = entry["model"], entry["stage"], entry["to_version"]
    if aliases is None:
        aliases = _aliases(get_model(client, name))
    for other, holder in aliases.items():
        if other != stage and other in stages and holder == version:
            call(client.delete_registered_model_alias, name, other)
    call(client.set_model_version_tag, name, version, tags.STAGE, stage)
    displaced = entry.get("from_version")
    if displaced and displaced != version:
        mv = _maybe_version(client, name, displaced)
        if mv is not None and (mv.tags or {}).get(tags.STAGE) == stage and stage not in (mv.aliases or []):
            if stage == stages[-1]:
                call(client.set_model_version_tag, name, displaced, tags.STAGE, ARCHIVED)
            else:
                call(client.delete_model_version_tag, name, displaced, tags.STAGE)
    if entry.get("state") == PENDING:
        entry["state"] = DONE


def _settle_after_failure(client: MlflowClient, entry: dict[str, Any], stages: Sequence[str]) -> None:
    """The alias write failed: settle our own pending entry now rather than leave it to the next writer."""
    try:
        current = _aliases(get_model(client, entry["model"])).get(entry["stage"])
        if current == entry["to_version"]:
            _finish_move(client, entry, stages)
        else:
            entry["state"] = ABORTED
        write_entry(client, entry)
    except Exception:  # the registry is unreachable: the entry stays pending and is settled later
        return


def _maybe_version(client: MlflowClient, name: str, version: str) -> ModelVersion | None:
    try:
        return get_version(client, name, version)
    except UsageError:
        return None


def _holds(model: RegisteredModel, version: str, stages: Sequence[str]) -> str | None:
    aliases = _aliases(model)
    return next((s for s in stages if aliases.get(s) == version), None)


def _aliases(model: RegisteredModel) -> dict[str, str]:
    raw = model.aliases or {}
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    return {str(a.alias): str(a.version) for a in raw}


def get_run(client: MlflowClient, run_id: str) -> Any:
    try:
        return call(client.get_run, run_id)
    except Exception as exc:
        if _not_found(exc):
            return None
        raise


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"





def _entry_time(key: str) -> str:
    stamp = key[len(tags.AUDIT_PREFIX):].split(".")[0]
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc).isoformat().replace(
            "+00:00", "Z")
    except ValueError:
        return stamp


def _parse_time(text: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromtimestamp(0, tz=timezone.utc)
