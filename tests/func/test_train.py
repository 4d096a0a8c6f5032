"""`mlkit train` against real git, DVC and an MLflow SQLite store, read back through MLflow's own client."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from _isolation import isolate
from mlflow import MlflowClient

from mlkit import lineage as L
from mlkit import tags
from mlkit.errors import ExitCode
from mlkit.project import load_project
from mlkit.training import TrainOptions, train

pytestmark = pytest.mark.slow


def _new_project(base: Path, name: str, template: str) -> Path:
    from mlkit.scaffold import init_project

    return Path(init_project(name, template=template, directory=base / name, data_remote=base / f"{name}-remote").root)


def _client(root: Path) -> MlflowClient:
    uri = f"sqlite:///{root / '.mlkit' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _versions(root: Path, name: str) -> list:
    return _client(root).search_model_versions(f"name = '{name}'")


def _git_head(root: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def _dvc_md5(root: Path, data: str) -> str:
    return yaml.safe_load((root / f"{data}.dvc").read_text())["outs"][0]["md5"]


@pytest.fixture(scope="module")
def classification(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list]]:
    """A classification project (XGBoost, string target, feature hook) trained twice with the same inputs."""
    base = tmp_path_factory.mktemp("cls")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, base / "home")
        root = _new_project(base, "cancer", "classification")
        head = _git_head(root)
        monkeypatch.chdir(root)
        first = train(load_project(root), TrainOptions(command=["mlkit", "train"]))
        second = train(load_project(root), TrainOptions(command=["mlkit", "train"]))
        yield root, [first, second], head


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, object]]:
    base = tmp_path_factory.mktemp("reg")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, base / "home")
        root = _new_project(base, "diabetes", "regression")
        monkeypatch.chdir(root)
        yield root, train(load_project(root), TrainOptions(command=["mlkit", "train"]))


def test_classification_run_has_lineage_of_head_and_dvc_data(classification):
    root, (first, _), head = classification
    run = _client(root).get_run(first.run_id)
    tag_values = run.data.tags
    assert run.info.status == "FINISHED"
    assert tag_values[tags.GIT_COMMIT] == head
    assert tag_values[tags.GIT_BRANCH] == "main"
    assert tag_values[tags.GIT_DIRTY] == "false"
    assert tag_values[tags.DATA_MD5_PREFIX + "data/breast_cancer.csv"] == _dvc_md5(root, "data/breast_cancer.csv")
    assert json.loads(tag_values[tags.PARAMS])["estimator"]["max_depth"] == 4
    assert tag_values[tags.SEED] == "42"
    assert json.loads(tag_values[tags.SPLIT]) == {
        "cv_folds": 0,
        "seed": 42,
        "stratify": True,
        "test_file": None,
        "test_size": 0.2,
    }
    assert tag_values[tags.COMMAND] == "mlkit train"
    assert tag_values[tags.MLKIT_VERSION] == "0.1.0"
    assert tag_values[tags.PREDICTIONS_SHA256] == first.predictions_sha256
    assert json.loads(tag_values["mlkit.label_mapping"]) == {"0": "benign", "1": "malignant"}
    assert run.data.params["estimator.max_depth"] == "4"
    assert set(first.metrics) == {"accuracy", "f1", "roc_auc", "precision", "recall", "log_loss"}
    assert run.data.metrics["f1"] == first.metrics["f1"] > 0.9


def test_classification_artifacts_and_per_iteration_metrics(classification):
    root, (first, _), _ = classification
    client = _client(root)
    names = {a.path for a in client.list_artifacts(first.run_id, "plots")}
    assert names == {
        "plots/confusion_matrix.png",
        "plots/roc_curve.png",
        "plots/precision_recall_curve.png",
        "plots/feature_importance.png",
    }
    lock = client.download_artifacts(first.run_id, tags.LOCK_ARTIFACT, str(root / ".mlkit"))
    assert "mlflow==" in Path(lock).read_text()
    history = client.get_metric_history(first.run_id, "xgb.test.logloss")
    assert [m.step for m in history] == list(range(200))


def test_one_model_version_per_train_with_lineage_tags(classification):
    root, (first, second), head = classification
    versions = sorted(_versions(root, "cancer"), key=lambda v: int(v.version))
    assert [(str(v.version), v.run_id) for v in versions] == [("1", first.run_id), ("2", second.run_id)]
    assert versions[0].tags[tags.GIT_COMMIT] == head
    assert versions[0].tags[tags.DATA_MD5_PREFIX + "data/breast_cancer.csv"] == _dvc_md5(root, "data/breast_cancer.csv")
    assert versions[0].tags["mlkit.run_id"] == first.run_id


def test_same_commit_data_and_params_give_identical_results(classification):
    _, (first, second), _ = classification
    assert first.metrics == second.metrics
    assert first.predictions_sha256 == second.predictions_sha256
    assert first.run_id != second.run_id


def test_registered_model_predicts_with_mlflow_pyfunc(classification):
    import mlflow.pyfunc
    import pandas as pd

    root, _, _ = classification
    mlflow.set_tracking_uri(f"sqlite:///{root / '.mlkit' / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/cancer/1")
    # the raw rows of the data file: the hook runs inside the model, the labels come out
    frame = pd.read_csv(root / "data" / "breast_cancer.csv").drop(columns=["diagnosis"]).head(3)
    assert set(model.predict(frame).tolist()) <= {"benign", "malignant"}
    assert model.metadata.metadata["mlkit.label_mapping"] == {"0": "benign", "1": "malignant"}


def test_metrics_json_and_dvc_status_clean(classification):
    root, (_, second), _ = classification
    assert json.loads((root / "metrics.json").read_text()) == {k: round(v, 6) for k, v in second.metrics.items()}
    dvc = str(Path(sys.executable).with_name("dvc"))
    status = subprocess.run([dvc, "status", "--json"], cwd=root, capture_output=True, text=True, check=True)
    assert json.loads(status.stdout) == {}


def test_regression_template_trains_a_random_forest(regression):
    root, result = regression
    run = _client(root).get_run(result.run_id)
    assert set(result.metrics) == {"rmse", "mae", "r2"}
    assert result.metrics["r2"] > 0.2
    assert run.data.params["model.estimator"] == "sklearn.ensemble.RandomForestRegressor"
    assert run.data.tags[tags.DATA_MD5_PREFIX + "data/diabetes.csv"] == _dvc_md5(root, "data/diabetes.csv")
    names = {a.path for a in _client(root).list_artifacts(result.run_id, "plots")}
    assert names == {"plots/residuals.png", "plots/predicted_vs_actual.png", "plots/feature_importance.png"}
    assert [str(v.version) for v in _versions(root, "diabetes")] == ["1"]


def test_regression_params_describe_the_split_the_run_records(regression):
    root, result = regression
    split = json.loads(_client(root).get_run(result.run_id).data.tags[tags.SPLIT])
    assert split["stratify"] is False
    comment = next(line for line in (root / "params.yaml").read_text().splitlines() if "split" in line)
    assert (
        comment == "# 0: one train/test split (stratified by class for classification); k >= 2: k-fold "
        "cross-validation as well"
    )
    assert result.warnings == []  # 442 rows: an 89-row test split


def test_a_registered_tree_model_loads_back_through_mlflow(regression):
    # MLflow 3's default scikit-learn format (skops) refuses tree models unless their types are trusted
    import mlflow.sklearn
    import pandas as pd

    root, result = regression
    mlflow.set_tracking_uri(f"sqlite:///{root / '.mlkit' / 'mlflow.db'}")
    model = mlflow.sklearn.load_model(f"models:/diabetes/{result.model_version}")
    assert type(model.steps[-1][1]).__name__ == "RandomForestRegressor"
    frame = pd.read_csv(root / "data" / "diabetes.csv").drop(columns=["progression"]).head(4)
    frame["bmi_x_bp"] = frame["bmi"] * frame["bp"]
    assert model.predict(frame).shape == (4,)


def test_cross_validation_logs_mean_and_std(regression, cli):
    root, _ = regression
    result = cli(
        "train",
        "--set",
        "params.cv_folds=3",
        "--set",
        "params.estimator.n_estimators=20",
        "--no-register",
        "--json",
        cwd=root,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["cv_metrics"]) == {f"cv_{m}_{s}" for m in ("rmse", "mae", "r2") for s in ("mean", "std")}
    assert data["model_version"] is None
    run = _client(root).get_run(data["run_id"])
    # the fit alone, and the whole command: two names, never a bare "seconds"
    assert data["fit_seconds"] == run.data.metrics["fit_seconds"]
    assert data["total_seconds"] > data["fit_seconds"] and "seconds" not in data
    # the run rewrote the DVC outputs: the summary says to commit them
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", "dvc.lock", "metrics.json"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert data["uncommitted"] == [name for name in ("dvc.lock", "metrics.json") if name in status]
    assert "metrics.json" in data["uncommitted"]
    files = data["uncommitted"]
    assert (
        f"{' and '.join(files)} changed: commit them with your code (git add {' '.join(files)} && git commit)\n"
    ) in result.stderr
    assert run.data.metrics["cv_r2_mean"] == data["cv_metrics"]["cv_r2_mean"]
    assert run.data.params["cv_folds"] == "3"
    assert [str(v.version) for v in _versions(root, "diabetes")] == ["1"]


def test_entrypoint_builds_the_estimator_and_keeps_the_tracking(regression, monkeypatch):
    root, _ = regression
    (root / "src" / "diabetes" / "model.py").write_text(
        "def build(params, X, y):\n"
        "    from diabetes.linear import ridge  # imported from the project's package at call time\n\n"
        "    assert len(X) == len(y) > 300\n"
        "    return ridge(params['estimator'].get('alpha', 2.0))\n"
    )
    (root / "src" / "diabetes" / "linear.py").write_text(
        "from sklearn.linear_model import Ridge\n\n\ndef ridge(alpha):\n    return Ridge(alpha=alpha)\n"
    )
    try:
        result = train(
            load_project(root),
            TrainOptions(
                overrides={"model.entrypoint": "diabetes.model:build", "params.estimator": {}}, write_metrics=False
            ),
        )
    finally:
        (root / "src" / "diabetes" / "model.py").unlink()
        (root / "src" / "diabetes" / "linear.py").unlink()
    run = _client(root).get_run(result.run_id)
    assert run.data.params["model.estimator"] == "diabetes.model:build"
    assert run.data.tags[tags.GIT_DIRTY] == "true"  # model.py was not committed: the diff is logged
    assert set(result.metrics) == {"rmse", "mae", "r2"} and result.metrics["r2"] > 0.2
    assert int(result.model_version) >= 2
    assert type(result.lineage) is L.RunLineage


def test_parquet_with_missing_values_string_categories_and_three_classes(make_project, cli):
    """Real data out of the box: a DVC-tracked Parquet file, gaps in numeric and string columns, a string
    category, and a three-class string target."""
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    root = make_project("plans", "classification")
    rng = np.random.default_rng(7)
    rows = 600
    usage = rng.gamma(2.0, 10.0, rows)
    frame = pd.DataFrame(
        {
            "usage": usage,
            "tenure": rng.integers(1, 60, rows).astype(float),
            "region": rng.choice(np.array(["north", "south", "east", None], dtype=object), rows),
            "plan": np.where(usage > 30, "premium", np.where(usage > 12, "standard", "basic")),
        }
    )
    frame.loc[rng.random(rows) < 0.1, "usage"] = np.nan
    frame.loc[rng.random(rows) < 0.1, "tenure"] = np.nan
    frame.to_parquet(root / "data" / "plans.parquet", index=False)
    assert cli("data", "add", "data/plans.parquet", cwd=root).exit_code == 0
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "plans data"], cwd=root, check=True)

    result = cli(
        "train",
        "--json",
        "--set",
        "data.train=data/plans.parquet",
        "--set",
        "data.target=plan",
        "--set",
        "data.hook=null",
        "--set",
        "params.estimator.n_estimators=30",
        cwd=root,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["metrics"]) == {"accuracy", "f1", "roc_auc", "precision", "recall", "log_loss"}
    assert data["metrics"]["accuracy"] > 0.8
    run = _client(root).get_run(data["run_id"])
    assert run.data.tags[tags.DATA_MD5_PREFIX + "data/plans.parquet"] == _dvc_md5(root, "data/plans.parquet")
    assert run.data.params["data.train"] == "data/plans.parquet"
    assert {a.path for a in _client(root).list_artifacts(data["run_id"], "plots")} >= {
        "plots/confusion_matrix.png",
        "plots/roc_curve.png",
        "plots/precision_recall_curve.png",
    }
    version = _versions(root, "plans")[0]
    assert json.loads(version.tags["mlkit.label_mapping"]) == {"0": "basic", "1": "premium", "2": "standard"}

    mlflow.set_tracking_uri(f"sqlite:///{root / '.mlkit' / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(f"models:/plans/{data['model_version']}")
    unseen = pd.DataFrame({"usage": [50.0, np.nan], "tenure": [np.nan, 12.0], "region": ["west", None]})
    assert set(model.predict(unseen).tolist()) <= {"basic", "premium", "standard"}


def test_a_separate_test_file_is_encoded_with_the_training_classes(make_project, cli):
    root = make_project("holdout", "classification")
    header, *body = (root / "data" / "breast_cancer.csv").read_text().splitlines()
    column = header.split(",").index("diagnosis")
    benign = [row for row in body if row.split(",")[column] == "benign"][:40]
    (root / "data" / "train.csv").write_text("\n".join([header, *[r for r in body if r not in benign]]) + "\n")
    (root / "data" / "holdout.csv").write_text("\n".join([header, *benign]) + "\n")  # one class only
    odd = [",".join("unknown" if i == column else v for i, v in enumerate(r.split(","))) for r in benign[:3]]
    (root / "data" / "odd.csv").write_text("\n".join([header, *benign[3:], *odd]) + "\n")
    assert cli("data", "add", "data/train.csv", "data/holdout.csv", "data/odd.csv", cwd=root).exit_code == 0
    subprocess.run(["git", "commit", "-qm", "a held-out test file"], cwd=root, check=True)
    train_on = ["--set", "data.train=data/train.csv", "--set", "params.estimator.n_estimators=20"]

    result = cli("train", "--json", "--no-register", *train_on, "--set", "data.test=data/holdout.csv", cwd=root)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    run = _client(root).get_run(data["run_id"])
    assert run.data.metrics["test_rows"] == 40.0
    assert json.loads(run.data.tags[tags.SPLIT])["test_file"] == "data/holdout.csv"
    assert data["metrics"]["accuracy"] > 0.8

    result = cli("train", *train_on, "--set", "data.test=data/odd.csv", cwd=root)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines()[-2:] == [
        "error: data/odd.csv: target 'diagnosis' has classes not in the training data: unknown",
        "hint: check data.test",
    ]
    assert [str(v.version) for v in _versions(root, "holdout")] == []


# -- failures: one line, exit code, FAILED run with the reason, no new model version -------------------


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A regression project with extra DVC-tracked data files that break training in known ways."""
    from mlkit.engines import dvc

    base = tmp_path_factory.mktemp("fail")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, base / "home")
        root = _new_project(base, "broken", "regression")
        (root / "data" / "empty.csv").write_text("age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,progression\n")
        rows = (root / "data" / "diabetes.csv").read_text().splitlines()
        nan_rows = [rows[0], *rows[1:40], ",".join(rows[40].split(",")[:-1]) + ","]
        (root / "data" / "nan_target.csv").write_text("\n".join(nan_rows) + "\n")
        (root / "data" / "gone.csv").write_text(rows[0] + "\n" + "\n".join(rows[1:20]) + "\n")
        dvc.track(root, [root / "data" / "empty.csv", root / "data" / "nan_target.csv", root / "data" / "gone.csv"])
        (root / "data" / "gone.csv").unlink()
        yield root


@pytest.mark.parametrize(
    ("overrides", "message", "run_started"),
    [
        (
            ["model.estimator=sklearn.ensemble.RandomForestRegresor"],
            "mlkit.yaml: model.estimator: 'sklearn.ensemble.RandomForestRegresor' not found; did you mean "
            "sklearn.ensemble.RandomForestRegressor?",
            False,
        ),
        (
            ["params.estimator.n_estimatorz=10"],
            "params.yaml: estimator.n_estimatorz: not a parameter of sklearn.ensemble.RandomForestRegressor; "
            "did you mean 'n_estimators'?",
            False,
        ),
        (
            ["params.estimator.max_depth=deep"],
            "params.yaml: estimator.max_depth: The 'max_depth' parameter of RandomForestRegressor must be an int "
            "in the range [1, inf) or None. Got 'deep' instead.",
            False,
        ),
        (
            ["data.target=outcome"],
            "mlkit.yaml: data.target: column 'outcome' is not in data/diabetes.csv; columns (12): age, sex, bmi, bp, "
            "s1, s2, s3, s4, s5, s6, progression, bmi_x_bp",
            True,
        ),
        (
            ["data.hook=null", "data.target=progresion"],
            "mlkit.yaml: data.target: column 'progresion' is not in data/diabetes.csv (did you mean 'progression'?); "
            "columns (11): progression, age, sex, bmi, bp, s1, s2, s3, s4, s5, s6",
            False,
        ),
        (["data.train=data/empty.csv"], "data/empty.csv: the data has no rows", True),
        (
            ["data.train=data/nan_target.csv"],
            "data/nan_target.csv: target column 'progression' has 1 missing value(s)",
            True,
        ),
        (["data.train=data/gone.csv"], "data/gone.csv is tracked by DVC but missing from the workspace", False),
    ],
    ids=[
        "unknown-estimator",
        "unknown-param",
        "mistyped-param",
        "missing-target",
        "misspelled-target-no-hook",
        "empty-data",
        "nan-target",
        "not-pulled",
    ],
)
def test_failures_leave_no_model_version(failing, cli, overrides, message, run_started):
    root = failing
    client = _client(root)
    before_versions = len(_versions(root, "broken")) if (root / ".mlkit" / "mlflow.db").exists() else 0
    args = ["train"]
    for item in overrides:
        args += ["--set", item]
    result = cli(*args, cwd=root)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"error: {message}\n" in result.stderr
    assert "Traceback" not in result.output
    assert len(_versions(root, "broken")) == before_versions
    if run_started:
        experiment = client.get_experiment_by_name("broken")
        run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0]
        assert run.info.status == "FAILED"
        assert run.data.tags[tags.FAILURE] == message


def test_dirty_tree_is_refused_in_ci(failing, cli, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = cli("train", cwd=failing)  # the fixture's new .dvc files are uncommitted
    assert result.exit_code == ExitCode.USAGE
    assert "error: the git work tree has uncommitted changes and CI is set; refusing to train\n" in result.stderr
    assert "hint: commit the changes first, or pass --allow-dirty" in result.stderr


def test_dirty_run_logs_its_diff(failing, cli, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = cli(
        "train", "--allow-dirty", "--no-register", "--json", "--set", "params.estimator.n_estimators=5", cwd=failing
    )
    assert result.exit_code == 0, result.output
    run_id = json.loads(result.stdout)["run_id"]
    client = _client(failing)
    tag_values = client.get_run(run_id).data.tags
    assert tag_values[tags.GIT_DIRTY] == "true"
    diff = Path(client.download_artifacts(run_id, tag_values[tags.GIT_DIFF], str(failing / ".mlkit"))).read_text()
    assert "data/empty.csv.dvc" in diff


def test_inside_dvc_repro_the_lock_is_left_to_dvc(regression, monkeypatch):
    root, _ = regression
    before = (root / "dvc.lock").read_text()
    monkeypatch.setenv("DVC_STAGE", "train")
    result = train(load_project(root), TrainOptions(register=False, overrides={"params.estimator.n_estimators": 5}))
    assert result.stage_recorded is False
    assert (root / "dvc.lock").read_text() == before
