"""Pure logic of promotion: each gate's verdict and message, rollback targets, references, the actor."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mlkit.audit import AuditEntry, actor
from mlkit.config import StageGates
from mlkit.errors import UsageError
from mlkit.promotion import Candidate, GateResult, evaluate_gates, rollback_target
from mlkit.registry import ModelRef, normalize_version

STAGES = ["staging", "production"]
CLEAN = {"mlkit.git.commit": "0123456789abcdef", "mlkit.git.dirty": "false"}


def gates(**kwargs) -> StageGates:
    return StageGates.model_validate(kwargs)


def one(
    policy: StageGates, candidate: Candidate, holder: Candidate | None = None, target: str = "production"
) -> GateResult:
    results = evaluate_gates(policy, stages=STAGES, target=target, candidate=candidate, holder=holder)
    assert len(results) == 1
    return results[0]


def test_no_policy_means_no_gates() -> None:
    assert evaluate_gates(None, stages=STAGES, target="staging", candidate=Candidate("1"), holder=None) == []


@pytest.mark.parametrize(
    ("rule", "value", "passed", "detail"),
    [
        ("f1 >= 0.85", 0.85, True, "f1 = 0.8500 (needs >= 0.85)"),
        ("f1 >= 0.85", 0.8499, False, "f1 = 0.8499 (needs >= 0.85)"),
        ("f1 > 0.85", 0.85, False, "f1 = 0.8500 (needs > 0.85)"),
        ("log_loss <= 0.2", 0.1, True, "log_loss = 0.1000 (needs <= 0.2)"),
        ("log_loss < 0.2", 0.2, False, "log_loss = 0.2000 (needs < 0.2)"),
        ("accuracy == 1", 1.0, True, "accuracy = 1.0000 (needs == 1)"),
    ],
)
def test_threshold(rule: str, value: float, passed: bool, detail: str) -> None:
    metric = rule.split()[0]
    result = one(gates(thresholds=[rule]), Candidate("3", metrics={metric: value}))
    assert result == GateResult(rule, passed, detail)


def test_threshold_on_a_metric_never_logged_fails() -> None:
    result = one(gates(thresholds=["f1 >= 0.5"]), Candidate("3", metrics={"accuracy": 0.9}))
    assert result == GateResult("f1 >= 0.5", False, "f1 not logged for version 3")


def test_beat_current_higher_is_better() -> None:
    policy = gates(beat_current={"metric": "f1", "margin": 0.01})
    holder = Candidate("2", metrics={"f1": 0.90})
    won = one(policy, Candidate("3", metrics={"f1": 0.92}), holder)
    assert won.passed
    assert won.detail == (
        "f1 = 0.9200 vs 0.9000 for current version 2 (higher is better, needs a gain >= 0.01, got +0.0200)"
    )
    lost = one(policy, Candidate("3", metrics={"f1": 0.905}), holder)
    assert not lost.passed
    assert lost.detail.endswith("needs a gain >= 0.01, got +0.0050)")


def test_beat_current_lower_is_better_for_losses() -> None:
    policy = gates(beat_current={"metric": "log_loss", "margin": 0.0})
    holder = Candidate("2", metrics={"log_loss": 0.30})
    assert one(policy, Candidate("3", metrics={"log_loss": 0.25}), holder).passed
    worse = one(policy, Candidate("3", metrics={"log_loss": 0.35}), holder)
    assert not worse.passed
    assert "lower is better" in worse.detail
    assert worse.detail.endswith("got -0.0500)")


def test_beat_current_ties_pass_at_zero_margin() -> None:
    policy = gates(beat_current={"metric": "f1"})
    assert one(policy, Candidate("3", metrics={"f1": 0.9}), Candidate("2", metrics={"f1": 0.9})).passed


def test_beat_current_with_no_holder_passes() -> None:
    result = one(gates(beat_current={"metric": "f1"}), Candidate("3", metrics={"f1": 0.7}))
    assert result == GateResult("beat current on f1", True, "no version holds production yet; f1 = 0.7000")


def test_beat_current_against_a_holder_without_the_metric_fails() -> None:
    result = one(gates(beat_current={"metric": "f1"}), Candidate("3", metrics={"f1": 0.9}), Candidate("2"))
    assert result == GateResult("beat current on f1", False, "current version 2 has no f1 to compare")


@pytest.mark.parametrize(
    ("tags", "passed", "detail"),
    [
        (CLEAN, True, "trained from clean commit 0123456789"),
        ({**CLEAN, "mlkit.git.dirty": "true"}, False, "trained from uncommitted changes on 0123456789"),
        ({}, False, "no git commit recorded for this version"),
    ],
)
def test_clean_commit(tags: dict, passed: bool, detail: str) -> None:
    result = one(gates(clean_commit=True), Candidate("3", tags=tags))
    assert result == GateResult("clean commit", passed, detail)


@pytest.mark.parametrize(
    ("stage", "target", "passed", "detail"),
    [
        ("staging", "production", True, "version 3 holds staging"),
        (None, "production", False, "version 3 holds no stage, needs staging"),
        ("production", "production", False, "version 3 holds production, needs staging"),
        (None, "staging", True, "staging is the first stage"),
    ],
)
def test_previous_stage(stage: str | None, target: str, passed: bool, detail: str) -> None:
    result = one(gates(previous_stage=True), Candidate("3", stage=stage), target=target)
    assert result == GateResult("previous stage", passed, detail)


class _Runs:
    """A stand-in for MLflow's client holding the reproducing runs the gate reads."""

    def __init__(self, **runs: tuple[str, dict[str, str]]) -> None:
        self.runs = runs

    def get_run(self, run_id: str) -> SimpleNamespace:
        status, run_tags = self.runs[run_id]  # KeyError: not in the store
        return SimpleNamespace(info=SimpleNamespace(status=status), data=SimpleNamespace(tags=run_tags))


_FLAG = {
    "mlkit.reproduced": "true",
    "mlkit.reproduced_by_run": "r9",
    "mlkit.reproduced_at": "2026-01-02",
    "mlkit.predictions.sha256": "p1",
}
_GENUINE = ("FINISHED", {"mlkit.reproduces": "r1", "mlkit.predictions.sha256": "p1"})


@pytest.mark.parametrize(
    ("tags", "runs", "passed", "detail"),
    [
        ({}, {}, False, "not reproduced"),
        ({"mlkit.reproduced": "false"}, {}, False, "reproduction did not match"),
        (_FLAG, {"r9": _GENUINE}, True, "reproduced by run r9 at 2026-01-02"),
        ({**_FLAG, "mlkit.reproduced_by_run": ""}, {}, False, "mlkit.reproduced is set but names no reproducing run"),
        (_FLAG, {}, False, "mlkit.reproduced is set but its reproducing run r9 is not in the tracking store"),
        (
            _FLAG,
            {"r9": ("FAILED", _GENUINE[1])},
            False,
            "mlkit.reproduced is set but its reproducing run r9 is FAILED, not FINISHED",
        ),
        (
            _FLAG,
            {"r9": ("FINISHED", {**_GENUINE[1], "mlkit.reproduces": "r2"})},
            False,
            "mlkit.reproduced is set but run r9 does not reproduce run r1",
        ),
        (
            _FLAG,
            {"r9": ("FINISHED", {**_GENUINE[1], "mlkit.predictions.sha256": "p2"})},
            False,
            "mlkit.reproduced is set but run r9 predicted differently (its predictions sha256 is not the version's)",
        ),
    ],
)
def test_reproduced(tags: dict, runs: dict, passed: bool, detail: str) -> None:
    candidate = Candidate("3", tags=tags, run_id="r1", client=_Runs(**runs))
    assert one(gates(reproduced=True), candidate) == GateResult("reproduced", passed, detail)


def test_reproduced_flag_without_a_store_fails() -> None:
    assert one(gates(reproduced=True), Candidate("3", tags=_FLAG, run_id="r1")) == GateResult(
        "reproduced",
        False,
        "mlkit.reproduced is set but its reproducing run r9 could not be checked (no tracking store)",
    )


def test_every_gate_is_evaluated_even_after_a_failure() -> None:
    policy = gates(
        thresholds=["f1 >= 0.9", "accuracy >= 0.5"],
        beat_current={"metric": "f1"},
        clean_commit=True,
        previous_stage=True,
        reproduced=True,
    )
    results = evaluate_gates(
        policy,
        stages=STAGES,
        target="production",
        candidate=Candidate("3", metrics={"f1": 0.5, "accuracy": 0.9}, tags=CLEAN),
        holder=None,
    )
    assert [(r.gate, r.passed) for r in results] == [
        ("f1 >= 0.9", False),
        ("accuracy >= 0.5", True),
        ("beat current on f1", True),
        ("clean commit", True),
        ("previous stage", False),
        ("reproduced", False),
    ]


def entry(action: str, to: str, frm: str | None, stage: str = "production", state: str = "done") -> AuditEntry:
    return AuditEntry.new(action, "churn", stage, to, actor="someone", reason="", from_version=frm, state=state)


def test_rollback_goes_to_the_version_before() -> None:
    trail = [entry("promote", "1", None), entry("promote", "2", "1"), entry("promote", "3", "2")]
    assert rollback_target(trail, "production", "3") == "2"


def test_rollbacks_walk_further_back_rather_than_toggle() -> None:
    trail = [
        entry("promote", "1", None),
        entry("promote", "2", "1"),
        entry("promote", "3", "2"),
        entry("rollback", "2", "3"),
    ]
    assert rollback_target(trail, "production", "2") == "1"
    trail.append(entry("rollback", "1", "2"))
    assert rollback_target(trail, "production", "1") is None


def test_rollback_ignores_refusals_aborted_moves_and_other_stages() -> None:
    trail = [
        entry("promote", "1", None),
        entry("promote", "5", "1", stage="staging"),
        entry("refuse", "4", "1", state="refused"),
        entry("promote", "4", "1", state="aborted"),
        entry("promote", "2", "1"),
    ]
    assert rollback_target(trail, "production", "2") == "1"


def test_rollback_skips_versions_whose_moves_were_superseded() -> None:
    # versions 2 and 3 raced on a server: 2 lost (superseded), 3 recorded either 1 or 2 as displaced
    for displaced in ("1", "2"):
        trail = [
            entry("promote", "1", None),
            entry("promote", "2", "1", state="superseded"),
            entry("promote", "3", displaced),
        ]
        assert rollback_target(trail, "production", "3") == "1", displaced


def test_rollback_knows_a_holder_set_outside_mlkit() -> None:
    assert rollback_target([entry("promote", "2", "7")], "production", "2") == "7"


def test_nothing_to_roll_back_to() -> None:
    assert rollback_target([entry("promote", "1", None)], "production", "1") is None
    assert rollback_target([], "production", "1") is None


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("churn", ModelRef("churn")),
        ("churn@production", ModelRef("churn", stage="production")),
        ("churn/3", ModelRef("churn", version="3")),
        ("churn/v12", ModelRef("churn", version="12")),
        ("team/churn@staging", ModelRef("team/churn", stage="staging")),
        ("team/churn", ModelRef("team/churn")),
        ("team/churn/2", ModelRef("team/churn", version="2")),
    ],
)
def test_model_refs(text: str, ref: ModelRef) -> None:
    assert ModelRef.parse(text) == ref


@pytest.mark.parametrize("text", ["churn@", "@production"])
def test_bad_model_refs(text: str) -> None:
    with pytest.raises(UsageError, match="must look like NAME, NAME@STAGE or NAME/VERSION"):
        ModelRef.parse(text)


def test_versions_are_numbers() -> None:
    assert normalize_version("v7") == "7"
    assert normalize_version(7) == "7"
    with pytest.raises(UsageError) as info:
        normalize_version("latest")
    assert info.value.message == "version 'latest' is not a version number"


def test_actor_is_github_actor_inside_actions(tmp_path) -> None:
    env = {"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "octocat"}
    assert actor(tmp_path, env) == "octocat (github actions)"


def test_actor_is_the_git_user_elsewhere(tmp_path) -> None:
    # the isolation fixture writes this user into the temporary HOME's .gitconfig
    assert actor(tmp_path, {"GITHUB_ACTOR": "octocat"}) == "Test User <test@example.com>"
