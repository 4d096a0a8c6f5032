"""`mlkit monitor` on a real project: real git, DVC, training and an MLflow SQLite store, read back through
MLflow's own client. The project's data get a categorical column, the model is trained once and promoted
to staging; each test builds its current data from the training file with a seeded change."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from _isolation import isolate
from mlflow import MlflowClient
from typer.testing import CliRunner

from mlkit import tags
from mlkit.cli import app
from mlkit.errors import ExitCode
from mlkit.monitoring.monitor import MonitorOptions, monitor
from mlkit.monitoring.profile import ReferenceProfile
from mlkit.project import load_project
from mlkit.training import TrainOptions, train

pytestmark = pytest.mark.slow

DATA = "data/breast_cancer.csv"
CLINICS = ["north", "south", "east"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A classification project (XGBoost, feature hook) whose data have a categorical column `clinic`."""
    from mlkit import data as data_ops
    from mlkit.scaffold import init_project

    base = tmp_path_factory.mktemp("monitor")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, base / "home")
        root = Path(
            init_project("churn", template="classification", directory=base / "churn", data_remote=base / "remote").root
        )
        frame = pd.read_csv(root / DATA)
        frame.insert(3, "clinic", np.random.default_rng(0).choice(CLINICS, len(frame)))
        frame.to_csv(root / DATA, index=False)
        monkeypatch.chdir(root)
        data_ops.add(load_project(root), [DATA], commit=True, message="data: a clinic column")
        result = train(load_project(root), TrainOptions(command=["mlkit", "train"]))
        assert result.model_version == "1"
        promoted = CliRunner().invoke(app, ["promote", "churn", "1", "--to", "staging"], catch_exceptions=False)
        assert promoted.exit_code == 0, promoted.output
        yield root


@pytest.fixture
def project(trained: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The trained project as the working directory, with the default monitoring policy."""
    monkeypatch.chdir(trained)
    set_policy(trained)
    return trained


def set_policy(root: Path, **policy: object) -> None:
    config = yaml.safe_load((root / "mlkit.yaml").read_text())
    config["monitoring"] = policy
    (root / "mlkit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def current(root: Path, seed: int, rows: int = 300) -> pd.DataFrame:
    """A seeded resample of the training file, without the target."""
    frame = pd.read_csv(root / DATA)
    return frame.sample(rows, replace=True, random_state=seed).drop(columns=["diagnosis"]).reset_index(drop=True)


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def run(*args: str):
    return CliRunner().invoke(app, ["monitor", *args], catch_exceptions=False)


def _client(root: Path) -> MlflowClient:
    uri = f"sqlite:///{root / '.mlkit' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_the_version_carries_the_hash_of_the_profile_logged_with_its_run(project, tmp_path):
    client = _client(project)
    version = client.get_model_version("churn", "1")
    local = client.download_artifacts(version.run_id, tags.PROFILE_ARTIFACT, str(tmp_path))
    profile = ReferenceProfile.from_json(Path(local).read_text())
    assert version.tags[tags.PROFILE_SHA256] == profile.sha256
    assert client.get_run(version.run_id).data.tags[tags.PROFILE_SHA256] == profile.sha256
    assert profile.feature("clinic").kind == "categorical"
    assert profile.feature("mean_area_to_perimeter") is not None  # the hook's column, as the model sees it
    assert (profile.rows, profile.classes) == (455, ["benign", "malignant"])
    assert set(profile.metrics) >= {"f1", "accuracy"}


def test_a_resample_of_the_training_data_is_not_flagged(project, tmp_path):
    path = write(current(project, seed=1), tmp_path / "same.parquet")
    result = run("churn@staging", "--current", str(path), "--json", "--no-log")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["crossed"], report["reasons"], report["current_rows"]) == (False, [], 300)
    assert report["drifted_share"] < 0.1
    assert report["prediction"]["drifted"] is False
    assert [f["kind"] for f in report["findings"]] == []


def test_a_mean_shift_in_one_feature_is_detected_named_and_exits_5(project, tmp_path):
    set_policy(project, drift_share=0.03, prediction_drift=False)
    frame = current(project, seed=2)
    frame["mean_radius"] += 2 * frame["mean_radius"].std()
    path = write(frame, tmp_path / "shifted.csv")
    html = tmp_path / "report.html"
    summary = tmp_path / "summary.md"
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("GITHUB_ACTIONS", "true")
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
        result = run("churn@staging", "--current", str(path), "--html", str(html))
    assert result.exit_code == ExitCode.DRIFT == 5
    assert result.stderr.splitlines()[-3:] == [
        "error: monitoring policy crossed for churn@staging (version 1): 1 of 32 features drifted (mean_radius), "
        "share 0.03 >= 0.03",
        "hint: retrain on the newest data (`mlkit train`) and promote through the gates",
        "::error::monitoring policy crossed for churn@staging (version 1): 1 of 32 features drifted (mean_radius), "
        "share 0.03 >= 0.03 (retrain on the newest data (`mlkit train`) and promote through the gates)",
    ]
    assert "mean_radius" in result.stdout and "DRIFT" in result.stdout
    page = html.read_text()
    assert page.count("<svg") == 1 and "mean_radius: ks" in page and "<script" not in page
    assert summary.read_text().startswith("### mlkit monitor churn@staging\n")

    client = _client(project)
    experiment = client.get_experiment_by_name("churn-monitoring")
    (monitoring_run,) = client.search_runs([experiment.experiment_id])
    run_tags = monitoring_run.data.tags
    assert (
        run_tags[tags.MONITORED_MODEL],
        run_tags[tags.MONITORED_VERSION],
        run_tags[tags.MONITORED_STAGE],
        run_tags[tags.MONITORING_CROSSED],
    ) == ("churn", "1", "staging", "true")
    assert monitoring_run.data.metrics["drift.mean_radius.ks"] < 0.05
    assert sorted(a.path for a in client.list_artifacts(monitoring_run.info.run_id, "monitoring")) == [
        tags.REPORT_HTML_ARTIFACT,
        tags.REPORT_JSON_ARTIFACT,
    ]


def test_a_new_category_is_detected_and_named(project, tmp_path):
    frame = current(project, seed=3)
    frame.loc[frame.index[:60], "clinic"] = "west"
    path = write(frame, tmp_path / "clinics.csv")
    result = run("churn@staging", "--current", str(path), "--json", "--no-log")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    clinic = next(f for f in report["features"] if f["name"] == "clinic")
    assert (clinic["drifted"], clinic["test"], clinic["new_categories"]) == (True, "chi2", {"west": 60})
    assert [(f["kind"], f["feature"], f["detail"]) for f in report["findings"]] == [
        ("new_category", "clinic", "new categories 'west' in 20.0% of rows")
    ]


def test_flipped_labels_are_performance_decay_below_the_floor(project, tmp_path):
    set_policy(project, metric_floors=["f1 >= 0.85"], prediction_drift=False)
    frame = pd.read_csv(project / DATA).sample(300, replace=False, random_state=4).reset_index(drop=True)
    frame.insert(0, "patient_id", [f"p{i:04d}" for i in range(len(frame))])
    flipped = frame["diagnosis"].map({"benign": "malignant", "malignant": "benign"})
    labels = frame[["patient_id"]].assign(diagnosis=flipped)
    data = write(frame.drop(columns=["diagnosis"]), tmp_path / "batch.csv")
    late = write(labels.iloc[:200], tmp_path / "labels.csv")
    result = run(
        "churn@staging", "--current", str(data), "--labels", str(late), "--id", "patient_id", "--json", "--no-log"
    )
    assert result.exit_code == ExitCode.DRIFT
    report = json.loads(result.stdout)
    f1 = next(m for m in report["metrics"] if m["name"] == "f1")
    assert report["labelled_rows"] == 200
    assert f1["current"] < 0.2 and f1["training"] > 0.9 and (f1["floor"], f1["passed"]) == ("f1 >= 0.85", False)
    assert report["reasons"] == [f"f1 {f1['current']:.4g} fails the floor f1 >= 0.85"]
    assert result.stderr.splitlines()[-2] == (
        f"error: monitoring policy crossed for churn@staging (version 1): f1 {f1['current']:.4g} fails the floor "
        "f1 >= 0.85"
    )
    assert report["findings"] == []  # the id column is not reported as an extra column


def test_the_prediction_log_of_the_last_days_is_read_for_the_watched_version(project, tmp_path):
    now = datetime.now(timezone.utc)
    frame = current(project, seed=5, rows=120)
    log = pd.DataFrame(
        {
            "_request_id": [f"r{i}" for i in range(len(frame))],
            "_time": [now - timedelta(hours=1)] * 100 + [now - timedelta(days=30)] * 20,
            "_model": "churn",
            "_version": ["1"] * 90 + ["2"] * 30,
            "_latency_ms": 3.5,
            "_prediction": ["benign", "malignant"] * 60,
        }
    )
    log = pd.concat([log, frame], axis=1)
    folder = project / ".mlkit" / "predictions"
    for day, part in ((now, log.iloc[:100]), (now - timedelta(days=30), log.iloc[100:])):
        target = folder / f"date={day.strftime('%Y-%m-%d')}"
        target.mkdir(parents=True, exist_ok=True)
        part.to_parquet(target / "part-0000.parquet", index=False)
    # late labels for 40 requests: the logged prediction for half of them, the other label for the rest
    answers = pd.DataFrame(
        {
            "_request_id": [f"r{i}" for i in range(40)],
            "diagnosis": [("benign", "malignant")[(i % 2) ^ (i >= 20)] for i in range(40)],
        }
    )
    labels = write(answers, tmp_path / "labels.parquet")
    try:
        report = monitor(
            load_project(project),
            "churn@staging",
            MonitorOptions(since=timedelta(days=7), labels=labels, id_column="_request_id", log_run=False, html=False),
        )
    finally:
        shutil.rmtree(folder)
    assert (report.current_rows, report.skipped_rows) == (90, 10)
    assert report.source.startswith("prediction log since ") and report.source.endswith("(1 file(s))")
    assert report.assessment.prediction is not None and report.assessment.prediction.current_rows == 90
    assert [f.kind for f in report.assessment.findings] == []
    accuracy = next(m for m in report.assessment.metrics if m.name == "accuracy")
    assert (report.labelled_rows, accuracy.current) == (40, 0.5)
    assert "roc_auc" not in [m.name for m in report.assessment.metrics]  # the log holds no probabilities


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "error: nothing to monitor: give --current FILE or --since SPAN, or set monitoring.current in mlkit.yaml"),
        (
            ["--current", "{batch}", "--since", "7d"],
            "error: give either --current FILE or --since SPAN (the prediction log), not both",
        ),
        (["--since", "7x"], "error: --since '7x': must look like 7d, 12h, 30m or 2w"),
        (["--current", "missing.csv"], "error: missing.csv: file not found"),
        (["--current", "{batch}", "--labels", "y.csv"], "error: --labels and --id go together"),
        (["--since", "3d"], "error: no prediction log since {start} in .mlkit/predictions"),
        (["--current", "{batch}", "--format", "xml"], "error: --format 'xml': must be table or markdown"),
        (["--current", "{batch}", "--labels", "y.csv", "--id", "patient_id"], "error: y.csv: labels file not found"),
    ],
)
def test_bad_usage_is_exit_2_with_one_line(project, args, message, tmp_path):
    batch = write(current(project, seed=6, rows=5), tmp_path / "batch.csv")
    started = datetime.now(timezone.utc) - timedelta(days=3)
    result = run("churn@staging", *(arg.format(batch=batch) for arg in args))
    assert result.exit_code == ExitCode.USAGE
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    # the window's start is printed to the second; allow the one the command saw
    starts = {(started + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ") for s in (0, 1, 2)}
    assert error in {message.format(start=start) for start in starts}


def test_monitoring_current_in_the_settings_is_read_and_the_version_points_at_the_run(project, tmp_path):
    batch = project / "data" / "this_week.csv"
    write(current(project, seed=8), batch)
    set_policy(project, current="data/this_week.csv")
    try:
        result = run("churn@staging", "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert (report["source"], report["current_rows"]) == (str(batch), 300)
        assert report["version_marked"] is True
        version = _client(project).get_model_version("churn", "1")
        assert version.tags[tags.MONITORING_LATEST_RUN] == report["monitoring_run_id"]
        assert version.tags[tags.MONITORING_LATEST_CROSSED] == "false"
        shown = CliRunner().invoke(app, ["models", "show", "churn@staging", "--json"], catch_exceptions=False)
        monitored = json.loads(shown.stdout)["monitored"]
        assert monitored["run_id"] == report["monitoring_run_id"] and monitored["crossed"] == "false"
        assert monitored["time"].endswith("Z")
    finally:
        batch.unlink()


@pytest.mark.parametrize(
    ("policy", "error", "hint"),
    [
        (
            {"current": "data/gone.csv"},
            "error: monitoring.current: data/gone.csv not found",
            "hint: run `mlkit data pull` to fetch the versioned data, or fix monitoring.current in mlkit.yaml",
        ),
        (
            {"current": "../outside.csv"},
            "error: mlkit.yaml: monitoring.current: '../outside.csv' must be a .csv or .parquet file inside the "
            "project, e.g. data/current.csv",
            "hint: fix mlkit.yaml and run the command again",
        ),
        (
            {"current": "data/x.csv", "labels": "data/y.csv"},
            "error: mlkit.yaml: monitoring: labels and id go together, e.g. labels: data/labels.csv and id: "
            "customer_id",
            "hint: fix mlkit.yaml and run the command again",
        ),
    ],
)
def test_bad_monitoring_settings_are_exit_2_with_one_line(project, policy, error, hint):
    set_policy(project, **policy)
    result = run("churn@staging")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert result.stderr.splitlines() == [error, hint]
