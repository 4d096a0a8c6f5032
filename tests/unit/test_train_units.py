"""Pure training logic: estimator checks, data preparation, preprocessing, metrics, fingerprints."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest

from mlkit.errors import ExitCode, UsageError
from mlkit.training import datasets, evaluation, fitting
from mlkit.training.estimators import build_estimator, resolve_estimator
from mlkit.training.preprocessing import build_preprocessor, infer_columns


def test_unknown_estimator_module_is_a_usage_error():
    with pytest.raises(UsageError) as caught:
        resolve_estimator("sklearnx.linear_model.Ridge")
    assert caught.value.exit_code == ExitCode.USAGE
    assert caught.value.message.startswith("mlkit.yaml: model.estimator: cannot import module 'sklearnx.linear_model'")


def test_misspelled_estimator_class_suggests_the_right_one():
    with pytest.raises(UsageError) as caught:
        resolve_estimator("sklearn.ensemble.RandomForestClassifer")
    assert caught.value.message == (
        "mlkit.yaml: model.estimator: 'sklearn.ensemble.RandomForestClassifer' not "
        "found; did you mean sklearn.ensemble.RandomForestClassifier?"
    )


def test_a_function_is_not_an_estimator():
    with pytest.raises(UsageError) as caught:
        resolve_estimator("sklearn.metrics.f1_score")
    assert caught.value.message == (
        "mlkit.yaml: model.estimator: 'sklearn.metrics.f1_score' is not a "
        "scikit-learn compatible estimator class (needs fit and get_params)"
    )


def test_regressor_for_classification_is_refused():
    with pytest.raises(UsageError) as caught:
        build_estimator("sklearn.linear_model.Ridge", {}, seed=1, task="classification")
    assert caught.value.message == (
        "mlkit.yaml: model.estimator: sklearn.linear_model.Ridge is a regressor but model.task is classification"
    )


def test_unknown_param_names_the_file_and_suggests():
    with pytest.raises(UsageError) as caught:
        build_estimator("xgboost.XGBClassifier", {"max_dept": 3}, seed=1, task="classification")
    assert caught.value.message == (
        "params.yaml: estimator.max_dept: not a parameter of xgboost.XGBClassifier; did you mean 'max_depth'?"
    )


def test_every_unknown_param_is_reported_at_once():
    # switching the estimator with --set keeps the old estimator's params: all of them must be named
    params = {"n_estimators": 10, "learning_rate": 0.1, "subsample": 0.9, "colsample_bytree": 0.9, "max_dept": 3}
    with pytest.raises(UsageError) as caught:
        build_estimator("sklearn.ensemble.RandomForestClassifier", params, seed=1, task="classification")
    assert caught.value.exit_code == ExitCode.USAGE
    assert caught.value.message == (
        "params.yaml: 4 params are not parameters of sklearn.ensemble.RandomForestClassifier: "
        "estimator.learning_rate, estimator.subsample (did you mean 'max_samples'?), estimator.colsample_bytree, "
        "estimator.max_dept (did you mean 'max_depth'?)"
    )
    assert caught.value.hint == "fix params.yaml or the --set override (params.estimator.* must fit model.estimator)"


def test_every_mistyped_xgboost_value_is_reported_at_once():
    with pytest.raises(UsageError) as caught:
        build_estimator(
            "xgboost.XGBClassifier", {"max_depth": "deep", "subsample": "most"}, seed=1, task="classification"
        )
    assert caught.value.message == (
        "params.yaml: estimator.max_depth: must be an integer for xgboost.XGBClassifier, got 'deep'; "
        "estimator.subsample: must be a number for xgboost.XGBClassifier, got 'most'"
    )


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        (
            "xgboost.XGBClassifier",
            {"max_depth": "deep"},
            "params.yaml: estimator.max_depth: must be an integer for xgboost.XGBClassifier, got 'deep'",
        ),
        (
            "xgboost.XGBRegressor",
            {"learning_rate": "fast"},
            "params.yaml: estimator.learning_rate: must be a number for xgboost.XGBRegressor, got 'fast'",
        ),
        (
            "sklearn.ensemble.RandomForestRegressor",
            {"n_estimators": "many"},
            "params.yaml: estimator.n_estimators: The 'n_estimators' parameter of RandomForestRegressor must be an "
            "int in the range [1, inf). Got 'many' instead.",
        ),
    ],
)
def test_mistyped_param_values_are_refused_before_fitting(path, params, message):
    task = "classification" if "Classifier" in path else "regression"
    with pytest.raises(UsageError) as caught:
        build_estimator(path, params, seed=1, task=task)
    assert caught.value.message == message


def test_seed_reaches_random_state_and_xgboost_is_deterministic():
    forest = build_estimator("sklearn.ensemble.RandomForestRegressor", {"n_estimators": 5}, seed=7, task="regression")
    assert forest.get_params()["random_state"] == 7
    booster = build_estimator("xgboost.XGBClassifier", {}, seed=3, task="classification")
    params = booster.get_params()
    assert (params["random_state"], params["tree_method"], params["device"]) == (3, "hist", "cpu")


def test_prepare_encodes_string_labels_sorted():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["benign", "malignant", "benign"]})
    data = datasets.prepare(frame, target="y", drop=[], task="classification", source="d.csv")
    assert data.target.tolist() == [0, 1, 0]
    assert data.label_mapping == {"0": "benign", "1": "malignant"}
    assert list(data.features.columns) == ["x"]


@pytest.mark.parametrize(
    ("frame", "target", "message"),
    [
        (pd.DataFrame({"x": [1.0], "y": ["a"]}).iloc[:0], "y", "d.csv: the data has no rows"),
        (
            pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]}),
            "label",
            "mlkit.yaml: data.target: column 'label' is not in d.csv; columns (2): x, y",
        ),
        (
            pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", None, "b"]}),
            "y",
            "d.csv: target column 'y' has 1 missing value(s)",
        ),
        (pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "a"]}), "y", "d.csv: target column 'y' has a single class 'a'"),
    ],
)
def test_prepare_refuses_bad_data(frame, target, message):
    with pytest.raises(UsageError) as caught:
        datasets.prepare(frame, target=target, drop=[], task="classification", source="d.csv")
    assert caught.value.message == message


def test_missing_data_file_says_to_pull(tmp_path):
    with pytest.raises(UsageError) as caught:
        datasets.read_table(tmp_path / "train.csv")
    assert caught.value.message == f"train.csv: data file not found at {tmp_path / 'train.csv'}"
    assert caught.value.hint == "run `mlkit data pull` (or `dvc pull`) to fetch the data"


def test_missing_values_and_string_categories_work_out_of_the_box():
    frame = pd.DataFrame(
        {
            "age": [30.0, None, 45.0, 52.0, None, 23.0, 40.0, 33.0],
            "plan": ["basic", "pro", None, "pro", "basic", "basic", None, "pro"],
            "active": [True, False, True, True, False, True, False, True],
        }
    )
    y = np.array([0, 1, 0, 1, 1, 0, 1, 0])
    numeric, categorical = infer_columns(frame, None, None)
    assert (numeric, categorical) == (["age"], ["plan", "active"])
    estimator = build_estimator("sklearn.linear_model.LogisticRegression", {}, seed=0, task="classification")
    fitted = fitting.fit_model(estimator, frame, y, preprocessor=build_preprocessor(numeric, categorical))
    assert fitted.pipeline.predict(frame).shape == (8,)
    assert "plan_pro" in fitted.feature_names()


def test_listed_columns_win_over_dtypes():
    frame = pd.DataFrame({"zip": [10115, 10117], "income": [1.0, 2.0]})
    assert infer_columns(frame, None, ["zip"]) == (["income"], ["zip"])


def test_unknown_backend_is_refused():
    with pytest.raises(UsageError) as caught:
        fitting.check_backend("spark")
    assert caught.value.message == (
        "mlkit.yaml: training.backend: 'spark' is not available in this version of mlkit; available: local, dask"
    )


def test_metrics_binary_and_regression():
    y = np.array([0, 1, 1, 0])
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    predicted = scores.argmax(axis=1)
    got = evaluation.compute_metrics(
        ["accuracy", "f1", "roc_auc", "precision", "recall", "log_loss"], "classification", y, predicted, scores
    )
    assert got["accuracy"] == 0.75 and got["precision"] == 1.0 and got["recall"] == 0.5
    assert got["roc_auc"] == 1.0
    assert math.isclose(got["f1"], 2 / 3)
    reg = evaluation.compute_metrics(
        ["rmse", "mae", "r2"], "regression", np.array([1.0, 2.0]), np.array([1.0, 4.0]), None
    )
    assert reg == {"rmse": math.sqrt(2.0), "mae": 1.0, "r2": -7.0}


def test_multiclass_metrics_are_weighted():
    y = np.array([0, 1, 2, 2])
    scores = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.5, 0.3, 0.2]])
    got = evaluation.compute_metrics(["accuracy", "f1", "roc_auc"], "classification", y, scores.argmax(1), scores)
    assert got["accuracy"] == 0.75
    assert 0.0 < got["f1"] < 1.0 and 0.0 < got["roc_auc"] <= 1.0


def test_xgboost_early_stopping_logs_rounds_and_best_iteration():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = (frame["a"] + 0.1 * rng.normal(size=300) > 0).astype(int).to_numpy()
    estimator = build_estimator(
        "xgboost.XGBClassifier", {"n_estimators": 500, "learning_rate": 0.3}, seed=0, task="classification"
    )
    fitted = fitting.fit_model(
        estimator,
        frame.iloc[:200],
        y[:200],
        preprocessor=build_preprocessor(["a", "b"], []),
        eval_sets=[("train", frame.iloc[:200], y[:200]), ("validation", frame.iloc[200:], y[200:])],
        early_stopping_rounds=5,
    )
    assert set(fitted.history_) == {"xgb.train.logloss", "xgb.validation.logloss"}
    assert fitted.best_iteration_ is not None
    assert len(fitted.history_["xgb.validation.logloss"]) == fitted.best_iteration_ + 6 < 500


def test_signals_inside_training_raise_keyboard_interrupt_and_are_remembered():
    import os
    import signal

    from mlkit.training import interrupts

    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), interrupts.handle_signals():
        assert not interrupts.requested()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0.1) if hasattr(signal, "sigtimedwait") else None
        except KeyboardInterrupt:
            assert interrupts.requested()  # still known if a native library swallowed the exception
            raise
    assert not interrupts.requested()
    assert signal.getsignal(signal.SIGTERM) is previous


def test_project_imports_never_change_sys_path_in_place(tmp_path):
    """Another thread (the tracking store opening in the background) may be walking sys.path in an import:
    the project's src/ is put in front by rebinding the list, so that walk never skips an entry."""
    import sys

    from mlkit.training.datasets import _project_imports

    before = sys.path
    snapshot = list(before)
    with _project_imports(tmp_path, "somepkg"):
        assert sys.path[0] == str((tmp_path / "src").resolve())
        assert before == snapshot
    assert sys.path is before and before == snapshot


def test_a_client_leaves_mlflows_process_wide_uris_alone(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from mlflow.tracking._tracking_service import utils as tracking_utils

    from mlkit.engines import mlflow

    # an earlier test in the same process may have set it through MLflow's own API: start from unset
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    uri = f"sqlite:///{tmp_path / 'state' / 'mlflow.db'}"
    client = mlflow.client(SimpleNamespace(tracking_uri=uri, state_dir=tmp_path / "state"))
    assert client.tracking_uri == uri
    assert tracking_utils._tracking_uri is None
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ


def test_the_fluent_api_points_at_the_store_for_one_block_only(monkeypatch):
    from mlflow import get_registry_uri, get_tracking_uri

    from mlkit.engines import mlflow

    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:///user-registry.db")
    with mlflow.fluent_store("sqlite:///inside.db"):
        assert get_tracking_uri() == "sqlite:///inside.db"
        assert get_registry_uri() == "sqlite:///inside.db"
        assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///inside.db"
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert os.environ["MLFLOW_REGISTRY_URI"] == "sqlite:///user-registry.db"
    assert get_registry_uri() == "sqlite:///user-registry.db"


class _FakeProcess:
    pid = 4242

    def __init__(self, outcome):
        self.outcome, self.terminated = outcome, False

    def wait(self, timeout=None):
        if isinstance(self.outcome, BaseException) and not self.terminated:
            raise self.outcome
        return 0 if self.terminated else self.outcome


@pytest.mark.parametrize("outcome", [0, 1, KeyboardInterrupt()], ids=["stopped", "failed", "interrupted"])
def test_the_ui_runs_until_it_exits_and_is_stopped_on_ctrl_c(tmp_path, monkeypatch, outcome):
    import signal
    import subprocess
    from types import SimpleNamespace

    from mlkit import runs
    from mlkit.errors import OperationError

    process = _FakeProcess(outcome)
    started, signalled = {}, []

    def popen(argv, cwd, env, start_new_session):
        started.update(argv=argv, cwd=cwd, start_new_session=start_new_session, store=env["MLFLOW_BACKEND_STORE_URI"])
        return process

    def killpg(pgid, sig):
        signalled.append((pgid, sig))
        process.terminated = True

    monkeypatch.setattr(runs, "ui_command", lambda project, port: ["mlflow", "ui", "--port", str(port)])
    monkeypatch.setattr(runs, "_port_in_use", lambda port: False)
    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(runs.os, "killpg", killpg)
    said = []
    project = SimpleNamespace(root=tmp_path, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    if outcome == 0:
        runs.open_ui(project, port=5001, progress=said.append)
    elif outcome == 1:
        with pytest.raises(OperationError) as raised:
            runs.open_ui(project, port=5001, progress=said.append)
        assert raised.value.message == "mlflow ui exited with status 1"
        assert raised.value.hint == "run again with --debug, or see MLflow's messages above"
    else:
        with pytest.raises(KeyboardInterrupt):
            runs.open_ui(project, port=5001, progress=said.append)
        # the UI runs in its own process group: its workers are stopped with it
        assert signalled == [(4242, signal.SIGTERM)]
    assert started == {
        "argv": ["mlflow", "ui", "--port", "5001"],
        "cwd": tmp_path,
        "start_new_session": True,
        "store": project.tracking_uri,  # in the environment, never on the command line
    }
    assert said == ["MLflow UI on http://127.0.0.1:5001 (Ctrl-C to stop)"]


def test_the_ui_refuses_a_busy_port_before_starting_anything(tmp_path, monkeypatch):
    import socket
    import subprocess
    from types import SimpleNamespace

    from mlkit import runs

    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("nothing may start"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        said = []
        with pytest.raises(UsageError) as raised:
            runs.open_ui(SimpleNamespace(root=tmp_path, tracking_uri="sqlite:///x.db"), port=port, progress=said.append)
    assert raised.value.exit_code == ExitCode.USAGE
    assert raised.value.message == f"port {port} on 127.0.0.1 is already in use (another server?)"
    assert raised.value.hint == f"choose another port, e.g. `mlkit ui --port {port + 1}`"
    assert said == []


def test_the_ui_of_a_tracking_server_is_the_server_itself(tmp_path, monkeypatch):
    import subprocess
    from types import SimpleNamespace

    from mlkit import runs

    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("nothing may start"))
    said = []
    project = SimpleNamespace(root=tmp_path, tracking_uri="https://ops:s3cret@mlflow.example.com:8443/")
    runs.open_ui(project, port=5000, progress=said.append)
    assert said == [
        "the project tracks to a server: its UI is https://mlflow.example.com:8443/ (mlkit ui starts nothing)"
    ]


def test_the_ui_port_must_be_a_port(tmp_path):
    from types import SimpleNamespace

    from mlkit import runs

    with pytest.raises(UsageError) as raised:
        runs.open_ui(SimpleNamespace(root=tmp_path, tracking_uri="sqlite:///x.db"), port=70000)
    assert raised.value.message == "--port 70000: must be between 1 and 65535"


def test_a_failing_hook_is_named_with_its_file_line_and_exception(tmp_path):
    from mlkit.errors import OperationError

    package = tmp_path / "src" / "hookpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "features.py").write_text(
        "def build(frame):\n    frame = frame.copy()\n    frame['ratio'] = frame['mean_area'] / 2\n    return frame\n"
    )
    with pytest.raises(OperationError) as caught:
        datasets.apply_hook(pd.DataFrame({"x": [1.0]}), "hookpkg.features:build", tmp_path)
    assert caught.value.exit_code == ExitCode.FAILED
    assert caught.value.message == (
        "mlkit.yaml: data.hook: hookpkg.features:build failed at src/hookpkg/features.py:3: KeyError: 'mean_area'"
    )
    assert caught.value.hint == "fix the hook or the data it expects; run again with --debug for the traceback"


def _project_files(root, *, target, drop=(), hook=None):
    import yaml

    (root / "data").mkdir()
    columns = [f"feature_{i}" for i in range(29)] + ["diagnosis_code", "label"]
    (root / "data" / "train.csv").write_text(",".join(columns) + "\n" + ",".join("1" for _ in columns) + "\n")
    config = {
        "version": 1,
        "project": {"name": "wrong", "package": "wrong"},
        "data": {"train": "data/train.csv", "target": target, "drop": list(drop), "hook": hook},
        "model": {"name": "wrong", "task": "classification", "estimator": "sklearn.linear_model.LogisticRegression"},
    }
    (root / "mlkit.yaml").write_text(yaml.safe_dump(config))
    return columns


def test_a_wrong_target_lists_every_column_closest_first_before_mlflow_is_imported(tmp_path):
    import subprocess
    import sys

    columns = _project_files(tmp_path, target="diagnosis")
    code = (
        "import sys, time\nfrom mlkit.errors import UsageError\nfrom mlkit.project import load_project\n"
        "from mlkit.training import train\nstarted = time.perf_counter()\n"
        "try:\n    train(load_project())\nexcept UsageError as exc:\n    print(exc.exit_code.value)\n"
        "    print(exc.message)\n    print(exc.hint)\n"
        "print(','.join(m for m in ('mlflow', 'dvc') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True, timeout=300
    )
    others = [c for c in columns if c != "diagnosis_code"]
    assert result.stdout.splitlines() == [
        "2",
        "mlkit.yaml: data.target: column 'diagnosis' is not in data/train.csv (did you mean 'diagnosis_code'?); "
        "columns (31): diagnosis_code, " + ", ".join(others),
        "fix data.target in mlkit.yaml",
        "",
    ]


def test_unknown_drop_columns_are_all_refused_from_the_header(tmp_path):
    from mlkit.project import load_project
    from mlkit.training.runner import check_columns

    _project_files(tmp_path, target="label", drop=["feature_1", "labl", "nope"])
    with pytest.raises(UsageError) as caught:
        check_columns(load_project(tmp_path))
    assert caught.value.message.startswith(
        "mlkit.yaml: data.drop: columns 'labl', 'nope' are not in data/train.csv (did you mean 'label'?); "
        "columns (31): label, feature_0,"
    )
    assert caught.value.hint == "fix data.drop in mlkit.yaml"
    # with a feature hook the columns are only known after it ran: nothing is refused here
    (tmp_path / "src" / "wrong").mkdir(parents=True)
    (tmp_path / "src" / "wrong" / "__init__.py").write_text("")
    (tmp_path / "mlkit.yaml").write_text((tmp_path / "mlkit.yaml").read_text().replace("hook: null", "hook: wrong.m:f"))
    check_columns(load_project(tmp_path))


def test_a_small_test_split_is_warned_about():
    assert evaluation.split_warnings(np.zeros(30), "regression") == []
    assert evaluation.split_warnings(np.zeros(4), "regression") == [
        "the test split has only 4 rows (fewer than 30): its metrics are unreliable; "
        "use more data or a larger test_size"
    ]
    labels = np.array([0] * 40 + [1] * 3)
    assert evaluation.split_warnings(labels, "classification", ["benign", "malignant"]) == [
        "class 'malignant' has only 3 rows in the test split (fewer than 5): its metrics are unreliable"
    ]


def test_the_result_names_the_dask_backend_and_its_scheduler_redacted():
    from mlkit.training.runner import describe_backend

    assert describe_backend("local", None) == ("local", None)
    assert describe_backend("dask", "tcp://ops:s3cret@10.0.0.5:8786") == ("dask", "tcp://ops:***@10.0.0.5:8786")


class _Runs:
    """A tracking client holding runs with the given ids, for run id resolution."""

    def __init__(self, *run_ids):
        from types import SimpleNamespace

        self.runs = [SimpleNamespace(info=SimpleNamespace(run_id=r)) for r in run_ids]

    def search_experiments(self, **kwargs):
        from types import SimpleNamespace

        return [SimpleNamespace(experiment_id="1")]

    def search_runs(self, experiment_ids, **kwargs):
        return list(self.runs)

    def search_model_versions(self, query):
        return []

    def get_run(self, run_id):
        from mlflow.exceptions import MlflowException

        for run in self.runs:
            if run.info.run_id == run_id:
                return run
        raise MlflowException(f"Run '{run_id}' not found")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2d661", "run id prefix '2d661' is too short: give at least 6 characters"),
        (
            "2d661e",
            "run id prefix '2d661e' is ambiguous: it matches 2d661e3fce22aaaa0000000000000001, "
            "2d661e3fce22bbbb0000000000000002",
        ),
        ("ffffff", "run 'ffffff' not found in the tracking store"),
    ],
)
def test_run_ids_by_unique_prefix_as_git_does(text, message):
    from mlkit.runs import resolve_run

    client = _Runs(
        "2d661e3fce22aaaa0000000000000001", "2d661e3fce22bbbb0000000000000002", "9a0b1c2d3e4f00000000000000000003"
    )
    assert resolve_run(client, "9a0b1c").info.run_id == "9a0b1c2d3e4f00000000000000000003"
    assert resolve_run(client, "2d661e3fce22bbbb").info.run_id == "2d661e3fce22bbbb0000000000000002"
    with pytest.raises(UsageError) as caught:
        resolve_run(client, text)
    assert caught.value.exit_code == ExitCode.USAGE
    assert caught.value.message == message


def test_reproduce_takes_a_run_id_prefix_too():
    from mlkit.reproduction import resolve_target

    client = _Runs("9a0b1c2d3e4f00000000000000000003")
    run, name, versions = resolve_target(client, "9a0b1c2d")
    assert (run.info.run_id, name, versions) == ("9a0b1c2d3e4f00000000000000000003", None, [])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_estimators": -5}, "estimator.n_estimators: must be at least 1 for xgboost.XGBRegressor, got -5"),
        ({"max_depth": -1}, "estimator.max_depth: must be at least 0 for xgboost.XGBRegressor, got -1"),
        ({"learning_rate": 0}, None),
        ({"learning_rate": 1.5}, "estimator.learning_rate: must be in [0, 1] for xgboost.XGBRegressor, got 1.5"),
        ({"subsample": 0.0}, "estimator.subsample: must be in (0, 1] for xgboost.XGBRegressor, got 0.0"),
        ({"reg_lambda": float("nan")}, "estimator.reg_lambda: must be in [0, inf) for xgboost.XGBRegressor, got nan"),
        ({"n_estimators": 1, "max_depth": 0, "subsample": 1.0}, None),
    ],
)
def test_xgboost_params_out_of_range_are_refused_before_fit(params, message):
    if message is None:
        build_estimator("xgboost.XGBRegressor", params, seed=1, task="regression")
        return
    with pytest.raises(UsageError) as caught:
        build_estimator("xgboost.XGBRegressor", params, seed=1, task="regression")
    assert caught.value.message == f"params.yaml: {message}"


def test_an_estimator_needing_constructor_arguments_is_refused():
    with pytest.raises(UsageError) as caught:
        build_estimator("sklearn.ensemble.VotingClassifier", {}, seed=1, task="classification")
    assert caught.value.message == (
        "mlkit.yaml: model.estimator: sklearn.ensemble.VotingClassifier needs constructor arguments "
        "(estimators), which params.yaml cannot give"
    )
