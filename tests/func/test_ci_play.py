"""The generated GitHub workflows played job by job from fresh clones of a pushed repository, as a runner
would run them, with mlkit installed through the generated install step from the wheel of this checkout
and PyPI out of reach (tests/_ciplay.py says how).

The scenarios follow one project's life and run in the order of this file: the first push, a pull
request, the push once the secrets are set (staging), the data out of reach, a retraining with nothing
new, the approval to production, then new data (a new version) and a pull request compared with it."""

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
from _ciplay import Event, JobResult, Runner, build_wheelhouse, dependency_folder, install_gh_stub
from _isolation import isolate

pytestmark = pytest.mark.slow

MLKIT = str(Path(sys.executable).with_name("mlkit"))
MAIN = ".github/workflows/mlkit.yml"
RETRAIN = ".github/workflows/mlkit-retrain.yml"
PROMOTE = ".github/workflows/mlkit-promote.yml"
MONITOR = ".github/workflows/mlkit-monitor.yml"


@dataclass
class Lab:
    """A project pushed to a bare repository, and what the runner needs to play its workflows."""

    base: Path
    project: Path  # the developer's working copy
    origin: Path  # the bare repository the jobs clone
    remote: Path  # the DVC remote `mlkit init` made, with the data pushed to it
    wheelhouse: Path
    dependencies: Path
    stubs: Path

    def runner(self, name: str, secrets: dict | None = None) -> Runner:
        work = self.base / "runs" / name
        work.mkdir(parents=True)
        return Runner(self.origin, work, self.wheelhouse, self.dependencies, self.stubs, secrets=secrets or {})

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.project, check=True, capture_output=True, text=True
        ).stdout.strip()

    def mlkit(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MLKIT, *args],
            cwd=self.project,
            capture_output=True,
            text=True,
            env={**os.environ, "GITHUB_ACTIONS": "false", **(env or {})},
        )

    def workflow(self, relative: str) -> Path:
        return self.project / relative

    def gh_state(self) -> dict:
        state = self.base / "runs" / "gh-state.json"
        return json.loads(state.read_text()) if state.exists() else {"calls": [], "comments": []}


# read at import: the isolation fixture clears CI for the tests themselves
_IN_CI = bool(os.environ.get("CI"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if shutil.which("uv") is None:  # `.ci/run` installs it: with CI set a missing uv fails
        (pytest.fail if _IN_CI else pytest.skip)("uv is not on PATH: it builds the wheel of this checkout")
    from mlkit.scaffold import init_project

    base = tmp_path_factory.mktemp("ciplay")
    with pytest.MonkeyPatch.context() as patch:
        isolate(patch, base / "home")
        project = Path(init_project("churn", directory=base / "churn", data_remote=base / "remote").root)
        lab = Lab(
            base,
            project,
            base / "origin.git",
            base / "remote",
            build_wheelhouse(base / "wheelhouse"),
            dependency_folder(base / "dependencies"),
            install_gh_stub(base / "stubs"),
        )
        # the documented step before the first push: the data goes to the remote
        pushed = lab.mlkit("data", "push")
        assert pushed.returncode == 0, pushed.stderr
        subprocess.run(["git", "init", "-q", "--bare", str(lab.origin)], check=True)
        lab.git("remote", "add", "origin", str(lab.origin))
        lab.git("push", "-q", "origin", "main")
        yield lab


def annotations(jobs: dict[str, JobResult]) -> list[str]:
    return [line for job in jobs.values() for line in job.annotations]


def statuses(jobs: dict[str, JobResult]) -> dict[str, str]:
    return {name: job.status for name, job in jobs.items()}


def test_the_wheelhouse_holds_this_checkout_alone(lab):
    assert [p.name for p in lab.wheelhouse.glob("*.whl")] == ["mlkit_ops-0.1.0-py3-none-any.whl"]
    assert not list(lab.dependencies.glob("mlkit*"))


def test_the_first_push_is_green_without_secrets(lab):
    sha = lab.git("rev-parse", "HEAD")
    jobs = lab.runner("first-push").play(lab.workflow(MAIN), Event("push", "refs/heads/main", sha))

    assert statuses(jobs) == {"test": "success", "review": "skipped", "comment": "skipped", "release": "success"}
    release = jobs["release"]
    install = release.step("Install mlkit and the project's dependencies").output
    assert f"Processing {lab.wheelhouse}/mlkit_ops-0.1.0-py3-none-any.whl" in install  # the pin: this wheel
    assert release.step("Train").status == "success"
    assert "### mlkit train" in release.summary
    assert release.step("Promote to staging if the gates pass").status == "skipped"
    # one notice for the whole run, naming what to configure and where it is explained
    assert annotations(jobs) == [
        "::notice::promotion to staging skipped: no tracking server configured, so this run's store is thrown "
        'away. Set the secret MLFLOW_TRACKING_URI (ci.secrets.tracking_uri) in the "staging" environment; '
        "see mlkit docs, ci.md: Secrets and environments"
    ]
    assert release.environment == "staging"
    assert [u.split("@")[0] for u in jobs["test"].uses] == ["actions/checkout", "actions/setup-python"]
    assert "1 passed" in jobs["test"].step("Test").output  # the template's tests need no data

    # the scheduled retraining is green too: trained and reported, promotion skipped with the same notice
    retrain = lab.runner("first-retrain").play(lab.workflow(RETRAIN), Event("schedule", "refs/heads/main", sha))
    assert statuses(retrain) == {"retrain": "success"}
    assert retrain["retrain"].step("Train").status == "success"
    assert annotations(retrain) == annotations(jobs)


def test_a_pull_request_gets_one_comment_updated_in_place(lab):
    state = lab.base / "runs" / "gh-state.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    other = {"id": 1, "issue": 7, "body": "<!-- another bot -->\nhello", "user": {"type": "Bot"}}
    state.write_text(json.dumps({"calls": [], "comments": [other], "next_id": 100}))
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
        lab.git("push", "-q", "-f", "origin", "HEAD:refs/pull/7/merge")
        event = Event("pull_request", "refs/pull/7/merge", lab.git("rev-parse", "HEAD"), pull_request=7)
        jobs = lab.runner(f"pull-request-{attempt}").play(lab.workflow(MAIN), event)

        assert statuses(jobs) == {"test": "success", "review": "success", "comment": "success", "release": "skipped"}
        assert jobs["review"].environment == "pull-request"
        assert jobs["comment"].uses == []  # the commenting job checks out no code of the pull request
        assert annotations(jobs) == []
        comparison = jobs["review"].outputs["comparison"]
        assert comparison.startswith(
            "### churn: this run against production\n\n"
            "No production model of churn to compare with yet.\n\n| metric | production |"
        )
        assert "\n| f1 |  | " in comparison and "\nTiming (not compared): fit_seconds " in comparison
        assert comparison in jobs["review"].summary
        gh = lab.gh_state()
        ours = [c for c in gh["comments"] if c["body"].startswith("<!-- mlkit-comparison: churn -->\n")]
        assert len(ours) == 1 and ours[0]["body"] == f"<!-- mlkit-comparison: churn -->\n{comparison}\n"
        bodies.append(ours[0]["body"])
        methods = [call[call.index("--method") + 1] if "--method" in call else "GET" for call in gh["calls"]]
        assert methods == ["GET", "POST"] if attempt == 0 else ["GET", "POST", "GET", "PATCH"]
    assert lab.gh_state()["comments"][0] == other  # another bot's comment is never touched
    assert bodies[0] != bodies[1]  # the same comment now shows the second push
    lab.git("checkout", "-q", "main")


@pytest.fixture(scope="module")
def staged(lab: Lab) -> Iterator[tuple[dict[str, JobResult], dict[str, dict[str, str]], Path]]:
    """A push to main once the team configured a tracking server and a shared data remote (as secrets)."""
    text = (lab.project / "mlkit.yaml").read_text()
    (lab.project / "mlkit.yaml").write_text(
        text.replace(
            "    tracking_uri: MLFLOW_TRACKING_URI\n",
            "    tracking_uri: MLFLOW_TRACKING_URI\n    data_remote: DVC_REMOTE_URL\n",
        )
    )
    generated = lab.mlkit("ci", "generate")
    assert generated.returncode == 0, generated.stderr
    lab.git("commit", "-qam", "CI: the data remote comes from a secret")
    lab.git("push", "-q", "origin", "main")
    shared = lab.base / "shared-remote"
    shutil.copytree(lab.remote, shared)
    tracking = f"sqlite:///{lab.base / 'tracking' / 'mlflow.db'}"
    (lab.base / "tracking").mkdir()
    secrets = {"staging": {"MLFLOW_TRACKING_URI": tracking, "DVC_REMOTE_URL": str(shared)}}
    # the folder in .dvc/config is out of reach, as it is from a hosted runner: the data comes from the secret
    away = lab.remote.rename(lab.base / "remote-away")
    try:
        jobs = lab.runner("configured-push", secrets).play(
            lab.workflow(MAIN), Event("push", "refs/heads/main", lab.git("rev-parse", "HEAD"))
        )
        yield jobs, secrets, away
    finally:
        away.rename(lab.remote)


def test_a_configured_push_promotes_to_staging(lab, staged):
    jobs, secrets, _ = staged
    assert statuses(jobs) == {"test": "success", "review": "skipped", "comment": "skipped", "release": "success"}
    release = jobs["release"]
    assert release.step("Promote to staging if the gates pass").status == "success"
    assert "### Promotion of churn version 1 to staging: promoted" in release.summary
    assert annotations(jobs) == []
    assert release.outputs["model_version"] == "1"
    shown = lab.mlkit(
        "models",
        "show",
        "churn@staging",
        "--json",
        env={"MLKIT_TRACKING_URI": secrets["staging"]["MLFLOW_TRACKING_URI"]},
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["version"] == "1"


def test_data_out_of_reach_fails_with_one_error_naming_the_secret(lab, staged):
    _, secrets, _ = staged
    assert not lab.remote.exists()
    tracking_only = {"staging": {"MLFLOW_TRACKING_URI": secrets["staging"]["MLFLOW_TRACKING_URI"]}}
    jobs = lab.runner("data-out-of-reach", tracking_only).play(
        lab.workflow(MAIN), Event("push", "refs/heads/main", lab.git("rev-parse", "HEAD"))
    )
    assert statuses(jobs)["release"] == "failure"
    assert jobs["release"].step("Check that the data remote is reachable").status == "failure"
    assert annotations(jobs) == [
        f"::error::the DVC remote {lab.remote} is a folder on the machine that created the project, not "
        "reachable from CI: add a shared one and push the data (mlkit data remote add storage s3://BUCKET/PATH "
        "--default && mlkit data push), or set the secret DVC_REMOTE_URL; see mlkit docs, ci.md: Secrets and "
        "environments"
    ]


def test_a_scheduled_retrain_with_unchanged_inputs_adds_no_version(lab, staged):
    _, secrets, _ = staged
    jobs = lab.runner("retrain", secrets).play(
        lab.workflow(RETRAIN), Event("schedule", "refs/heads/main", lab.git("rev-parse", "HEAD"))
    )
    retrain = jobs["retrain"]
    assert retrain.status == "success" and retrain.environment == "staging"
    assert retrain.step("Train").status == "skipped"
    assert retrain.step("Promote to staging if the gates pass").status == "skipped"
    (notice,) = annotations(jobs)
    assert notice.startswith("::notice::no input changed since the latest version of churn (commit ")
    shown = lab.mlkit(
        "models", "show", "churn", "--json", env={"MLKIT_TRACKING_URI": secrets["staging"]["MLFLOW_TRACKING_URI"]}
    )
    assert json.loads(shown.stdout)["version"] == "1"


def test_approval_new_data_and_a_pull_request_against_production(lab, staged):
    _, secrets, _ = staged
    tracking = {"MLKIT_TRACKING_URI": secrets["staging"]["MLFLOW_TRACKING_URI"]}
    # a person runs the promotion workflow; the production environment's reviewers approve the job
    production = {"production": {"MLFLOW_TRACKING_URI": tracking["MLKIT_TRACKING_URI"]}}
    inputs = {"model": "churn", "version": "", "stage": "production"}
    jobs = lab.runner("approval", production).play(
        lab.workflow(PROMOTE), Event("workflow_dispatch", "refs/heads/main", lab.git("rev-parse", "HEAD"), inputs)
    )
    assert statuses(jobs) == {"promote": "skipped", "promote-production": "success"}
    assert jobs["promote-production"].environment == "production"
    assert "### Promotion of churn version 1 to production: promoted" in jobs["promote-production"].summary
    assert json.loads(lab.mlkit("models", "show", "churn@production", "--json", env=tracking).stdout)["version"] == "1"

    # new rows in the data: versioned, pushed to the shared remote, committed
    data = lab.project / "data" / "breast_cancer.csv"
    lines = data.read_text().splitlines(keepends=True)
    data.write_text("".join(lines + lines[1:41]))
    shared = {"MLKIT_DATA_REMOTE": secrets["staging"]["DVC_REMOTE_URL"]}
    added = lab.mlkit("data", "add", "data/breast_cancer.csv", "--commit", "-m", "40 more rows", env=shared)
    assert added.returncode == 0, added.stderr
    pushed = lab.mlkit("data", "push", env=shared)
    assert pushed.returncode == 0, pushed.stderr
    lab.git("push", "-q", "origin", "main")
    # the push itself trains too; here the schedule comes first and sees the new data
    jobs = lab.runner("retrain-new-data", secrets).play(
        lab.workflow(RETRAIN), Event("schedule", "refs/heads/main", lab.git("rev-parse", "HEAD"))
    )
    retrain = jobs["retrain"]
    assert retrain.status == "success" and retrain.step("Train").status == "success"
    assert "### Promotion of churn version 2 to staging: promoted" in retrain.summary
    assert json.loads(lab.mlkit("models", "show", "churn@staging", "--json", env=tracking).stdout)["version"] == "2"

    # a pull request is now compared with the production model: every metric with its change
    lab.git("checkout", "-q", "-b", "deeper")
    params = lab.project / "params.yaml"
    params.write_text(params.read_text().replace("max_depth: 4", "max_depth: 6"))
    lab.git("commit", "-qam", "deeper trees")
    lab.git("push", "-q", "-f", "origin", "HEAD:refs/pull/8/merge")
    read_only = {
        "pull-request": {
            "MLFLOW_TRACKING_URI": tracking["MLKIT_TRACKING_URI"],
            "DVC_REMOTE_URL": secrets["staging"]["DVC_REMOTE_URL"],
        }
    }
    event = Event("pull_request", "refs/pull/8/merge", lab.git("rev-parse", "HEAD"), pull_request=8)
    jobs = lab.runner("pull-request-against-production", read_only).play(lab.workflow(MAIN), event)
    lab.git("checkout", "-q", "main")
    assert statuses(jobs) == {"test": "success", "review": "success", "comment": "success", "release": "skipped"}
    comparison = jobs["review"].outputs["comparison"]
    assert comparison.startswith("### churn: this run against production\n\n| metric | production (")
    rows = [line.split(" | ") for line in comparison.splitlines() if line.startswith("| f1 | ")]
    assert len(rows) == 1 and rows[0][3].startswith(("+", "-"))  # the change of f1
    assert "\n| param | estimator.max_depth | 4 | 6 |\n" in comparison
    assert "\nTiming (not compared): fit_seconds " in comparison
    # the pull request registered nothing
    assert json.loads(lab.mlkit("models", "show", "churn", "--json", env=tracking).stdout)["version"] == "2"


def test_monitoring_production_retrains_when_the_policy_is_crossed(lab, staged):
    import pandas as pd

    _, secrets, _ = staged
    tracking = {"MLKIT_TRACKING_URI": secrets["staging"]["MLFLOW_TRACKING_URI"]}
    shared = {"MLKIT_DATA_REMOTE": secrets["staging"]["DVC_REMOTE_URL"]}

    def play(name: str) -> dict[str, JobResult]:
        event = Event("schedule", "refs/heads/main", lab.git("rev-parse", "HEAD"))
        return lab.runner(name, secrets).play(lab.workflow(MONITOR), event)

    def version_data(message: str, *paths: str) -> None:
        added = lab.mlkit("data", "add", *paths, "--commit", "-m", message, env=shared)
        assert added.returncode == 0, added.stderr
        pushed = lab.mlkit("data", "push", env=shared)
        assert pushed.returncode == 0, pushed.stderr
        lab.git("push", "-q", "origin", "main")

    # nothing named to monitor yet: one notice, nothing else
    jobs = play("monitor-unset")
    assert statuses(jobs) == {"monitor": "success"}
    assert annotations(jobs) == [
        "::notice::nothing to monitor: set monitoring.current in mlkit.yaml to a file of recent production inputs "
        "tracked with `mlkit data add`; see mlkit docs, monitor.md"
    ]

    # a week of production inputs drawn like the training data: within the policy, no training
    training = pd.read_csv(lab.project / "data" / "breast_cancer.csv")
    week = lab.project / "data" / "this_week.csv"
    training.sample(200, random_state=3).drop(columns=["diagnosis"]).to_csv(week, index=False)
    config = lab.project / "mlkit.yaml"
    config.write_text(config.read_text() + "\nmonitoring:\n  current: data/this_week.csv\n  drift_share: 0.2\n")
    lab.git("commit", "-qam", "monitor the inputs of this week")
    version_data("inputs of this week", "data/this_week.csv")
    jobs = play("monitor-calm")
    monitor = jobs["monitor"]
    assert monitor.status == "success" and annotations(jobs) == []
    assert monitor.step("Monitor production").status == "success"
    assert monitor.step("Train").status == "skipped"
    assert "### mlkit monitor churn@production\n\nchurn version 1 (production): " in monitor.summary
    assert ": within the monitoring policy\n" in monitor.summary
    assert monitor.artifacts["monitoring-report"].read_text().startswith("<!DOCTYPE html>")
    shown = json.loads(lab.mlkit("models", "show", "churn@production", "--json", env=tracking).stdout)
    assert shown["monitored"]["crossed"] == "false"

    # the world moves: this week's inputs are shifted, and the labelled rows join the training data
    moved = training.sample(200, random_state=4)
    for column in [c for c in moved.columns if c.startswith("worst_")] + ["mean_radius", "mean_area"]:
        moved[column] = moved[column] * 1.6
    moved.drop(columns=["diagnosis"]).to_csv(week, index=False)
    pd.concat([training, moved]).to_csv(lab.project / "data" / "breast_cancer.csv", index=False)
    version_data("shifted inputs, labelled", "data/this_week.csv", "data/breast_cancer.csv")
    jobs = play("monitor-drifted")
    monitor = jobs["monitor"]
    assert monitor.status == "success", [(s.name, s.status, s.output[-2000:]) for s in monitor.steps]
    run_id = monitor.step("Monitor production").output.split("monitoring run ")[1].split()[0]
    (error,) = annotations(jobs)  # mlkit monitor's own, naming what crossed the policy
    assert error.startswith("::error::monitoring policy crossed for churn@production (version 1): ")
    assert "features drifted (mean_radius, mean_area, worst_radius" in error
    assert monitor.step("Train").status == "success"
    assert "### Promotion of churn version 3 to staging: promoted" in monitor.summary
    assert "CROSSED the monitoring policy" in monitor.artifacts["monitoring-report"].read_text()
    history = json.loads(lab.mlkit("models", "history", "churn", "--json", env=tracking).stdout)
    assert (history[-1]["to_version"], history[-1]["reason"]) == ("3", f"monitoring run {run_id} crossed the policy")
    shown = json.loads(lab.mlkit("models", "show", "churn@production", "--json", env=tracking).stdout)
    assert shown["version"] == "1"  # production moves only through its own approval
    assert (shown["monitored"]["run_id"], shown["monitored"]["crossed"]) == (run_id, "true")

    # crossed again with nothing new to train on: the job fails and says what to do
    jobs = play("monitor-nothing-new")
    assert statuses(jobs) == {"monitor": "failure"}
    assert jobs["monitor"].step("Train").status == "skipped"
    crossed, error = annotations(jobs)
    assert crossed.startswith("::error::monitoring policy crossed for churn@production (version 1): ")
    assert error.startswith("::error::no training input changed since version 3 of churn, the latest (commit ")
    assert json.loads(lab.mlkit("models", "show", "churn", "--json", env=tracking).stdout)["version"] == "3"
