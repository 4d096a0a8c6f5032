"""Promotion, rollback and the audit trail against a real project and a real MLflow SQLite registry.

One project is shared by the module (creating it costs seconds); every test registers its own model, so
tests never see each other's aliases, tags or audit entries. Runs and versions are made with MLflow's own
client, the way `mlkit train` records them (metrics on the run, lineage tags on run and version).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlkit import audit, registry, tags
from mlkit.engines import mlflow
from mlkit.project import Project, load_project
from mlkit.promotion import promote

GATES = {
    "staging": {"thresholds": ["f1 >= 0.85"]},
    "production": {
        "thresholds": ["f1 >= 0.9"],
        "beat_current": {"metric": "f1", "margin": 0.01},
        "clean_commit": True,
        "previous_stage": True,
        "reproduced": True,
    },
}
CLEAN = {
    tags.GIT_COMMIT: "0123456789abcdef0123",
    tags.GIT_DIRTY: "false",
    "mlkit.data.md5.data/train.csv": "d41d8cd9",
    "mlkit.params": '{"seed": 42, "estimator": {"max_depth": 4}}',
}
REPRODUCED = {"mlkit.reproduced": "true", "mlkit.reproduced_by_run": "r0", "mlkit.reproduced_at": "2026-01-01"}


@pytest.fixture(scope="module")
def project_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlkit.scaffold import init_project

    base = tmp_path_factory.mktemp("promotion")
    root = Path(init_project("shop", directory=base / "shop", data_remote=base / "remote").root)
    settings = yaml.safe_load((root / "mlkit.yaml").read_text())
    settings["promotion"] = GATES
    (root / "mlkit.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return root


@pytest.fixture
def project(project_root: Path) -> Project:
    return load_project(project_root)


@pytest.fixture
def model(project: Project) -> Callable[..., str]:
    """Register a fresh model with one version per spec; returns its name."""

    def make(*versions: dict[str, Any]) -> str:
        name = f"m-{uuid.uuid4().hex[:8]}"
        client = mlflow.client(project)
        client.create_registered_model(name)
        experiment = mlflow.ensure_experiment(project)
        for spec in versions:
            add_version(client, experiment, name, **spec)
        return name

    return make


def add_version(
    client: Any, experiment: str, name: str, f1: float | None = 0.95, tag_values: dict[str, str] | None = None
) -> str:
    run = client.create_run(experiment)
    if f1 is not None:
        client.log_metric(run.info.run_id, "f1", f1)
    tag_values = dict(CLEAN if tag_values is None else tag_values)
    if tag_values.get(tags.REPRODUCED) == "true":  # the `reproduced` gate checks the reproducing run
        tag_values.update(reproducing_run(client, experiment, run.info.run_id))
    for key, value in tag_values.items():
        client.set_tag(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id)
    version = client.create_model_version(
        name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=tag_values
    )
    return str(version.version)


def reproducing_run(client: Any, experiment: str, run_id: str) -> dict[str, str]:
    """A finished run that reproduces ``run_id`` with the same predictions: the tags naming it."""
    fingerprint = "5" * 64
    by = client.create_run(experiment, tags={tags.REPRODUCES: run_id, tags.PREDICTIONS_SHA256: fingerprint})
    client.set_terminated(by.info.run_id)
    return {tags.REPRODUCED_BY_RUN: by.info.run_id, tags.PREDICTIONS_SHA256: fingerprint}


def ungated(project: Project) -> Project:
    return replace(project, config=project.config.model_copy(update={"promotion": {}}))


def mlflow_client(project: Project) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=project.tracking_uri, registry_uri=project.tracking_uri)


def snapshot(project: Project, name: str) -> dict[str, Any]:
    """Everything a promotion may change, read back through MLflow's own client."""
    client = mlflow_client(project)
    model = client.get_registered_model(name)
    versions = client.search_model_versions(f"name='{name}'")
    return {
        "model_tags": dict(model.tags),
        "aliases": {k: str(v) for k, v in model.aliases.items()},
        "version_tags": {str(v.version): dict(v.tags) for v in versions},
    }


def stored_trail(project: Project, name: str) -> list[dict[str, Any]]:
    """The audit trail exactly as any MLflow user sees it: registered-model tags holding JSON."""
    tag_values = mlflow_client(project).get_registered_model(name).tags
    return [json.loads(tag_values[key]) for key in sorted(tag_values) if key.startswith("mlkit.audit.")]


def ready_challenger(project: Project, model: Callable[..., str], holder_f1: float = 0.90, **defect: Any) -> str:
    """Version 1 holds production, version 2 holds staging and passes every production gate unless
    ``defect`` changes its f1 or tags."""
    challenger = {"f1": 0.95, "tag_values": {**CLEAN, **REPRODUCED}, **defect}
    name = model({"f1": holder_f1}, challenger)
    client = mlflow_client(project)
    client.set_registered_model_alias(name, "production", "1")
    client.set_registered_model_alias(name, "staging", "2")
    return name


# --- promote --------------------------------------------------------------------------------------------


def test_promote_sets_the_alias_tag_and_audit_entry_mlflow_reads(
    project: Project, model: Callable, cli: Callable
) -> None:
    name = model({"f1": 0.91})
    result = cli("promote", name, "1", "--to", "staging", "--reason", "first cut", cwd=project.root)
    assert result.exit_code == 0, result.stderr
    assert "f1 >= 0.85 │ passed │ f1 = 0.9100 (needs >= 0.85)" in result.stdout
    assert f"promoted {name} version 1 to staging" in result.stderr

    client = mlflow_client(project)
    version = client.get_model_version_by_alias(name, "staging")
    assert version.version == 1
    assert version.tags["mlkit.stage"] == "staging"
    [entry] = stored_trail(project, name)
    keys = ("action", "stage", "version", "from_version", "to_version", "actor", "reason", "state")
    assert {k: entry[k] for k in keys} == {
        "action": "promote",
        "stage": "staging",
        "version": "1",
        "from_version": None,
        "to_version": "1",
        "actor": "Test User <test@example.com>",
        "reason": "first cut",
        "state": "done",
    }
    assert entry["gates"] == [{"gate": "f1 >= 0.85", "passed": True, "detail": "f1 = 0.9100 (needs >= 0.85)"}]
    assert entry["time"].endswith("Z")


def test_models_uri_resolves_to_the_promoted_version(project: Project, model: Callable) -> None:
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    name = model({"f1": 0.91}, {"f1": 0.92})
    promote(project, name, 2, to="staging")
    assert get_model_name_and_version(mlflow_client(project), f"models:/{name}@staging") == (name, 2)


def test_staging_to_production_displaces_and_archives(project: Project, model: Callable, cli: Callable) -> None:
    name = model(
        {"f1": 0.91, "tag_values": {**CLEAN, **REPRODUCED}}, {"f1": 0.95, "tag_values": {**CLEAN, **REPRODUCED}}
    )
    for args in (
        ("1", "--to", "staging"),
        ("--from", "staging", "--to", "production"),
        ("2", "--to", "staging"),
        ("--from", "staging", "--to", "production"),
    ):
        result = cli("promote", name, *args, cwd=project.root)
        assert result.exit_code == 0, result.stdout + result.stderr
    assert f"promoted {name} version 2 to production (displacing version 1)" in result.stderr

    state = snapshot(project, name)
    assert state["aliases"] == {"production": "2"}  # a version holds one stage: staging went with it
    assert state["version_tags"]["1"]["mlkit.stage"] == "archived"
    assert state["version_tags"]["2"]["mlkit.stage"] == "production"
    trail = stored_trail(project, name)
    assert [(e["stage"], e["from_version"], e["to_version"], e["from_stage"]) for e in trail] == [
        ("staging", None, "1", None),
        ("production", None, "1", "staging"),
        ("staging", None, "2", None),
        ("production", "1", "2", "staging"),
    ]


def test_a_displaced_staging_version_loses_its_stage_tag(project: Project, model: Callable) -> None:
    name = model({"f1": 0.91}, {"f1": 0.92})
    promote(project, name, 1, to="staging")
    result = promote(project, name, 2, to="staging")
    assert (result.status, result.from_version) == ("promoted", "1")
    state = snapshot(project, name)
    assert state["aliases"] == {"staging": "2"}
    assert "mlkit.stage" not in state["version_tags"]["1"]


def test_promoting_the_holder_again_changes_nothing(project: Project, model: Callable, cli: Callable) -> None:
    name = model({"f1": 0.91})
    promote(project, name, 1, to="staging")
    before = snapshot(project, name)
    result = cli("promote", name, "1", "--to", "staging", cwd=project.root)
    assert result.exit_code == 0
    assert f"{name} version 1 already holds staging; nothing changed" in result.stderr
    assert snapshot(project, name) == before


@pytest.mark.parametrize(
    ("defect", "gate", "detail"),
    [
        ({"f1": 0.895, "holder_f1": 0.85}, "f1 >= 0.9", "f1 = 0.8950 (needs >= 0.9)"),
        (
            {"f1": 0.905},
            "beat current on f1",
            "f1 = 0.9050 vs 0.9000 for current version 1 (higher is better, needs a gain >= 0.01, got +0.0050)",
        ),
        (
            {"tag_values": {**CLEAN, tags.GIT_DIRTY: "true", **REPRODUCED}},
            "clean commit",
            "trained from uncommitted changes on 0123456789",
        ),
        ({"tag_values": {**CLEAN}}, "reproduced", "not reproduced"),
        ({"tag_values": {**CLEAN, "mlkit.reproduced": "false"}}, "reproduced", "reproduction did not match"),
    ],
)
def test_each_gate_refuses_with_exit_3_and_changes_nothing(
    project: Project, model: Callable, cli: Callable, defect: dict, gate: str, detail: str
) -> None:
    name = ready_challenger(project, model, **defect)
    before = snapshot(project, name)
    result = cli("promote", name, "--from", "staging", "--to", "production", "--reason", "try", cwd=project.root)
    assert result.exit_code == 3
    rows = [line for line in result.stdout.splitlines() if "│" in line]
    assert len(rows) == 5  # every gate is shown, passed or failed
    failed = [line for line in rows if "FAILED" in line]
    assert len(failed) == 1
    assert failed[0].split("│")[0].strip() == gate
    assert failed[0].split("│")[2].strip() == detail
    assert result.stderr.splitlines()[-2] == (
        f"error: promotion of {name} version 2 to production refused: 1 of 5 gates failed ({gate})"
    )
    after = snapshot(project, name)
    refusal_keys = set(after["model_tags"]) - set(before["model_tags"])
    assert {**after, "model_tags": before["model_tags"]} == before  # aliases and version tags unchanged
    [key] = refusal_keys
    entry = json.loads(after["model_tags"][key])
    assert (entry["action"], entry["state"], entry["version"], entry["from_version"], entry["reason"]) == (
        "refuse",
        "refused",
        "2",
        "1",
        "try",
    )
    assert [g["gate"] for g in entry["gates"] if not g["passed"]] == [gate]


def test_skipping_staging_is_refused(project: Project, model: Callable, cli: Callable) -> None:
    name = model({"f1": 0.95, "tag_values": {**CLEAN, **REPRODUCED}})
    before = snapshot(project, name)
    result = cli("promote", name, "1", "--to", "production", cwd=project.root)
    assert result.exit_code == 3
    assert "previous stage     │ FAILED │ version 1 holds no stage, needs staging" in result.stdout
    assert (
        f"error: promotion of {name} version 1 to production refused: 1 of 5 gates failed (previous stage)"
    ) in result.stderr
    assert snapshot(project, name)["aliases"] == before["aliases"] == {}


def test_refusal_as_json(project: Project, model: Callable, cli: Callable) -> None:
    name = model({"f1": 0.5})
    result = cli("promote", name, "1", "--to", "staging", "--json", cwd=project.root)
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert (data["status"], data["version"], data["stage"]) == ("refused", "1", "staging")
    assert data["gates"] == [{"gate": "f1 >= 0.85", "passed": False, "detail": "f1 = 0.5000 (needs >= 0.85)"}]
    assert data["audit_id"].startswith("mlkit.audit.")


@pytest.mark.parametrize(
    ("f1", "code", "lines"),
    [
        (0.95, 0, ["dry run: {name} version 1 would be promoted to staging; nothing changed"]),
        (
            0.50,
            3,
            [
                "dry run: {name} version 1 would be refused for staging; nothing changed",
                "error: promotion of {name} version 1 to staging would be refused: 1 of 1 gates failed (f1 >= 0.85)",
                "hint: the gates are `promotion.staging` in mlkit.yaml; `mlkit models show {name}/1` shows the version",
            ],
        ),
    ],
)
def test_dry_run_changes_nothing(
    project: Project, model: Callable, cli: Callable, f1: float, code: int, lines: list[str]
) -> None:
    name = model({"f1": f1})
    before = snapshot(project, name)
    result = cli("promote", name, "1", "--to", "staging", "--dry-run", cwd=project.root)
    assert result.exit_code == code
    assert result.stderr.splitlines() == [line.format(name=name) for line in lines]
    assert snapshot(project, name) == before  # not even an audit entry


# --- rollback -------------------------------------------------------------------------------------------


def test_rollback_restores_the_previous_holder(project: Project, model: Callable, cli: Callable) -> None:
    name = model({"f1": 0.91}, {"f1": 0.92}, {"f1": 0.93})
    free = ungated(project)
    for version in (1, 2, 3):
        promote(free, name, version, to="production")
    result = cli("rollback", name, "--stage", "production", "--reason", "latency", cwd=project.root)
    assert result.exit_code == 0, result.stderr
    assert f"rolled back {name}@production: version 3 -> 2" in result.stderr
    client = mlflow_client(project)
    assert client.get_model_version_by_alias(name, "production").version == 2
    state = snapshot(project, name)
    assert (state["version_tags"]["2"]["mlkit.stage"], state["version_tags"]["3"]["mlkit.stage"]) == (
        "production",
        "archived",
    )
    last = stored_trail(project, name)[-1]
    assert (last["action"], last["from_version"], last["to_version"], last["reason"], last["state"]) == (
        "rollback",
        "3",
        "2",
        "latency",
        "done",
    )

    # a second rollback walks further back instead of undoing the first
    assert cli("rollback", name, cwd=project.root).exit_code == 0
    assert client.get_model_version_by_alias(name, "production").version == 1
    result = cli("rollback", name, cwd=project.root)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-2:] == [
        f"error: no earlier version of {name!r} held production before version 1",
        f"hint: `mlkit models history {name}` shows what happened",
    ]
    assert client.get_model_version_by_alias(name, "production").version == 1


def test_rollback_with_no_holder(project: Project, model: Callable, cli: Callable) -> None:
    name = model({"f1": 0.91})
    result = cli("rollback", name, "--stage", "staging", cwd=project.root)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-2:] == [
        f"error: no version of {name!r} holds staging; nothing to roll back",
        f"hint: `mlkit models history {name}` shows what happened",
    ]


# --- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("promote", "nope", "1", "--to", "staging"), "error: no registered model 'nope' in the registry"),
        (("rollback", "nope"), "error: no registered model 'nope' in the registry"),
        (("models", "show", "nope"), "error: no registered model 'nope' in the registry"),
        (("models", "history", "nope"), "error: no registered model 'nope' in the registry"),
        (("promote", "{name}", "9", "--to", "staging"), "error: model '{name}' has no version 9"),
        (("models", "show", "{name}/9"), "error: model '{name}' has no version 9"),
        (
            ("promote", "{name}", "1", "--to", "prod"),
            "error: unknown stage 'prod'; stages in mlkit.yaml: staging, production",
        ),
        (
            ("promote", "{name}", "--from", "qa", "--to", "production"),
            "error: unknown stage 'qa'; stages in mlkit.yaml: staging, production",
        ),
        (
            ("rollback", "{name}", "--stage", "prod"),
            "error: unknown stage 'prod'; stages in mlkit.yaml: staging, production",
        ),
        (("models", "show", "{name}@prod"), "error: unknown stage 'prod'; stages in mlkit.yaml: staging, production"),
        (("promote", "{name}", "one", "--to", "staging"), "error: version 'one' is not a version number"),
        (("promote", "{name}", "--to", "staging"), "error: name a VERSION or --from STAGE to promote"),
        (
            ("promote", "{name}", "--from", "staging", "--to", "production"),
            "error: no version of '{name}' holds staging",
        ),
        (("models", "show", "{name}@production"), "error: no version of '{name}' holds production"),
    ],
)
def test_bad_input_exits_2(project: Project, model: Callable, cli: Callable, args: tuple, message: str) -> None:
    name = model({"f1": 0.91})
    before = snapshot(project, name)
    result = cli(*(a.format(name=name) for a in args), cwd=project.root)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == message.format(name=name)
    assert "Traceback" not in result.stderr
    assert snapshot(project, name) == before


# --- reading --------------------------------------------------------------------------------------------


def test_models_list_show_and_history(project: Project, model: Callable, cli: Callable) -> None:
    name = model({"f1": 0.91}, {"f1": 0.93})
    promote(project, name, 2, to="staging", reason="best so far")
    listed = {m["name"]: m for m in json.loads(cli("models", "list", "--json", cwd=project.root).stdout)}
    assert listed[name]["latest_version"] == "2"
    assert listed[name]["stages"] == {"staging": "2"}

    shown = json.loads(cli("models", "show", f"{name}@staging", "--json", cwd=project.root).stdout)
    assert (shown["version"], shown["stage"], shown["git_commit"], shown["git_dirty"]) == (
        "2",
        "staging",
        CLEAN[tags.GIT_COMMIT],
        False,
    )
    assert shown["metrics"] == {"f1": 0.93}
    assert shown["data_md5s"] == {"data/train.csv": "d41d8cd9"}
    assert shown["params"] == {"seed": 42, "estimator": {"max_depth": 4}}
    assert shown["promoted_by"] == "Test User <test@example.com>"
    assert shown["run_id"] == mlflow_client(project).get_model_version(name, "2").run_id
    assert json.loads(cli("models", "show", f"{name}/1", "--json", cwd=project.root).stdout)["stage"] is None
    assert json.loads(cli("models", "show", name, "--json", cwd=project.root).stdout)["version"] == "2"

    table = cli("models", "show", f"{name}@staging", cwd=project.root).stdout
    rows = dict(tuple(cell.strip() for cell in line.split("│")) for line in table.splitlines() if "│" in line)
    assert rows["data_md5.data/train.csv"] == "d41d8cd9"
    assert rows["params.estimator.max_depth"] == "4"
    assert rows["metrics.f1"] == "0.93"

    history = json.loads(cli("models", "history", name, "--json", cwd=project.root).stdout)
    assert [(e["action"], e["to_version"], e["reason"]) for e in history] == [("promote", "2", "best so far")]
    table = cli("models", "history", name, cwd=project.root).stdout
    [row] = [[cell.strip() for cell in line.split("│")] for line in table.splitlines() if "│" in line]
    assert row[1:] == ["promote", "staging", "-", "2", "done", "Test User", "1/1", "best so far"]


# --- crash safety ---------------------------------------------------------------------------------------


def test_a_move_interrupted_after_the_alias_is_finished_by_the_next_write(project: Project, model: Callable) -> None:
    name = model({"f1": 0.91}, {"f1": 0.92})
    client = mlflow.client(project)
    # what a process killed right after the commit point leaves behind: a pending entry and the alias
    entry = audit.AuditEntry.new("promote", name, "staging", "1", actor="ghost", reason="", from_version=None)
    audit.write_entry(client, entry)
    client.set_registered_model_alias(name, "staging", "1")

    promote(project, name, 2, to="staging")
    trail = stored_trail(project, name)
    assert [(e["actor"], e["state"], e.get("recovered")) for e in trail] == [
        ("ghost", "done", True),
        ("Test User <test@example.com>", "done", None),
    ]
    assert trail[1]["from_version"] == "1"
    state = snapshot(project, name)
    assert state["aliases"] == {"staging": "2"}
    assert "mlkit.stage" not in state["version_tags"]["1"]  # recovery tagged it, the next move untagged it


def test_a_move_interrupted_before_the_alias_is_marked_aborted(project: Project, model: Callable) -> None:
    name = model({"f1": 0.91}, {"f1": 0.92})
    client = mlflow.client(project)
    entry = audit.AuditEntry.new("promote", name, "staging", "1", actor="ghost", reason="", from_version=None)
    audit.write_entry(client, entry)

    promote(project, name, 2, to="staging")
    trail = stored_trail(project, name)
    assert [(e["to_version"], e["state"]) for e in trail] == [("1", "aborted"), ("2", "done")]
    assert snapshot(project, name)["aliases"] == {"staging": "2"}


def test_a_killed_promotion_leaves_a_settleable_trail(project: Project, model: Callable) -> None:
    """SIGKILL a real process in the middle of its writes; whatever it managed, the trail is consistent."""
    name = model({"f1": 0.91})
    script = (
        "import os, sys\n"
        "from mlkit import audit\n"
        "from mlkit.project import load_project\n"
        "from mlkit.promotion import promote\n"
        "original = audit._finish_move\n"
        "def die(*args, **kwargs):\n"
        "    os.kill(os.getpid(), 9)\n"
        "audit._finish_move = die\n"
        f"promote(load_project(), {name!r}, 1, to='staging')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=project.root, capture_output=True, text=True, env={**os.environ}
    )
    assert done.returncode == -9
    assert [e["state"] for e in stored_trail(project, name)] == ["pending"]
    assert mlflow_client(project).get_model_version_by_alias(name, "staging").version == 1

    audit.settle_pending(
        mlflow.client(project), registry.get_model(mlflow.client(project), name), project.config.stages, locked=True
    )
    [entry] = stored_trail(project, name)
    assert (entry["state"], entry["recovered"]) == ("done", True)
    assert snapshot(project, name)["version_tags"]["1"]["mlkit.stage"] == "staging"


# --- GitHub Actions -------------------------------------------------------------------------------------


def test_github_actions_outputs_and_summary(
    project: Project, model: Callable, cli: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs, summary = tmp_path / "out", tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    name = model({"f1": 0.91})
    result = cli("promote", name, "1", "--to", "staging", cwd=project.root)
    assert result.exit_code == 0
    assert outputs.read_text().splitlines() == [f"model={name}", "version=1", "stage=staging", "status=promoted"]
    assert summary.read_text() == (
        f"### Promotion of {name} version 1 to staging: promoted\n\n"
        "| gate | result | detail |\n| --- | --- | --- |\n"
        "| f1 >= 0.85 | ✅ passed | f1 = 0.9100 (needs >= 0.85) |\n\n"
    )
    assert stored_trail(project, name)[0]["actor"] == "octocat (github actions)"


def test_models_commands_report_to_github_actions(
    project: Project, model: Callable, cli: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs, summary = tmp_path / "out", tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    name = model({"f1": 0.91})
    promote(project, name, 1, to="staging", reason="ci")

    assert cli("models", "show", f"{name}@staging", "--json", cwd=project.root).exit_code == 0
    run_id = mlflow_client(project).get_model_version(name, "1").run_id
    assert outputs.read_text().splitlines() == [
        f"model={name}",
        "version=1",
        "stage=staging",
        f"run_id={run_id}",
        f"git_commit={CLEAN[tags.GIT_COMMIT]}",
    ]
    assert summary.read_text().startswith(f"### {name} version 1\n\n| key | value |\n")
    assert "| metrics.f1 | 0.91 |" in summary.read_text()

    outputs.unlink()
    summary.unlink()
    assert cli("models", "history", name, cwd=project.root).exit_code == 0
    assert outputs.read_text().splitlines() == [f"model={name}", "entries=1"]
    lines = [line for line in summary.read_text().splitlines() if line]
    assert lines[0] == f"### Audit trail of {name}"
    assert lines[-1].split(" | ")[1:] == ["promote", "staging", "-", "1", "done", "Test User", "1/1", "ci |"]


# --- concurrency ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_eight_processes_promoting_at_once_leave_one_holder_and_a_full_trail(project: Project, model: Callable) -> None:
    name = model(*({"f1": 0.9 + i / 100} for i in range(8)))
    mlkit = str(Path(sys.executable).with_name("mlkit"))
    env = {**os.environ, "NO_COLOR": "1"}
    procs = [
        subprocess.Popen(
            [mlkit, "promote", name, str(v), "--to", "staging", "--json"],
            cwd=project.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in range(1, 9)
    ]
    outcomes = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for code, _out, err in outcomes:
        assert code == 0, err
        assert "database is locked" not in err
    results = [json.loads(out) for _code, out, _err in outcomes]
    assert {r["status"] for r in results} == {"promoted"}

    state = snapshot(project, name)
    trail = stored_trail(project, name)
    assert len(trail) == 8 and {e["state"] for e in trail} == {"done"}
    audit_keys = {k for k in state["model_tags"] if k.startswith("mlkit.audit.")}
    assert {r["audit_id"] for r in results} == audit_keys
    # serialised: each promotion displaced the one before it, and the last one holds the stage
    assert [e["from_version"] for e in trail[1:]] == [e["to_version"] for e in trail[:-1]]
    assert state["aliases"] == {"staging": trail[-1]["to_version"]}
    staged = [v for v, tag_values in state["version_tags"].items() if tag_values.get("mlkit.stage") == "staging"]
    assert staged == [trail[-1]["to_version"]]


def test_a_held_registry_lock_times_out_with_exit_1(
    project: Project, model: Callable, cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    from filelock import FileLock

    name = model({"f1": 0.91})
    monkeypatch.setattr(audit, "_LOCK_TIMEOUT_S", 0.2)
    lock_file = project.state_dir / "mlflow.db.registry.lock"
    with FileLock(str(lock_file)):
        result = cli("promote", name, "1", "--to", "staging", cwd=project.root)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: another mlkit process has held the registry lock for 0.2s",
        f"hint: wait for it to finish, or remove {lock_file} if no mlkit is running",
    ]
    assert snapshot(project, name)["aliases"] == {}


def test_a_huge_version_number_or_reason_is_bad_input_and_changes_nothing(
    project: Project, model: Callable, cli: Callable
) -> None:
    name = model({"f1": 0.91})
    before = snapshot(project, name)
    huge = cli("promote", name, "9" * 30, "--to", "staging", cwd=project.root)
    assert huge.exit_code == 2
    assert huge.stderr.splitlines()[-2:] == [
        "error: version 99999999999999999999... is larger than any model version",
        "hint: `mlkit models show NAME` shows the latest version",
    ]
    long = cli("promote", name, "1", "--to", "staging", "--reason", "x" * 100_000, cwd=project.root)
    assert long.exit_code == 2
    assert long.stderr.splitlines()[-2:] == [
        "error: --reason is 100,000 characters long; at most 1,000 are recorded",
        "hint: say why in a sentence; link to a longer text (an issue, a pull request)",
    ]
    rolled = cli("rollback", name, "--stage", "staging", "--reason", "y" * 5_000, cwd=project.root)
    assert rolled.exit_code == 2
    assert rolled.stderr.splitlines()[-2] == "error: --reason is 5,000 characters long; at most 1,000 are recorded"
    assert snapshot(project, name) == before
