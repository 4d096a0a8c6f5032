from pathlib import Path

import pytest
import yaml

from mlkit.config import apply_assignments, flatten, load_config, parse_assignment, parse_overrides
from mlkit.errors import ConfigError, ExitCode

BASE = {
    "version": 1,
    "project": {"name": "churn", "package": "churn"},
    "data": {"train": "data/train.csv", "target": "label"},
    "model": {"name": "churn", "task": "classification", "estimator": "xgboost.XGBClassifier"},
}


def write(root: Path, config: dict, params: dict | None = None) -> Path:
    (root / "mlkit.yaml").write_text(yaml.safe_dump(config))
    if params is not None:
        (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def with_(path: str, value) -> dict:
    config = yaml.safe_load(yaml.safe_dump(BASE))
    return apply_assignments(config, [(path.split("."), value)])


def test_defaults_are_filled_in(tmp_path):
    config, params = load_config(write(tmp_path, BASE))
    assert config.stages == ["staging", "production"]
    assert config.metrics == ["accuracy", "f1", "roc_auc", "precision", "recall", "log_loss"]
    assert params.seed == 42 and params.test_size == 0.2 and params.estimator == {}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (with_("model.task", "classify"), "mlkit.yaml: model.task: must be 'classification' or 'regression'"),
        (
            with_("model.estimator", "XGBClassifier"),
            "mlkit.yaml: model.estimator: must be an import path like xgboost.XGBClassifier or "
            "sklearn.linear_model.Ridge",
        ),
        (
            with_("model.colour", "red"),
            "mlkit.yaml: model.colour: unknown field; allowed: name, task, estimator, entrypoint, allow_modules",
        ),
        (with_("data.train", "data/train.xlsx"), "mlkit.yaml: data.train: must be a .csv or .parquet file"),
        (
            with_("training.metrics", ["rmse"]),
            "mlkit.yaml: training.metrics: 'rmse' is not a classification metric; allowed: accuracy, f1, roc_auc, "
            "precision, recall, log_loss",
        ),
        (
            with_("promotion", {"prod": {"thresholds": ["f1 >= 0.9"]}}),
            "mlkit.yaml: promotion.prod: is not a stage; stages are staging, production",
        ),
        (
            with_("promotion", {"staging": {"thresholds": ["f1 => 0.9"]}}),
            "mlkit.yaml: promotion.staging.thresholds: 'f1 => 0.9' must look like 'f1 >= 0.85' (operators >=, >, "
            "<=, <, ==)",
        ),
        (
            with_("promotion", {"staging": {"thresholds": ["rmse <= 3"]}}),
            "mlkit.yaml: promotion.staging.thresholds: unknown metric 'rmse'; allowed: accuracy, f1, roc_auc, "
            "precision, recall, log_loss",
        ),
        (with_("stages", ["staging", "staging"]), "mlkit.yaml: stages: stage names must be unique"),
        (with_("ci.python", "three"), "mlkit.yaml: ci.python: must be a Python version like 3.11"),
        ({k: v for k, v in BASE.items() if k != "data"}, "mlkit.yaml: data: is required"),
    ],
)
def test_bad_settings_name_file_field_and_what_is_allowed(tmp_path, config, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, config))
    assert info.value.message == message
    assert info.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"test_size": 1.5}, "params.yaml: test_size: Input should be less than 1"),
        ({"cv_folds": 1}, "params.yaml: cv_folds: must be 0 (single split) or at least 2"),
        ({"seed": "abc"}, "params.yaml: seed: Input should be a valid integer, unable to parse string as an integer"),
        ([1, 2], "params.yaml: must be a mapping of settings, got list"),
    ],
)
def test_bad_params(tmp_path, params, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, BASE, params))
    assert info.value.message == message


def test_invalid_yaml_names_the_line(tmp_path):
    (tmp_path / "mlkit.yaml").write_text("version: 1\nproject: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.message.startswith("mlkit.yaml: not valid YAML (line ")


def test_layering_defaults_file_environment_flags(tmp_path):
    config = with_("tracking.experiment", "from-file")
    root = write(tmp_path, config, {"seed": 1, "estimator": {"max_depth": 3}})
    env = {"MLKIT_EXPERIMENT": "from-env", "MLKIT_TRACKING_URI": "http://127.0.0.1:5000"}
    resolved, params = load_config(root, {}, env)
    assert resolved.tracking.experiment == "from-env"
    assert resolved.tracking.uri == "http://127.0.0.1:5000"
    resolved, params = load_config(
        root, {"tracking.experiment": "from-flag", "params.estimator.max_depth": 6, "params.seed": 7}, env
    )
    assert resolved.tracking.experiment == "from-flag"
    assert params.seed == 7 and params.estimator == {"max_depth": 6}


def test_mlkit_variable_wins_over_mlflow_variable(tmp_path):
    root = write(tmp_path, BASE)
    env = {"MLFLOW_TRACKING_URI": "http://a:1", "MLKIT_TRACKING_URI": "http://b:2"}
    assert load_config(root, {}, env)[0].tracking.uri == "http://b:2"
    assert load_config(root, {}, {"MLFLOW_TRACKING_URI": "http://a:1"})[0].tracking.uri == "http://a:1"


@pytest.mark.parametrize("text", ["novalue", "=3", "a..b=1"])
def test_bad_assignment(text):
    with pytest.raises(ConfigError) as info:
        parse_assignment(text)
    assert info.value.message == f"--set {text!r}: must look like KEY=VALUE, e.g. params.estimator.max_depth=6"


def test_assignment_values_are_yaml_typed():
    assert parse_assignment("params.a.b=6") == (["params", "a", "b"], 6)
    assert parse_assignment("x=0.5") == (["x"], 0.5)
    assert parse_assignment("x=true") == (["x"], True)
    assert parse_assignment("x=[1, 2]") == (["x"], [1, 2])
    assert parse_assignment("x=hello") == (["x"], "hello")


def test_set_strings_become_a_mapping_in_command_line_order():
    assert parse_overrides(["params.seed=7", "tracking.experiment=exp2", "params.estimator={}"]) == {
        "params.seed": 7,
        "tracking.experiment": "exp2",
        "params.estimator": {},
    }
    # a repeated key keeps its last value, applied after what came between
    overrides = parse_overrides(["params.estimator.max_depth=3", "params.estimator={}", "params.estimator.max_depth=5"])
    assert list(overrides.items()) == [("params.estimator", {}), ("params.estimator.max_depth", 5)]


def test_set_params_alone_is_refused():
    with pytest.raises(ConfigError) as info:
        parse_overrides(["params=7"])
    assert info.value.message == "--set 'params=7': name a parameter, e.g. params.seed=7"


def test_overrides_are_applied_in_order_and_left_unchanged(tmp_path):
    root = write(tmp_path, BASE, {"estimator": {"max_depth": 3, "n_estimators": 10}})
    overrides = {"params.estimator": {}, "params.estimator.max_depth": 5}
    _, params = load_config(root, overrides, {})
    assert params.estimator == {"max_depth": 5}
    assert overrides == {"params.estimator": {}, "params.estimator.max_depth": 5}


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("params", "override 'params': name a parameter, e.g. params.seed"),
        ("a..b", "override 'a..b': must be a dotted key, e.g. params.estimator.max_depth"),
    ],
)
def test_bad_override_keys(tmp_path, key, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, BASE), {key: 1}, {})
    assert info.value.message == message


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": {}}) == {"a.b": 1, "a.c.d": 2, "e": {}}
