"""Settings name code (data.hook, model.entrypoint, model.estimator) only from the project's own package,
the estimator packages, or model.allow_modules; bad model settings and params are refused before any data
is read. docs/errors.md ("Hostile input") lists every case."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ESTIMATORS = "churn (the project's package), sklearn, xgboost, lightgbm, catboost"
TRUST = "(add a package you trust to model.allow_modules)"
MODEL_NAME_RULE = "must start with a letter or digit and contain only letters, digits, '.', '-' and '_'"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One project for every refusal: a refused command changes nothing in it."""
    from mlkit.scaffold import init_project

    base = tmp_path_factory.mktemp("code")
    yield Path(init_project("churn", directory=base / "churn", data_remote=base / "remote").root)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_refused_before_work(result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [f"error: {message}"]
    assert "loading" not in result.stderr and "opening the tracking store" not in result.stderr


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            ["data.hook=subprocess:call"],
            f"mlkit.yaml: data.hook: 'subprocess' is not an allowed package; allowed: churn (the project's "
            f"package) {TRUST}",
        ),
        (
            ["model.entrypoint=subprocess:call"],
            f"mlkit.yaml: model.entrypoint: 'subprocess' is not an allowed package; allowed: churn (the "
            f"project's package) {TRUST}",
        ),
        (
            ["model.estimator=os.system"],
            f"mlkit.yaml: model.estimator: 'os' is not an allowed package; allowed: {ESTIMATORS} {TRUST}",
        ),
        (  # a prefix of an allowed name is not that name
            ["model.estimator=sklearn_evil.Estimator"],
            f"mlkit.yaml: model.estimator: 'sklearn_evil' is not an allowed package; allowed: {ESTIMATORS} {TRUST}",
        ),
        (  # estimator packages are for estimators, not hooks
            ["data.hook=sklearn.utils:shuffle"],
            f"mlkit.yaml: data.hook: 'sklearn' is not an allowed package; allowed: churn (the project's "
            f"package) {TRUST}",
        ),
        (
            ["model.estimator=.sklearn.svm.SVC"],
            "mlkit.yaml: model.estimator: must be an import path like xgboost.XGBClassifier or "
            "sklearn.linear_model.Ridge",
        ),
        (
            ["model.estimator=sklearn..svm.SVC"],
            "mlkit.yaml: model.estimator: must be an import path like xgboost.XGBClassifier or "
            "sklearn.linear_model.Ridge",
        ),
        (  # a look-alike letter: not an ASCII identifier
            ["model.estimator=sklearn.svm.SV\u0421"],
            "mlkit.yaml: model.estimator: must be an import path like xgboost.XGBClassifier or "
            "sklearn.linear_model.Ridge",
        ),
        (
            ["data.hook=..churn.features:build_features"],
            "mlkit.yaml: data.hook: must look like package.module:function",
        ),
        (["data.hook=churn/features:build_features"], "mlkit.yaml: data.hook: must look like package.module:function"),
        (
            ["model.allow_modules=[subprocess]", "data.hook=subprocess:call"],
            "mlkit.yaml: model.allow_modules: 'subprocess' is a standard-library module: it cannot be allowed",
        ),
        (
            ["model.allow_modules=[mycompany.models]"],
            "mlkit.yaml: model.allow_modules: 'mycompany.models' must be a top-level package name like "
            "mycompany_models",
        ),
        (  # the project's package is a setting too: it cannot make the standard library the project's
            ["project.package=subprocess", "data.hook=subprocess:call"],
            "mlkit.yaml: data.hook: the project's package 'subprocess' is a standard-library module: code named "
            "by settings never comes from there",
        ),
        (
            ["project.package=elsewhere", "data.hook=elsewhere.features:build"],
            "mlkit.yaml: data.hook: the project's package 'elsewhere' is not under src/ (no "
            "src/elsewhere/__init__.py or src/elsewhere.py)",
        ),
        (
            ["project.package=churn-model"],
            "mlkit.yaml: project.package: must be a Python package name like churn_model (letters, digits and _)",
        ),
        # model names the registry would refuse after the whole training, or NAME@ALIAS would misread
        (["model.name=team/churn"], f"mlkit.yaml: model.name: 'team/churn' {MODEL_NAME_RULE}"),
        (["model.name=churn:v2"], f"mlkit.yaml: model.name: 'churn:v2' {MODEL_NAME_RULE}"),
        (["model.name=churn@v2"], f"mlkit.yaml: model.name: 'churn@v2' {MODEL_NAME_RULE}"),
        (["model.name=' churn'"], f"mlkit.yaml: model.name: ' churn' {MODEL_NAME_RULE}"),
        (["model.name=" + "c" * 300], "mlkit.yaml: model.name: is 300 characters long; at most 100 are allowed"),
        # params checked before the data is read
        (["params.seed=4294967296"], "params.yaml: seed: must be an integer from 0 to 4294967295, got 4294967296"),
        (["params.seed=-1"], "params.yaml: seed: must be an integer from 0 to 4294967295, got -1"),
        (["params.seed=yes"], "params.yaml: seed: must be an integer from 0 to 4294967295, got True"),
        (
            ["params.estimator.n_estimators=-5"],
            "params.yaml: estimator.n_estimators: must be at least 1 for xgboost.XGBClassifier, got -5",
        ),
        (
            ["params.estimator.subsample=1.5"],
            "params.yaml: estimator.subsample: must be in (0, 1] for xgboost.XGBClassifier, got 1.5",
        ),
        (
            ["model.estimator=sklearn.ensemble.RandomForestClassifier", "params.estimator={n_estimators: -5}"],
            "params.yaml: estimator.n_estimators: The 'n_estimators' parameter of RandomForestClassifier must be "
            "an int in the range [1, inf). Got -5 instead.",
        ),
        (
            ["model.estimator=sklearn.pipeline.Pipeline", "params.estimator={}"],
            "mlkit.yaml: model.estimator: sklearn.pipeline.Pipeline needs constructor arguments (steps), which "
            "params.yaml cannot give",
        ),
        (
            ["model.estimator=sklearn.ensemble.StackingClassifier", "params.estimator={}"],
            "mlkit.yaml: model.estimator: sklearn.ensemble.StackingClassifier needs constructor arguments "
            "(estimators), which params.yaml cannot give",
        ),
    ],
)
def test_bad_code_and_model_settings_are_refused_before_any_work(cli, project, settings, message):
    result = cli("train", *[arg for setting in settings for arg in ("--set", setting)], cwd=project)
    assert_refused_before_work(result, message)


@pytest.mark.parametrize("field", ["data.hook", "model.entrypoint"])
def test_a_function_an_allowed_module_imports_from_elsewhere_is_refused(cli, project, field):
    features = project / "src" / "churn" / "features.py"
    original = features.read_text()
    features.write_text(original + "\nfrom subprocess import call\n")
    try:
        result = cli("train", "--allow-dirty", "--set", f"{field}=churn.features:call", cwd=project)
    finally:
        features.write_text(original)
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        f"error: mlkit.yaml: {field}: churn.features:call is defined in subprocess, not in churn"
    ]


def test_a_module_in_the_project_folder_shadowing_an_estimator_package_is_refused(cli, project, tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    shadow = project / "sklearn.py"
    shadow.write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(project))  # as `python -m mlkit` puts the working directory first
    for name in [n for n in list(sys.modules) if n == "sklearn" or n.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, name)  # not imported yet, as in a fresh `mlkit train`
    try:
        result = cli(
            "train",
            "--set",
            "model.estimator=sklearn.linear_model.LogisticRegression",
            "--set",
            "params.estimator={}",
            cwd=project,
        )
    finally:
        shadow.unlink()
    assert_refused_before_work(
        result,
        "mlkit.yaml: model.estimator: 'sklearn' would be imported from sklearn.py inside the project, not from "
        "the installed package",
    )
    assert not marker.exists()


def test_allow_modules_extends_the_list_on_purpose(cli, make_project, tmp_path, monkeypatch):
    root = make_project()
    site = tmp_path / "site"
    (site / "mycompany_models").mkdir(parents=True)
    (site / "mycompany_models" / "__init__.py").write_text(
        "from sklearn.linear_model import LogisticRegression\n\n\n"
        "def build(params):\n    return LogisticRegression(max_iter=500)\n"
    )
    monkeypatch.syspath_prepend(str(site))
    refused = cli("train", "--set", "model.entrypoint=mycompany_models:build", cwd=root)
    assert refused.exit_code == 2, refused.output
    result = cli(
        "train",
        "--json",
        "--set",
        "model.allow_modules=[mycompany_models]",
        "--set",
        "model.entrypoint=mycompany_models:build",
        "--set",
        "params.estimator={}",
        cwd=root,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model_version"] == "1"
