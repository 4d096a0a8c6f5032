"""The generated `.gitlab-ci.yml` played job by job from fresh clones of a pushed repository, as a GitLab
runner would run it: before_script included, so mlkit is installed from the wheel of this checkout with
PyPI out of reach (tests/_ciplay.py says how); rules, needs, dotenv reports and allowed exit codes are
honoured; curl is a stub that keeps the merge request's notes. The scenarios run in file order."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _ciplay import GitLabJob, GitLabRunner, build_wheelhouse, dependency_folder, install_curl_stub
from _isolation import isolate

pytestmark = pytest.mark.slow

MLKIT = str(Path(sys.executable).with_name("mlkit"))
SKIPPED_NOTICE = (
    "promotion to staging skipped: no tracking server configured, so this pipeline's store is thrown away. "
    'Set the variable MLFLOW_TRACKING_URI (ci.secrets.tracking_uri), protected, for the "staging" '
    "environment; see mlkit docs, ci.md: Secrets and environments"
)


@dataclass
class Lab:
    base: Path
    project: Path
    origin: Path
    wheelhouse: Path
    dependencies: Path
    stubs: Path

    def runner(self, name: str, variables: dict[str, str] | None = None) -> GitLabRunner:
        work = self.base / "runs" / name
        work.mkdir(parents=True)
        return GitLabRunner(self.origin, work, self.wheelhouse, self.dependencies, self.stubs, variables or {})

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.project, check=True, capture_output=True, text=True
        ).stdout.strip()

    def mlkit(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MLKIT, *args], cwd=self.project, capture_output=True, text=True, env={**os.environ, **(env or {})}
        )

    @property
    def pipeline(self) -> Path:
        return self.project / ".gitlab-ci.yml"

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def notes(self) -> dict:
        state = self.base / "runs" / "curl-state.json"
        return json.loads(state.read_text()) if state.exists() else {"calls": [], "notes": []}


# read at import: the isolation fixture clears CI for the tests themselves
_IN_CI = bool(os.environ.get("CI"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if shutil.which("uv") is None:  # `.ci/run` installs it: with CI set a missing uv fails
        (pytest.fail if _IN_CI else pytest.skip)("uv is not on PATH: it builds the wheel of this checkout")
    from mlkit.scaffold import init_project

    base = tmp_path_factory.mktemp("gitlabplay")
    with pytest.MonkeyPatch.context() as patch:
        isolate(patch, base / "home")
        project = Path(init_project("churn", directory=base / "churn", data_remote=base / "remote").root)
        lab = Lab(
            base,
            project,
            base / "origin.git",
            build_wheelhouse(base / "wheelhouse"),
            dependency_folder(base / "dependencies"),
            install_curl_stub(base / "stubs"),
        )
        text = (project / "mlkit.yaml").read_text().replace("provider: github", "provider: gitlab")
        (project / "mlkit.yaml").write_text(text)
        assert lab.mlkit("ci", "generate").returncode == 0
        lab.git("add", "-A")
        lab.git("commit", "-qm", "CI on GitLab")
        assert lab.mlkit("data", "push").returncode == 0  # the documented step before the first push
        subprocess.run(["git", "init", "-q", "--bare", str(lab.origin)], check=True)
        lab.git("remote", "add", "origin", str(lab.origin))
        lab.git("push", "-q", "origin", "main")
        yield lab


def statuses(jobs: dict[str, GitLabJob]) -> dict[str, str]:
    return {name: job.status for name, job in jobs.items()}


def test_the_first_push_is_green_without_variables(lab):
    jobs = lab.runner("first-push").play(lab.pipeline, "push", lab.head(), branch="main")
    assert statuses(jobs) == {
        "test": "success",
        "monitor": "skipped",
        "train": "success",
        "comment": "skipped",
        "promote-staging": "success",
        "promote-production": "manual",
    }
    assert f"Processing {lab.wheelhouse}/mlkit_ops-0.1.0-py3-none-any.whl" in jobs["test"].output
    assert "1 passed" in jobs["test"].output  # the template's tests need no data
    assert jobs["train"].dotenv["MLKIT_MODEL_VERSION"] == "1"  # in the train job's own, thrown-away store
    assert jobs["promote-staging"].output.splitlines()[-1] == SKIPPED_NOTICE


def test_a_merge_request_gets_one_note_updated_in_place(lab):
    lab.git("checkout", "-q", "-b", "shallower")
    bodies = []
    for attempt, depth in enumerate(("2", "3")):
        params = lab.project / "params.yaml"
        params.write_text(
            params.read_text()
            .replace("max_depth: 4", f"max_depth: {depth}")
            .replace("max_depth: 2", f"max_depth: {depth}")
        )
        lab.git("commit", "-qam", f"trees of depth {depth}")
        lab.git("push", "-q", "-f", "origin", "HEAD:refs/merge-requests/3/head")
        jobs = lab.runner(f"merge-request-{attempt}", {"MLKIT_GITLAB_TOKEN": "glpat-test"}).play(
            lab.pipeline, "merge_request_event", lab.head(), merge_request="3"
        )
        assert statuses(jobs) == {
            "test": "success",
            "monitor": "skipped",
            "train": "success",
            "comment": "success",
            "promote-staging": "skipped",
            "promote-production": "skipped",
        }
        assert "MLKIT_MODEL_VERSION" not in jobs["train"].dotenv  # compared, not registered
        state = lab.notes()
        (note,) = state["notes"]
        assert note["body"].startswith("<!-- mlkit-comparison: churn -->\n### churn: this run against production\n")
        assert "\n| f1 |  | " in note["body"]
        bodies.append(note["body"])
        assert [call["method"] for call in state["calls"]] == (
            ["GET", "POST"] if attempt == 0 else ["GET", "POST", "GET", "PUT"]
        )
        assert all("PRIVATE-TOKEN: glpat-test" in call["headers"] for call in state["calls"])
    assert bodies[0] != bodies[1]
    lab.git("checkout", "-q", "main")


@pytest.fixture(scope="module")
def tracking(lab: Lab) -> dict[str, str]:
    folder = lab.base / "tracking"
    folder.mkdir()
    return {"MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}


def test_a_configured_push_promotes_and_a_person_promotes_that_version(lab, tracking):
    env = {"MLKIT_TRACKING_URI": tracking["MLFLOW_TRACKING_URI"]}
    jobs = lab.runner("configured-push", tracking).play(
        lab.pipeline, "push", lab.head(), branch="main", manual=("promote-production",)
    )
    assert statuses(jobs) == {
        "test": "success",
        "monitor": "skipped",
        "train": "success",
        "comment": "skipped",
        "promote-staging": "success",
        "promote-production": "success",
    }
    assert jobs["promote-staging"].environment == "staging"
    assert jobs["promote-production"].environment == "production"
    assert '"status": "promoted"' in jobs["promote-production"].output
    shown = json.loads(lab.mlkit("models", "show", "churn@production", "--json", env=env).stdout)
    assert shown["version"] == jobs["train"].dotenv["MLKIT_MODEL_VERSION"] == "1"


def test_a_schedule_with_unchanged_inputs_trains_nothing(lab, tracking):
    jobs = lab.runner("schedule", tracking).play(lab.pipeline, "schedule", lab.head(), branch="main")
    assert statuses(jobs) == {
        "test": "success",
        "monitor": "skipped",
        "train": "success",
        "comment": "skipped",
        "promote-staging": "success",
        "promote-production": "skipped",
    }
    assert "no input changed since the latest version of churn (commit " in jobs["train"].output
    assert (
        jobs["promote-staging"].output.splitlines()[-1] == "no new model version in this pipeline: nothing to promote"
    )


def test_a_refused_gate_is_a_warning(lab, tracking):
    text = (lab.project / "mlkit.yaml").read_text()
    (lab.project / "mlkit.yaml").write_text(text.replace('thresholds: ["f1 >= 0.85"]', 'thresholds: ["f1 >= 0.9999"]'))
    lab.git("commit", "-qam", "a stricter staging gate")
    lab.git("push", "-q", "origin", "main")
    jobs = lab.runner("refused", tracking).play(lab.pipeline, "push", lab.head(), branch="main")
    # exit 3, allowed: the job shows a warning and the pipeline passes; the manual stage is still offered
    assert statuses(jobs) == {
        "test": "success",
        "monitor": "skipped",
        "train": "success",
        "comment": "skipped",
        "promote-staging": "warning",
        "promote-production": "manual",
    }
    result = jobs["promote-staging"].output
    assert '"status": "refused"' in result and '"version": "2"' in result and "f1 >= 0.9999" in result


def test_a_monitoring_schedule_retrains_only_when_the_policy_is_crossed(lab, tracking):
    import pandas as pd

    env = {"MLKIT_TRACKING_URI": tracking["MLFLOW_TRACKING_URI"]}
    monitoring = {**tracking, "MLKIT_SCHEDULE": "monitor"}
    config = lab.project / "mlkit.yaml"
    text = config.read_text().replace('thresholds: ["f1 >= 0.9999"]', 'thresholds: ["f1 >= 0.85"]')
    config.write_text(text + "\nmonitoring:\n  current: data/this_week.csv\n  drift_share: 0.2\n")
    training = pd.read_csv(lab.project / "data" / "breast_cancer.csv")
    week = lab.project / "data" / "this_week.csv"
    training.sample(200, random_state=3).drop(columns=["diagnosis"]).to_csv(week, index=False)

    def version_data(message: str, *paths: str) -> None:
        added = lab.mlkit("data", "add", *paths, "--commit", "-m", message)
        assert added.returncode == 0, added.stderr
        assert lab.mlkit("data", "push").returncode == 0
        lab.git("push", "-q", "origin", "main")

    lab.git("commit", "-qam", "monitor the inputs of this week")
    version_data("inputs of this week", "data/this_week.csv")
    jobs = lab.runner("monitor-calm", monitoring).play(lab.pipeline, "schedule", lab.head(), branch="main")
    assert statuses(jobs) == {
        "test": "success",
        "monitor": "success",
        "train": "success",
        "comment": "skipped",
        "promote-staging": "success",
        "promote-production": "skipped",
    }
    assert jobs["monitor"].dotenv["MLKIT_MONITOR_CROSSED"] == "false"
    assert jobs["monitor"].artifacts["monitoring-report.html"].startswith("<!DOCTYPE html>")
    assert "the monitoring policy was not crossed: nothing to retrain" in jobs["train"].output

    # shifted inputs, and the labelled rows join the training data: retrained, promoted with the reason
    moved = training.sample(200, random_state=4)
    for column in [c for c in moved.columns if c.startswith("worst_")] + ["mean_radius", "mean_area"]:
        moved[column] = moved[column] * 1.6
    moved.drop(columns=["diagnosis"]).to_csv(week, index=False)
    pd.concat([training, moved]).to_csv(lab.project / "data" / "breast_cancer.csv", index=False)
    version_data("shifted inputs, labelled", "data/this_week.csv", "data/breast_cancer.csv")
    jobs = lab.runner("monitor-drifted", monitoring).play(lab.pipeline, "schedule", lab.head(), branch="main")
    assert statuses(jobs)["promote-staging"] == "success", jobs["train"].output[-3000:]
    run_id = jobs["monitor"].dotenv["MLKIT_MONITORING_RUN"]
    assert jobs["monitor"].dotenv["MLKIT_MONITOR_CROSSED"] == "true" and len(run_id) == 32
    version = jobs["train"].dotenv["MLKIT_MODEL_VERSION"]
    history = json.loads(lab.mlkit("models", "history", "churn", "--json", env=env).stdout)
    assert (history[-1]["to_version"], history[-1]["stage"]) == (version, "staging")
    assert history[-1]["reason"] == f"monitoring run {run_id} crossed the policy"

    # crossed again with nothing new to train on: the train job fails with one error
    jobs = lab.runner("monitor-nothing-new", monitoring).play(lab.pipeline, "schedule", lab.head(), branch="main")
    assert (statuses(jobs)["monitor"], statuses(jobs)["train"]) == ("success", "failed")
    assert (
        f"error: no training input changed since version {version} of churn, the latest (commit "
        in jobs["train"].output
    )
