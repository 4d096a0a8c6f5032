"""Which code settings may name: by name, on disk, and where the imported object is defined."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlkit import allowed_code
from mlkit.errors import ConfigError, ExitCode


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("model.estimator", "sklearn.svm.SVC", True),
        ("model.estimator", "xgboost.XGBRegressor", True),
        ("model.estimator", "lightgbm.LGBMClassifier", True),
        ("model.estimator", "catboost.CatBoostClassifier", True),
        ("model.estimator", "churn.model.Estimator", True),
        ("model.estimator", "mycompany_models.Estimator", False),
        ("model.estimator", "sklearnx.svm.SVC", False),
        ("model.estimator", "os.system", False),
        ("model.estimator", "builtins.object", False),
        ("data.hook", "churn.features:build", True),
        ("data.hook", "churn_evil.features:build", False),
        ("data.hook", "sklearn.utils:shuffle", False),
        ("model.entrypoint", "subprocess:call", False),
        ("model.entrypoint", "xgboost.core:Booster", False),
        ("model.estimator", ".sklearn.svm.SVC", False),
        ("model.estimator", "sklearn..svm.SVC", False),
        ("data.hook", "churn.features\n:build", False),
        ("data.hook", "churn.fe\u0430tures:build", False),  # a Cyrillic letter
    ],
)
def test_refusal_by_the_top_level_package(field, value, allowed):
    assert (allowed_code.refusal(field, value, "churn", []) is None) is allowed


def test_allow_modules_extends_every_code_setting():
    for field in ("model.estimator", "model.entrypoint", "data.hook"):
        assert allowed_code.refusal(field, "mycompany_models.x:y", "churn", ["mycompany_models"]) is None
        assert allowed_code.refusal(field, "mycompany.x:y", "churn", ["mycompany_models"]) is not None


@pytest.mark.parametrize("name", ["os", "subprocess", "sys", "posix", "builtins", "importlib", "mlkit"])
def test_the_standard_library_and_mlkit_are_never_allowed(name):
    assert allowed_code.never_allowed(name)
    assert allowed_code.refusal("data.hook", f"{name}:f", name, []) is not None


def test_the_project_package_must_be_under_src(tmp_path):
    with pytest.raises(ConfigError) as caught:
        allowed_code.check_sources(tmp_path, "churn", [("data.hook", "churn.features:build")])
    assert caught.value.exit_code == ExitCode.USAGE
    assert caught.value.message == (
        "mlkit.yaml: data.hook: the project's package 'churn' is not under src/ "
        "(no src/churn/__init__.py or src/churn.py)"
    )
    (tmp_path / "src" / "churn").mkdir(parents=True)  # a namespace folder: a same-named module elsewhere wins
    with pytest.raises(ConfigError):
        allowed_code.check_sources(tmp_path, "churn", [("data.hook", "churn.features:build")])
    (tmp_path / "src" / "churn" / "__init__.py").write_text("")
    allowed_code.check_sources(tmp_path, "churn", [("data.hook", "churn.features:build")])


def test_an_estimator_package_in_src_would_shadow_the_installed_one(tmp_path):
    (tmp_path / "src" / "xgboost").mkdir(parents=True)
    (tmp_path / "src" / "xgboost" / "__init__.py").write_text("")
    with pytest.raises(ConfigError) as caught:
        allowed_code.check_sources(tmp_path, "churn", [("model.estimator", "xgboost.XGBClassifier")])
    assert caught.value.message == (
        "mlkit.yaml: model.estimator: 'xgboost' would be imported from src/xgboost/__init__.py inside the "
        "project, not from the installed package"
    )


def test_an_object_must_be_defined_in_the_package_it_is_named_by():
    from collections import OrderedDict

    allowed_code.defined_in(OrderedDict, "collections.OrderedDict", "model.estimator")
    with pytest.raises(ConfigError) as caught:
        allowed_code.defined_in(subprocess.call, "churn.features:call", "data.hook")
    assert caught.value.message == "mlkit.yaml: data.hook: churn.features:call is defined in subprocess, not in churn"


def test_a_refused_hook_is_refused_before_mlflow_or_pandas_is_imported(tmp_path):
    import yaml

    config = {
        "version": 1,
        "project": {"name": "churn", "package": "churn"},
        "data": {"train": "data/train.csv", "target": "label", "hook": "subprocess:call"},
        "model": {"name": "churn", "task": "classification", "estimator": "sklearn.svm.SVC"},
    }
    (tmp_path / "mlkit.yaml").write_text(yaml.safe_dump(config))
    code = (
        "import sys\nfrom mlkit.errors import ConfigError\nfrom mlkit.project import load_project\n"
        "try:\n    load_project()\nexcept ConfigError as exc:\n    print(exc.message)\n"
        "print(sorted(m for m in ('mlflow', 'pandas', 'sklearn', 'xgboost') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "mlkit.yaml: data.hook: 'subprocess' is not an allowed package; allowed: churn (the project's package) "
        "(add a package you trust to model.allow_modules)",
        "[]",
    ]


def test_a_stdlib_project_package_is_named_in_the_refusal():
    assert allowed_code.refusal("data.hook", "churn.features:build", "os", []) == (
        "'churn' is not an allowed package; allowed: none (project.package: 'os' is a standard-library module) "
        "(add a package you trust to model.allow_modules)"
    )
