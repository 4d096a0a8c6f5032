"""Gated promotion: a model version moves to a stage only when the policy in mlkit.yaml says it may.

The policy is ``promotion.<stage>`` in mlkit.yaml (:class:`mlkit.config.StageGates`). Every gate is
evaluated, not only up to the first failure, so a refusal shows the whole picture:

``threshold``       a metric of the version's run against a bound, e.g. ``f1 >= 0.85``
``beat_current``    the challenger must be at least as good as the version holding the stage, plus a
                    margin (lower is better for log_loss, rmse and mae)
``clean_commit``    the version was trained from a committed, clean git tree (lineage tag)
``previous_stage``  the version holds the stage before the target (no skipping to production)
``reproduced``      ``mlkit reproduce`` confirmed the version (tag ``mlkit.reproduced=true``)

A refused promotion writes a ``refuse`` entry to the audit trail and changes nothing else; a dry run
evaluates the gates and writes nothing at all.

A rollback puts a stage back on the version that held it before the current one, with no gates. Both
operations are stage moves and take the same path (:func:`_stage_move`): under the registry write lock,
settle what an interrupted move left pending, read the holders, then write the audit entry and move the
alias through the write-ahead sequence of :mod:`mlkit.audit`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mlkit import audit, credentials, registry, tags
from mlkit.audit import AuditEntry
from mlkit.engines import mlflow
from mlkit.errors import GateRefusedError, PermissionDeniedError, SupersededError, UsageError
from mlkit.progress import Progress

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

    from mlkit.config import StageGates
    from mlkit.project import Project

LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})

_COMPARE = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
}


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Candidate:
    """What the gates read about a version: its run's metrics, its tags and the stage it holds."""

    version: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    stage: str | None = None
    # for the `reproduced` gate, which checks the reproducing run in the store
    run_id: str = ""
    client: Any = field(default=None, repr=False, compare=False)


@dataclass
class PromotionResult:
    model: str
    version: str
    stage: str
    status: str  # promoted | refused | would promote | would refuse | unchanged
    from_version: str | None
    from_stage: str | None
    gates: list[GateResult]
    actor: str
    reason: str
    dry_run: bool
    audit_id: str | None = None

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["gates"] = [g.to_dict() for g in self.gates]
        return data


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


class PromotionRefused(GateRefusedError):
    """A gate failed; ``result`` carries every gate's outcome for the caller to show."""

    def __init__(self, result: PromotionResult) -> None:
        failed = [g.gate for g in result.gates if not g.passed]
        verb = "would be refused" if result.dry_run else "refused"
        super().__init__(
            f"promotion of {result.model} version {result.version} to {result.stage} {verb}: "
            f"{len(failed)} of {len(result.gates)} gates failed ({', '.join(failed)})",
            hint=f"the gates are `promotion.{result.stage}` in mlkit.yaml; "
            f"`mlkit models show {result.model}/{result.version}` shows the version",
        )
        self.result = result


class PromotionSuperseded(SupersededError):
    """The move happened, but a concurrent writer moved the stage again before it returned (exit code 1)."""

    def __init__(self, result: PromotionResult, holder: str | None) -> None:
        super().__init__(
            f"promotion of {result.model} version {result.version} to {result.stage} was superseded: "
            f"version {holder or 'none'} holds {result.stage} now (another promotion moved it at the same time)",
            hint=f"`mlkit models history {result.model} --stage {result.stage}` shows both moves; "
            "promote again if this version should win",
        )
        self.result = result
        self.holder = holder


def evaluate_gates(
    gates: StageGates | None, *, stages: Sequence[str], target: str, candidate: Candidate, holder: Candidate | None
) -> list[GateResult]:
    """Every gate of ``target``'s policy applied to ``candidate`` (``holder``: the version holding it now)."""
    if gates is None:
        return []
    results = [_threshold(candidate, metric, op, bound) for metric, op, bound in gates.parsed_thresholds()]
    if gates.beat_current is not None:
        results.append(_beat_current(candidate, holder, target, gates.beat_current.metric, gates.beat_current.margin))
    if gates.clean_commit:
        results.append(_clean_commit(candidate))
    if gates.previous_stage:
        results.append(_previous_stage(candidate, stages, target))
    if gates.reproduced:
        results.append(_reproduced(candidate))
    return results


def promote(
    project: Project,
    name: str,
    version: str | int | None = None,
    *,
    to: str,
    from_stage: str | None = None,
    reason: str = "",
    dry_run: bool = False,
    progress: Progress | None = None,
) -> PromotionResult:
    """Move ``version`` (or whatever holds ``from_stage``) of ``name`` to stage ``to`` if the gates allow.

    Raises :class:`PromotionRefused` (exit code 3) when a gate fails, after recording the refusal in the
    audit trail (not on a dry run). Promoting a version to the stage it already holds changes nothing.
    """
    registry.require_stage(project, to)
    _check_reason(reason)
    if from_stage is not None:
        registry.require_stage(project, from_stage)
    if version is None and from_stage is None:
        raise UsageError(
            "name a VERSION or --from STAGE to promote",
            hint=f"e.g. `mlkit promote {name} --from staging --to production`",
        )
    wanted = registry.normalize_version(version) if version is not None else None
    stages = project.config.stages
    client = mlflow.client(project)
    who = audit.actor(project.root, tracking_uri=project.tracking_uri)  # may run git: kept out of the locked section
    with (
        _server_refusals(project, name, to, "promote"),
        _stage_move(project, client, name, dry_run=dry_run, progress=progress) as move,
    ):
        holders = move.holders
        chosen = _choose_version(name, wanted, from_stage, holders)
        mv = registry.get_version(client, name, chosen)
        current = holders.get(to)
        current_stage = next((s for s in stages if holders.get(s) == chosen), None)
        result = PromotionResult(
            model=name,
            version=chosen,
            stage=to,
            status="unchanged",
            from_version=current,
            from_stage=current_stage,
            gates=[],
            actor=who,
            reason=reason,
            dry_run=dry_run,
        )
        if current == chosen:
            return result
        policy = project.config.promotion.get(to)
        candidate = _candidate(client, mv, current_stage, policy)
        holder = None
        if current and policy is not None and policy.beat_current is not None:
            holder = _candidate(client, registry.get_version(client, name, current), to, policy)
        result.gates = evaluate_gates(policy, stages=stages, target=to, candidate=candidate, holder=holder)
        gate_dicts = [g.to_dict() for g in result.gates]
        if not result.passed:
            result.status = "would refuse" if dry_run else "refused"
            if not dry_run:
                entry = AuditEntry.new(
                    "refuse",
                    name,
                    to,
                    chosen,
                    actor=who,
                    reason=reason,
                    from_version=current,
                    from_stage=current_stage,
                    gates=gate_dicts,
                    state=audit.REFUSED,
                )
                audit.write_entry(client, entry)
                result.audit_id = entry.id
            raise PromotionRefused(result)
        if dry_run:
            result.status = "would promote"
            return result
        _require_manage(project, name, to, current_stage)
        entry = move.commit(
            AuditEntry.new(
                "promote",
                name,
                to,
                chosen,
                actor=who,
                reason=reason,
                from_version=current,
                from_stage=current_stage,
                gates=gate_dicts,
            )
        )
        result.status = "promoted" if entry.state == audit.DONE else entry.state
        result.audit_id = entry.id
    if entry.state == audit.SUPERSEDED:
        raise PromotionSuperseded(result, entry.superseded_by)
    return result


def rollback(
    project: Project, name: str, stage: str, *, reason: str = "", progress: Progress | None = None
) -> RollbackResult:
    """Put ``stage``'s alias back on the version that held it before the current one; audited, no gates.

    Raises :class:`SupersededError` (exit code 1) when, on a server, another move overwrote it at once.
    """
    registry.require_stage(project, stage)
    _check_reason(reason)
    stages = project.config.stages
    client = mlflow.client(project)
    who = audit.actor(project.root, tracking_uri=project.tracking_uri)  # may run git: kept out of the locked section
    with (
        _server_refusals(project, name, stage, "roll back"),
        _stage_move(project, client, name, progress=progress) as move,
    ):
        holder = move.holders.get(stage)
        if holder is None:
            raise UsageError(
                f"no version of {name!r} holds {stage}; nothing to roll back",
                hint=f"`mlkit models history {name}` shows what happened",
            )
        target = rollback_target(audit.read_trail(move.model), stage, holder)
        if target is None:
            raise UsageError(
                f"no earlier version of {name!r} held {stage} before version {holder}",
                hint=f"`mlkit models history {name}` shows what happened",
            )
        registry.get_version(client, name, target)  # it may have been deleted since
        target_stage = next((s for s in stages if move.holders.get(s) == target), None)
        _require_manage(project, name, stage, target_stage)
        entry = move.commit(
            AuditEntry.new(
                "rollback", name, stage, target, actor=who, reason=reason, from_version=holder, from_stage=target_stage
            )
        )
    if entry.state == audit.SUPERSEDED:
        raise SupersededError(
            f"rollback of {name}@{stage} to version {target} was superseded: version "
            f"{entry.superseded_by or 'none'} holds {stage} now (another move happened at the same time)",
            hint=f"`mlkit models history {name} --stage {stage}` shows both moves",
        )
    return RollbackResult(
        model=name,
        stage=stage,
        from_version=holder,
        to_version=target,
        actor=entry.actor,
        reason=reason,
        audit_id=entry.id,
        state=entry.state,
    )


def rollback_target(entries: Sequence[AuditEntry], stage: str, holder: str) -> str | None:
    """The version that held ``stage`` before ``holder`` got it, replaying the trail as a stack.

    A promotion pushes its version (and, first, the version it displaced when the trail did not know it,
    e.g. an alias set outside mlkit); a rollback pops. Pure: unit-tested on hand-made entries.
    """
    # a superseded move lost a race: its version held the stage for an instant at most, never for users,
    # so it is neither pushed nor, when a racing move recorded it as displaced, returned to
    moved = [e for e in entries if e.stage == stage and e.action in ("promote", "rollback")]
    done = {e.to_version for e in moved if e.state == audit.DONE}
    lost = {e.to_version for e in moved if e.state == audit.SUPERSEDED} - done
    stack: list[str] = []
    for entry in moved:
        if entry.state != audit.DONE:
            continue
        to, displaced = entry.to_version, entry.from_version
        if entry.action == "promote":
            if displaced and displaced not in lost and (not stack or stack[-1] != displaced):
                stack.append(displaced)
            if to and (not stack or stack[-1] != to):
                stack.append(to)
        elif entry.action == "rollback":
            while stack and stack[-1] != to:
                stack.pop()
            if not stack and to:
                stack.append(to)
    for index in range(len(stack) - 1, 0, -1):
        if stack[index] == holder:
            return stack[index - 1]
    return None


# --- gates --------------------------------------------------------------------------------------------


def _threshold(candidate: Candidate, metric: str, op: str, bound: float) -> GateResult:
    gate = f"{metric} {op} {bound:g}"
    value = candidate.metrics.get(metric)
    if value is None:
        return GateResult(gate, False, f"{metric} not logged for version {candidate.version}")
    passed = _COMPARE[op](value, bound)
    return GateResult(gate, passed, f"{metric} = {value:.4f} (needs {op} {bound:g})")


def _beat_current(
    candidate: Candidate, holder: Candidate | None, target: str, metric: str, margin: float
) -> GateResult:
    gate = f"beat current on {metric}"
    mine = candidate.metrics.get(metric)
    if mine is None:
        return GateResult(gate, False, f"{metric} not logged for version {candidate.version}")
    if holder is None:
        return GateResult(gate, True, f"no version holds {target} yet; {metric} = {mine:.4f}")
    theirs = holder.metrics.get(metric)
    if theirs is None:
        return GateResult(gate, False, f"current version {holder.version} has no {metric} to compare")
    lower = metric in LOWER_IS_BETTER
    gain = (theirs - mine) if lower else (mine - theirs)
    passed = gain >= margin
    direction = "lower" if lower else "higher"
    return GateResult(
        gate,
        passed,
        f"{metric} = {mine:.4f} vs {theirs:.4f} for current version "
        f"{holder.version} ({direction} is better, needs a gain >= {margin:g}, "
        f"got {gain:+.4f})",
    )


def _clean_commit(candidate: Candidate) -> GateResult:
    commit = candidate.tags.get(tags.GIT_COMMIT)
    dirty = candidate.tags.get(tags.GIT_DIRTY)
    if not commit or dirty is None:
        return GateResult("clean commit", False, "no git commit recorded for this version")
    if dirty == "true":
        return GateResult("clean commit", False, f"trained from uncommitted changes on {commit[:10]}")
    return GateResult("clean commit", True, f"trained from clean commit {commit[:10]}")


def _previous_stage(candidate: Candidate, stages: Sequence[str], target: str) -> GateResult:
    index = stages.index(target)
    if index == 0:
        return GateResult("previous stage", True, f"{target} is the first stage")
    before = stages[index - 1]
    if candidate.stage == before:
        return GateResult("previous stage", True, f"version {candidate.version} holds {before}")
    now = candidate.stage or "no stage"
    return GateResult("previous stage", False, f"version {candidate.version} holds {now}, needs {before}")


def _reproduced(candidate: Candidate) -> GateResult:
    # the verdict counts only with its evidence: the reproducing run, re-read from the store
    flag = candidate.tags.get(tags.REPRODUCED)
    if flag == "false":
        return GateResult("reproduced", False, "reproduction did not match")
    if flag != "true":
        return GateResult("reproduced", False, "not reproduced")
    by = candidate.tags.get(tags.REPRODUCED_BY_RUN, "")
    problem = _reproduction_problem(candidate, by)
    if problem:
        return GateResult("reproduced", False, f"{tags.REPRODUCED} is set but {problem}")
    at = candidate.tags.get(tags.REPRODUCED_AT, "?")
    return GateResult("reproduced", True, f"reproduced by run {by} at {at}")


def _reproduction_problem(candidate: Candidate, by: str) -> str:
    """Why the run ``by`` does not prove that ``candidate`` was reproduced; '' when it does."""
    if not by:
        return "names no reproducing run"
    if candidate.client is None:
        return f"its reproducing run {by} could not be checked (no tracking store)"
    try:
        run = candidate.client.get_run(by)
    except Exception:
        return f"its reproducing run {by} is not in the tracking store"
    if run.info.status != "FINISHED":
        return f"its reproducing run {by} is {run.info.status}, not FINISHED"
    if not candidate.run_id or run.data.tags.get(tags.REPRODUCES) != candidate.run_id:
        return f"run {by} does not reproduce run {candidate.run_id or '?'}"
    fingerprint = candidate.tags.get(tags.PREDICTIONS_SHA256, "")
    if not fingerprint or run.data.tags.get(tags.PREDICTIONS_SHA256) != fingerprint:
        return f"run {by} predicted differently (its predictions sha256 is not the version's)"
    return ""


# An audit entry is one registered-model tag, whose value MLflow caps at 5,000 characters.
MAX_REASON = 1000


def _check_reason(reason: str) -> None:
    """A promotion or rollback reason fits in its audit entry, or the move is bad input before any work."""
    if len(reason) > MAX_REASON:
        raise UsageError(
            f"--reason is {len(reason):,} characters long; at most {MAX_REASON:,} are recorded",
            hint="say why in a sentence; link to a longer text (an issue, a pull request)",
        )


# --- private ------------------------------------------------------------------------------------------


@dataclass
class _StageMove:
    """The model as read under the write lock, and the one way a stage moves from there."""

    client: MlflowClient
    model: RegisteredModel
    stages: Sequence[str]
    locked: bool
    progress: Progress | None

    @property
    def holders(self) -> dict[str, str]:
        return registry.stage_holders(self.model)

    def commit(self, entry: AuditEntry) -> AuditEntry:
        """Write ``entry`` (pending), move its stage's alias, and return the entry as it ended."""
        return audit.move_stage(
            self.client, entry, self.stages, locked=self.locked, aliases=self.holders, progress=self.progress
        )


@contextmanager
def _stage_move(
    project: Project, client: MlflowClient, name: str, *, dry_run: bool = False, progress: Progress | None = None
) -> Iterator[_StageMove]:
    """Hold the write lock (none on a dry run), settle interrupted moves of ``name``, read it once."""
    stages = project.config.stages
    lock = audit.write_lock(project) if not dry_run else nullcontext(False)
    with lock as locked:
        model = registry.get_model(client, name)
        if not dry_run and audit.settle_pending(client, model, stages, locked=locked, progress=progress):
            model = registry.get_model(client, name)
        yield _StageMove(client, model, stages, locked, progress)


def _require_manage(project: Project, name: str, stage: str, leaving: str | None) -> None:
    """On a server with authentication, only a user who may manage ``name`` moves the last stage
    (production) or takes a version out of it (``leaving``).

    MLflow itself lets EDIT set any alias; this is mlkit's rule on top, checked against the permission
    the server resolves for the signed-in user (MLflow enforces its own part, EDIT to set an alias and
    MANAGE to delete one, on every request).
    """
    last = project.config.stages[-1]
    if last not in (stage, leaving):
        return
    access = credentials.model_access(project.tracking_uri, name)
    if access is None or access.can_manage:
        return
    raise PermissionDeniedError(
        f"{access.username} may not move {name}@{last}: that needs MANAGE on registered model {name!r}, "
        f"{access.username} has {access.permission}",
        hint=f"an admin grants it: `mlkit server user grant {access.username} --model {name} --permission MANAGE`",
    )


@contextmanager
def _server_refusals(project: Project, name: str, stage: str, action: str) -> Iterator[None]:
    """Turn the tracking server's 401/403 answers into one line naming the user and their permission."""
    try:
        yield
    except Exception as exc:
        status = mlflow.denied_status(exc)
        if status is None:
            raise
        uri = project.tracking_uri
        user = credentials.signed_in_user(uri)
        if status == 401 or user is None:
            raise PermissionDeniedError(
                f"the tracking server did not accept the credentials to {action} {name}@{stage}",
                hint=f"set {credentials.ENV_USERNAME} and {credentials.ENV_PASSWORD} "
                f"(or {credentials.ENV_TOKEN}) to an account on the server",
            ) from None
        access = credentials.model_access(uri, name)
        has = access.permission if access is not None else "unknown"
        raise PermissionDeniedError(
            f"{user} may not {action} {name}@{stage}: the tracking server refused it ({user} has {has} on "
            f"registered model {name!r}; moving a stage needs EDIT, dropping one MANAGE)",
            hint=f"an admin grants it: `mlkit server user grant {user} --model {name} --permission EDIT`",
        ) from None


def _choose_version(name: str, wanted: str | None, from_stage: str | None, holders: Mapping[str, str]) -> str:
    if from_stage is None:
        assert wanted is not None
        return wanted
    holding = holders.get(from_stage)
    if holding is None:
        raise UsageError(
            f"no version of {name!r} holds {from_stage}",
            hint=f"run `mlkit promote {name} VERSION --to {from_stage}` first",
        )
    if wanted is not None and wanted != holding:
        raise UsageError(
            f"version {wanted} of {name!r} does not hold {from_stage} (version {holding} does)",
            hint=f"drop VERSION to promote whatever holds {from_stage}",
        )
    return holding


def _candidate(client: MlflowClient, mv: ModelVersion, stage: str | None, policy: StageGates | None) -> Candidate:
    """What the gates read about ``mv``; its run is read only when a gate needs it (one call fewer)."""
    version_tags = dict(mv.tags or {})
    needs_metrics = policy is not None and bool(policy.thresholds or policy.beat_current)
    # versions registered by hand carry their lineage only on the run
    needs_run_tags = policy is not None and (
        (policy.clean_commit and tags.GIT_COMMIT not in version_tags)
        or (policy.reproduced and tags.REPRODUCED not in version_tags)
    )
    if not (needs_metrics or needs_run_tags):
        return Candidate(
            version=str(mv.version), tags=version_tags, stage=stage, run_id=mv.run_id or "", client=client
        )  # run_id, client: the `reproduced` gate
    metrics, run_tags = registry.run_facts(client, mv)
    return Candidate(
        version=str(mv.version),
        metrics=metrics,
        tags={**run_tags, **version_tags},
        stage=stage,
        run_id=mv.run_id or "",
        client=client,
    )  # run_id, client: the `reproduced` gate
