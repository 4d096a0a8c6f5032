"""The audit trail of stage moves, the registry write lock, and the write-ahead sequence of a move.

Audit trail
    MLflow keeps no history of alias moves, so mlkit writes one **registered-model tag per event**:
    key ``mlkit.audit.<UTC time>.<random>`` (keys sort in time order), value a JSON document (time, actor,
    action, stage, from and to versions, reason, gate results, state). :class:`AuditEntry` is one such
    document. Why tags rather than a file or a table of our own:

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
    On the embedded SQLite store every write sequence runs under a file lock next to the database
    (:func:`write_lock`), so concurrent promotions are serialised: each reads the holder, evaluates its
    gates and moves the alias as one unit, and every call retries with backoff while SQLite reports
    ``database is locked``. A server URI has no such lock: each step is still atomic and every process
    writes its own entry, but two promotions to the same stage at the same instant may both record the
    same displaced version and evaluate ``beat_current`` against a holder that is being replaced; the last
    alias write wins. After moving the alias mlkit re-reads it and marks its entry ``superseded`` when
    another writer got there first, so the trail says so. A first-time alias write that loses an insert
    race on PostgreSQL (a unique-key violation) is retried and becomes an update. Pending entries on a
    server are settled only when older than :data:`_SETTLE_AFTER_S`, so a move still in flight elsewhere is
    not mistaken for a crash. Every unlocked move ends by putting each stage's ``mlkit.stage`` tag back on
    the alias holder alone (:func:`clean_stage_tags`), so the losers of a race do not keep a stage tag;
    the alias stays the truth. A superseded move makes `mlkit promote` fail (exit code 1,
    :class:`mlkit.errors.SupersededError`) so CI does not report it as promoted. The CI workflows mlkit
    generates put promotions to one stage in a concurrency group, which removes the race.
"""

from __future__ import annotations

import getpass
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from filelock import FileLock, Timeout

from mlkit import credentials, tags
from mlkit.engines import git, mlflow
from mlkit.errors import OperationError
from mlkit.progress import Progress

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

    from mlkit.project import Project

PENDING, DONE, ABORTED, REFUSED, SUPERSEDED = "pending", "done", "aborted", "refused", "superseded"
UNREADABLE = "unreadable"  # a tag under the audit prefix that is not an entry's JSON
ARCHIVED = "archived"  # the mlkit.stage tag of a version displaced from the last stage

_LOCK_TIMEOUT_S = 120.0
_SETTLE_AFTER_S = 300.0
_CONFLICT_ATTEMPTS = 6
_WRITE_CONFLICTS = ("UniqueViolation", "duplicate key value", "UNIQUE constraint failed", "IntegrityError")
# the keys of an entry's JSON, besides the optional ``recovered`` and ``superseded_by``
_FIELDS = (
    "time",
    "action",
    "model",
    "stage",
    "version",
    "from_version",
    "to_version",
    "from_stage",
    "actor",
    "reason",
    "gates",
    "state",
)

T = TypeVar("T")


@dataclass(frozen=True)
class AuditEntry:
    """One event of a model's audit trail: a promotion, a refusal or a rollback, and how it ended.

    ``id`` is the registered-model tag key the entry is stored under; the tag's value is
    :meth:`to_json`. ``to_version`` is the version the stage moves to (stored as ``version`` too).
    ``extra`` keeps keys this mlkit does not know, so rewriting an entry never drops them.
    """

    id: str
    time: str
    action: str  # promote | refuse | rollback
    model: str
    stage: str
    to_version: str | None
    from_version: str | None
    from_stage: str | None
    actor: str
    reason: str
    gates: tuple[Mapping[str, Any], ...] = ()
    state: str = PENDING
    recovered: bool = False
    superseded_by: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def new(
        cls,
        action: str,
        model: str,
        stage: str,
        version: str | None,
        *,
        actor: str,
        reason: str,
        from_version: str | None,
        from_stage: str | None = None,
        gates: Sequence[Mapping[str, Any]] = (),
        state: str = PENDING,
    ) -> AuditEntry:
        """An entry stamped now, under a fresh key that sorts after every earlier one."""
        now = datetime.now(timezone.utc)
        return cls(
            id=f"{tags.AUDIT_PREFIX}{now.strftime('%Y%m%dT%H%M%S.%fZ')}.{uuid.uuid4().hex[:8]}",
            time=now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            action=action,
            model=model,
            stage=stage,
            to_version=version,
            from_version=from_version,
            from_stage=from_stage,
            actor=actor,
            reason=reason,
            gates=tuple(dict(g) for g in gates),
            state=state,
        )

    @classmethod
    def from_tag(cls, key: str, text: str) -> AuditEntry:
        """The entry stored under tag ``key``; state ``unreadable`` (with ``raw``) when it is not JSON."""
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return cls(
                id=key,
                time="",
                action="",
                model="",
                stage="",
                to_version=None,
                from_version=None,
                from_stage=None,
                actor="",
                reason="",
                state=UNREADABLE,
                extra={"raw": text},
            )
        known = (*_FIELDS, "recovered", "superseded_by")
        return cls(
            id=key,
            time=data.get("time", ""),
            action=data.get("action", ""),
            model=data.get("model", ""),
            stage=data.get("stage", ""),
            to_version=data.get("to_version", data.get("version")),
            from_version=data.get("from_version"),
            from_stage=data.get("from_stage"),
            actor=data.get("actor", ""),
            reason=data.get("reason", ""),
            gates=tuple(data.get("gates") or ()),
            state=data.get("state", ""),
            recovered=bool(data.get("recovered", False)),
            superseded_by=data.get("superseded_by"),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_json(self) -> str:
        """The tag value: the same keys and bytes mlkit has always written, so every trail stays readable."""
        return json.dumps(self._body(), sort_keys=True, default=str)

    def to_dict(self) -> dict[str, Any]:
        """What `mlkit models history --json` prints: the stored document plus its ``id``."""
        if self.state == UNREADABLE:
            return {"state": UNREADABLE, **self.extra, "id": self.id}
        return {**dict(sorted(self._body().items())), "id": self.id}

    def _body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            **self.extra,
            "time": self.time,
            "action": self.action,
            "model": self.model,
            "stage": self.stage,
            "version": self.to_version,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "from_stage": self.from_stage,
            "actor": self.actor,
            "reason": self.reason,
            "gates": [dict(g) for g in self.gates],
            "state": self.state,
        }
        if self.recovered:
            body["recovered"] = True
        if self.state == SUPERSEDED or self.superseded_by is not None:
            body["superseded_by"] = self.superseded_by
        return body


# --- reading ------------------------------------------------------------------------------------------


def read_trail(model: RegisteredModel) -> list[AuditEntry]:
    """Every audit entry of ``model``, oldest first."""
    return [AuditEntry.from_tag(key, model.tags[key]) for key in _keys(model)]


def last_event_time(model: RegisteredModel) -> str | None:
    """When the newest entry was written, from its key alone (no JSON is parsed)."""
    keys = _keys(model)
    if not keys:
        return None
    stamp = keys[-1][len(tags.AUDIT_PREFIX) :].split(".")[0]
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")
    except ValueError:
        return stamp


def model_aliases(model: RegisteredModel) -> dict[str, str]:
    """``{alias: version}`` of ``model`` as it was read (MLflow gives a dict or a list of objects)."""
    raw = model.aliases or {}
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    return {str(a.alias): str(a.version) for a in raw}


def actor(
    root: os.PathLike[str] | str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    tracking_uri: str | None = None,
) -> str:
    """Who is acting: the user signed in to the tracking server, else ``GITHUB_ACTOR`` inside GitHub
    Actions, else the git user, else the login name.

    Signed in means ``tracking_uri`` is http(s) and credentials are set (``MLFLOW_TRACKING_USERNAME``
    and ``MLFLOW_TRACKING_PASSWORD``, or a token the server names): the server authenticated that user
    for every write of the move, so it is the one name in the entry that nobody can make up.
    """
    env = os.environ if environ is None else environ
    in_actions = env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_ACTOR")
    user = credentials.signed_in_user(tracking_uri, env)
    if user:
        return f"{user} (signed in, github actions: {env['GITHUB_ACTOR']})" if in_actions else f"{user} (signed in)"
    if in_actions:
        return f"{env['GITHUB_ACTOR']} (github actions)"
    name, email = git.config_value(root, "user.name"), git.config_value(root, "user.email")
    if name:
        return f"{name} <{email}>" if email else name
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


# --- writing ------------------------------------------------------------------------------------------


@contextmanager
def write_lock(project: Project) -> Iterator[bool]:
    """Serialise registry writes on the embedded SQLite store; yields whether a lock is held."""
    uri = project.tracking_uri
    if not mlflow.is_sqlite(uri):
        yield False
        return
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


def write_entry(client: MlflowClient, entry: AuditEntry) -> None:
    """One atomic tag write: the entry is in the registry whole, or not at all."""
    _call(client.set_registered_model_tag, entry.model, entry.id, entry.to_json())


def move_stage(
    client: MlflowClient,
    entry: AuditEntry,
    stages: Sequence[str],
    *,
    locked: bool,
    aliases: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> AuditEntry:
    """Point ``entry.stage``'s alias at ``entry.to_version`` following the write-ahead sequence above.

    ``entry`` is a pending entry from :meth:`AuditEntry.new`; it is written first and returned ``done``
    (or ``superseded`` when, without a lock, another writer moved the alias right after). ``aliases``:
    the model's aliases as read under the lock, to save reading them again.
    """
    say = progress or (lambda _m: None)
    name, stage, version = entry.model, entry.stage, entry.to_version
    write_entry(client, entry)
    say(f"moving {name}@{stage} to version {version}")
    try:
        _call(client.set_registered_model_alias, name, stage, version)
    except Exception:
        _settle_after_failure(client, entry, stages)
        raise
    entry = _finish_move(client, entry, stages, aliases if locked else None)
    if not locked:
        current = clean_stage_tags(client, name, stages)[stage]
        if current != version:
            entry = replace(entry, state=SUPERSEDED, superseded_by=current)
    write_entry(client, entry)
    return entry


def clean_stage_tags(
    client: MlflowClient, name: str, stages: Sequence[str], attempts: int = 3
) -> dict[str, str | None]:
    """Leave each stage's ``mlkit.stage`` tag on the version holding its alias and on no other version.

    Racing writers on a server each tag their own version after their alias write, so the losers' tags
    outlive their aliases. Every unlocked move ends here: a stale tag of the last stage becomes
    ``archived`` (the version did hold it), any other stale stage tag is removed, and a holder missing its
    tag gets it. Repeated while the aliases move underneath (bounded by ``attempts``); returns the
    holders it settled on, ``{stage: version or None}``.
    """
    holders: dict[str, str | None] = {}
    for _ in range(attempts):
        aliases = _holders(client, name)
        holders = {stage: aliases.get(stage) for stage in stages}
        for stage, holder in holders.items():
            tagged = _versions_tagged(client, name, stage)
            for version in tagged - {holder}:
                if stage == stages[-1]:
                    _call(client.set_model_version_tag, name, version, tags.STAGE, ARCHIVED)
                else:
                    _call(client.delete_model_version_tag, name, version, tags.STAGE)
            if holder is not None and holder not in tagged:
                _call(client.set_model_version_tag, name, holder, tags.STAGE, stage)
        if {s: v for s, v in _holders(client, name).items() if s in stages} == {
            s: v for s, v in holders.items() if v is not None
        }:
            break
    return holders


def settle_pending(
    client: MlflowClient,
    model: RegisteredModel,
    stages: Sequence[str],
    *,
    locked: bool,
    progress: Progress | None = None,
) -> list[AuditEntry]:
    """Finish or abort the moves a crashed process left ``pending`` (see the module docstring)."""
    settled = []
    aliases = model_aliases(model)
    now = datetime.now(timezone.utc)
    for entry in read_trail(model):
        if entry.state != PENDING:
            continue
        if not locked and (now - _parse_time(entry.time)).total_seconds() < _SETTLE_AFTER_S:
            continue
        entry = replace(entry, recovered=True)
        if aliases.get(entry.stage) == entry.to_version:
            entry = _finish_move(client, entry, stages)
        else:
            entry = replace(entry, state=ABORTED)
        if progress:
            progress(f"settled an interrupted {entry.action} of {entry.model} to {entry.stage}: {entry.state}")
        write_entry(client, entry)
        settled.append(entry)
    return settled


# --- private ------------------------------------------------------------------------------------------


def _finish_move(
    client: MlflowClient, entry: AuditEntry, stages: Sequence[str], aliases: Mapping[str, str] | None = None
) -> AuditEntry:
    """Steps after the commit point; idempotent, so a recovery can run them again.

    Who moved the version and when stays in the audit entry only: one tag write fewer per move.
    """
    name, stage, version = entry.model, entry.stage, entry.to_version
    if aliases is None:
        aliases = _holders(client, name)
    for other, holder in aliases.items():
        if other != stage and other in stages and holder == version:
            _call(client.delete_registered_model_alias, name, other)
    _call(client.set_model_version_tag, name, version, tags.STAGE, stage)
    displaced = entry.from_version
    if displaced and displaced != version:
        mv = _version_or_none(client, name, displaced)
        if mv is not None and (mv.tags or {}).get(tags.STAGE) == stage and stage not in (mv.aliases or []):
            if stage == stages[-1]:
                _call(client.set_model_version_tag, name, displaced, tags.STAGE, ARCHIVED)
            else:
                _call(client.delete_model_version_tag, name, displaced, tags.STAGE)
    return replace(entry, state=DONE) if entry.state == PENDING else entry


def _settle_after_failure(client: MlflowClient, entry: AuditEntry, stages: Sequence[str]) -> None:
    """The alias write failed: settle our own pending entry now rather than leave it to the next writer."""
    try:
        if _holders(client, entry.model).get(entry.stage) == entry.to_version:
            entry = _finish_move(client, entry, stages)
        else:
            entry = replace(entry, state=ABORTED)
        write_entry(client, entry)
    except Exception:  # the registry is unreachable: the entry stays pending and is settled later
        return


def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
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


def _holders(client: MlflowClient, name: str) -> dict[str, str]:
    """The aliases of ``name`` as the registry has them now."""
    return model_aliases(_call(client.get_registered_model, name))


def _versions_tagged(client: MlflowClient, name: str, stage: str) -> set[str]:
    """The versions of ``name`` whose ``mlkit.stage`` tag is ``stage``."""
    quoted_name, quoted_stage = name.replace("'", "\\'"), stage.replace("'", "\\'")
    query = f"name = '{quoted_name}' and tags.`{tags.STAGE}` = '{quoted_stage}'"
    found: set[str] = set()
    token = None
    while True:
        page = _call(client.search_model_versions, query, max_results=1000, page_token=token)
        found.update(str(mv.version) for mv in page)
        token = page.token
        if not token:
            return found


def _version_or_none(client: MlflowClient, name: str, version: str) -> ModelVersion | None:
    try:
        return _call(client.get_model_version, name, version)
    except Exception as exc:
        if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def _keys(model: RegisteredModel) -> list[str]:
    return sorted(k for k in model.tags if k.startswith(tags.AUDIT_PREFIX))


def _parse_time(text: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromtimestamp(0, tz=timezone.utc)
