"""A new user's own data from the first command: `mlkit init --data`, `mlkit data replace`, `mlkit data remove`,
against real git, real DVC (a local remote in tmp_path) and the real MLflow SQLite store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import git
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from mlkit import tags
from mlkit.config import load_config

DVC = str(Path(sys.executable).with_name("dvc"))


def flowers(rows: int = 300, seed: int = 0, target: str = "species") -> pd.DataFrame:
    """A seeded table like a user's: string columns, missing values, a three-class string target."""
    rng = np.random.default_rng(seed)
    species = rng.choice(["setosa", "versicolor", "virginica"], rows)
    centre = {"setosa": 1.0, "versicolor": 2.5, "virginica": 4.0}
    width = rng.normal(0.0, 1.0, rows)
    width[rng.random(rows) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "petal_length": [centre[s] + rng.normal(0.0, 0.4) for s in species],
            "colour": rng.choice(np.array(["red", "blue", "white", None], dtype=object), rows),
            "width": width,
            target: species,
        }
    )


def prices(rows: int = 300, seed: int = 1) -> pd.DataFrame:
    """A seeded table with a continuous target."""
    rng = np.random.default_rng(seed)
    rooms = rng.integers(1, 6, rows)
    return pd.DataFrame(
        {
            "rooms": rooms,
            "district": rng.choice(["north", "south", "east"], rows),
            "price": np.round(rooms * 50_000 + rng.normal(0, 10_000, rows), 2),
        }
    )


def dvc(root: Path, *args: str) -> str:
    return subprocess.run([DVC, *args], cwd=root, capture_output=True, text=True, check=True).stdout


def assert_clean(root: Path) -> None:
    assert git.Repo(root).git.status("--porcelain") == ""
    assert dvc(root, "status").strip() == "Data and pipelines are up to date."


def error_lines(result) -> list[str]:
    return result.stderr.strip().splitlines()


def client(root: Path) -> MlflowClient:
    uri = f"sqlite:///{root / '.mlkit' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def commit_all(root: Path, message: str) -> None:
    repo = git.Repo(root)
    repo.git.add("-A")
    repo.git.commit("-q", "-m", message)


@pytest.fixture
def iris_csv(tmp_path: Path) -> Path:
    path = tmp_path / "downloads" / "iris.csv"
    path.parent.mkdir()
    flowers().to_csv(path, index=False)
    return path


def init(cli, tmp_path: Path, *args: str):
    return cli("init", "flowers", *args, "--data-remote", str(tmp_path / "remote"), cwd=tmp_path)


@pytest.mark.slow
def test_a_three_class_string_target_from_init_to_staging(cli, tmp_path, iris_csv):
    result = init(cli, tmp_path, "--data", str(iris_csv), "--target", "species")
    assert result.exit_code == 0, result.output
    root = tmp_path / "flowers"
    assert "│ data/iris.csv (300 rows)" in result.stdout
    assert "│ classification: target 'species' has 3 distinct string values" in result.stdout
    assert "│ no metric gates yet: set promotion.staging.thresholds in mlkit.yaml" in result.stdout

    # the user's bytes, tracked by DVC and not by git; no trace of the sample data set
    assert (root / "data" / "iris.csv").read_bytes() == iris_csv.read_bytes()
    assert sorted(p.name for p in (root / "data").iterdir()) == [".gitignore", "iris.csv", "iris.csv.dvc"]
    tracked = set(git.Repo(root).git.ls_files().splitlines())
    assert "data/iris.csv.dvc" in tracked and "data/iris.csv" not in tracked
    assert_clean(root)

    config, _ = load_config(root)
    assert (config.data.train, config.data.target, config.model.task) == ("data/iris.csv", "species", "classification")
    assert config.model.estimator == "xgboost.XGBClassifier"
    assert (config.promotion["staging"].thresholds, config.promotion["production"].thresholds) == ([], [])
    assert config.promotion["production"].beat_current.metric == "f1"
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
    assert pipeline["stages"]["train"]["deps"] == ["data/iris.csv", "src/flowers", "mlkit.yaml"]
    assert "return frame\n" in (root / "src" / "flowers" / "features.py").read_text()
    assert "mean_area" not in (root / "tests" / "test_features.py").read_text()

    result = cli("train", "--json", cwd=root)
    assert result.exit_code == 0, result.stderr
    trained = json.loads(result.stdout)
    assert trained["model_version"] == "1"
    assert set(trained["metrics"]) == {"accuracy", "f1", "roc_auc", "precision", "recall", "log_loss"}
    assert trained["metrics"]["f1"] > 0.6  # three separable classes: well above chance
    run = client(root).get_run(trained["run_id"])
    assert run.data.tags[tags.DATA_MD5_PREFIX + "data/iris.csv"] == dvc_md5(root, "data/iris.csv")
    commit_all(root, "First model")

    result = cli("promote", "flowers", "1", "--to", "staging", "--reason", "first model on our data", cwd=root)
    assert result.exit_code == 0, result.stderr
    assert "promoted flowers version 1 to staging" in result.stderr
    version = client(root).get_model_version_by_alias("flowers", "staging")
    assert version.version == 1 and version.tags["mlkit.stage"] == "staging"


def dvc_md5(root: Path, relative: str) -> str:
    return yaml.safe_load((root / (relative + ".dvc")).read_text())["outs"][0]["md5"]


def test_the_generated_projects_own_tests_pass(cli, tmp_path, iris_csv):
    assert init(cli, tmp_path, "--data", str(iris_csv), "--target", "species").exit_code == 0
    root = tmp_path / "flowers"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_parquet_with_few_integer_labels_is_classification_and_says_the_rule(cli, tmp_path):
    frame = flowers()
    frame["species"] = frame["species"].map({"setosa": 0, "versicolor": 1, "virginica": 2})
    path = tmp_path / "iris.parquet"
    frame.to_parquet(path)
    result = init(cli, tmp_path, "--data", str(path), "--target", "species", "--json")
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    assert (made["task"], made["rows"], made["data_files"]) == ("classification", 300, ["data/iris.parquet"])
    assert made["task_reason"] == (
        "target 'species' is numeric with 3 distinct integer values (at most 20 integers are read as classes)"
    )
    root = Path(made["root"])
    assert pd.read_parquet(root / "data" / "iris.parquet").equals(frame)
    assert load_config(root)[0].data.train == "data/iris.parquet"
    assert_clean(root)


def test_a_float_target_is_regression_with_a_random_forest(cli, tmp_path):
    path = tmp_path / "houses.csv"
    prices().to_csv(path, index=False)
    result = init(cli, tmp_path, "--data", str(path), "--target", "price")
    assert result.exit_code == 0, result.output
    distinct = prices()["price"].nunique()
    assert f"│ regression: target 'price' is numeric with {distinct} distinct values" in result.stdout
    config, _ = load_config(tmp_path / "flowers")
    assert (config.model.task, config.model.estimator) == ("regression", "sklearn.ensemble.RandomForestRegressor")
    assert config.promotion["production"].beat_current.metric == "r2"


def test_a_given_task_is_said_and_a_target_name_is_data(cli, tmp_path):
    frame = flowers(target='kind: "a" # b')
    path = tmp_path / "iris.csv"
    frame.to_csv(path, index=False)
    result = init(cli, tmp_path, "--data", str(path), "--target", 'kind: "a" # b', "--task", "classification")
    assert result.exit_code == 0, result.output
    assert "│ classification: given by --task" in result.stdout
    root = tmp_path / "flowers"
    assert load_config(root)[0].data.target == 'kind: "a" # b'
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _write(tmp_path: Path, name: str, frame: pd.DataFrame) -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("make", "args", "message", "hint"),
    [
        (
            lambda t: _write(t, "iris.csv", flowers()),
            ["--target", "specis"],
            "error: --target: column 'specis' is not in iris.csv (did you mean 'species'?); "
            "columns (4): species, petal_length, colour, width",
            "hint: give one of the columns above with --target",
        ),
        (
            lambda t: t / "nowhere.csv",
            ["--target", "species"],
            "error: {path}: no such file",
            "hint: give the path to your CSV or Parquet file",
        ),
        (
            lambda t: _write(t, "houses.csv", prices(rows=500)),
            ["--target", "price", "--task", "classification"],
            "error: --task classification: target 'price' is numeric with 500 distinct non-integer values; "
            "each would be a class of its own",
            "hint: use --task regression, or leave --task out to infer it",
        ),
        (
            lambda t: _write(t, "iris.csv", flowers()),
            ["--target", "species", "--task", "regression"],
            "error: --task regression: target 'species' is not numeric (3 distinct values, e.g. "
            "'setosa', 'versicolor', 'virginica')",
            "hint: use --task classification, or leave --task out to infer it",
        ),
        (
            lambda t: _write(t, "iris.csv", flowers(rows=12)),
            ["--target", "species"],
            "error: {path}: 12 rows; mlkit needs at least 50 to train and test a model",
            "hint: use a larger data set",
        ),
        (
            lambda t: _write(t, "iris.csv", flowers().assign(species=lambda f: f.species.where(f.index % 50 > 0))),
            ["--target", "species"],
            "error: {path}: target 'species' is empty in 6 of 300 rows; every row needs a target",
            "hint: drop those rows from the file (or fill them in), then run the command again",
        ),
        (
            lambda t: _write(t, "my iris.csv", flowers()),
            ["--target", "species"],
            "error: {path}: the file name 'my iris.csv' cannot be kept in the project: at most 100 characters, "
            "letters, digits, '.', '-' and '_', starting with a letter or digit",
            "hint: rename the file, e.g. to my_iris.csv",
        ),
        (
            lambda t: _write(t, "iris.txt", flowers()),
            ["--target", "species"],
            "error: {path}: not a CSV or Parquet file (the name must end in .csv, .parquet or .pq)",
            "hint: save the data as CSV (with a header row) or Parquet",
        ),
        (
            lambda t: _write(t, "iris.csv", flowers()),
            [],
            "error: --data needs --target COLUMN: the column to predict",
            "hint: e.g. --target species",
        ),
        (
            lambda t: _write(t, "iris.csv", flowers()),
            ["--target", "{{ 7 * 7 }}"],
            "error: --target: '{{', '{%' and '{#' are not allowed: answers are data, not templates",
            "hint: give the literal value the project should hold",
        ),
    ],
    ids=[
        "wrong-target",
        "missing-file",
        "classification-on-floats",
        "regression-on-strings",
        "too-few-rows",
        "empty-targets",
        "unsafe-name",
        "not-tabular",
        "no-target",
        "template-markup",
    ],
)
def test_bad_data_exits_2_and_creates_nothing(cli, tmp_path, make, args, message, hint):
    path = make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = init(cli, tmp_path, "--data", str(path), *args)
    assert result.exit_code == 2, result.output
    assert error_lines(result) == [message.replace("{path}", str(path)), hint]
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no project, no staging folder, no remote


def test_target_and_task_need_data(cli, tmp_path):
    result = cli("init", "flowers", "--target", "species", cwd=tmp_path)
    assert result.exit_code == 2
    assert error_lines(result) == [
        "error: --target needs --data FILE: the sample data sets come with their own target",
        "hint: start from your own data with `mlkit init NAME --data FILE --target COLUMN`",
    ]
    assert list(tmp_path.iterdir()) == []


# --- an existing project ---------------------------------------------------------------------------


@pytest.fixture
def project(cli, tmp_path, iris_csv) -> Path:
    assert init(cli, tmp_path, "--data", str(iris_csv), "--target", "species").exit_code == 0
    return tmp_path / "flowers"


@pytest.mark.slow
def test_replace_then_train_uses_the_new_data(cli, tmp_path, project):
    first = json.loads(cli("train", "--json", cwd=project).stdout)
    commit_all(project, "First model")
    mlkit_yaml = (project / "mlkit.yaml").read_text()

    newer = tmp_path / "exports" / "iris-2025.csv"
    newer.parent.mkdir()
    flowers(rows=400, seed=7, target="kind").to_csv(newer, index=False)
    result = cli("data", "replace", str(newer), "--target", "kind", "--commit", cwd=project)
    assert result.exit_code == 0, result.output
    assert "│ data/iris-2025.csv (400 rows)" in result.stdout
    assert "│ data/iris.csv, data/iris.csv.dvc" in result.stdout
    staged = "data/.gitignore data/iris-2025.csv.dvc data/iris.csv.dvc dvc.yaml mlkit.yaml"
    assert f": {staged}" in result.stderr and result.stderr.startswith("committed ")

    # mlkit.yaml: two values changed, every comment and line kept
    expected = mlkit_yaml.replace("train: data/iris.csv\n", "train: data/iris-2025.csv\n")
    assert (project / "mlkit.yaml").read_text() == expected.replace("target: species\n", "target: kind\n")
    assert yaml.safe_load((project / "dvc.yaml").read_text())["stages"]["train"]["deps"][0] == "data/iris-2025.csv"
    assert sorted(p.name for p in (project / "data").iterdir()) == [".gitignore", "iris-2025.csv", "iris-2025.csv.dvc"]
    assert (project / "data" / ".gitignore").read_text() == "/iris-2025.csv\n"
    assert git.Repo(project).head.commit.message.strip() == "Train on data/iris-2025.csv instead of data/iris.csv"
    assert dvc(project, "data", "status").strip() == "No changes."

    second = json.loads(cli("train", "--json", cwd=project).stdout)
    old_md5 = client(project).get_run(first["run_id"]).data.tags[tags.DATA_MD5_PREFIX + "data/iris.csv"]
    run_tags = client(project).get_run(second["run_id"]).data.tags
    assert run_tags[tags.DATA_MD5_PREFIX + "data/iris-2025.csv"] == dvc_md5(project, "data/iris-2025.csv") != old_md5
    assert tags.DATA_MD5_PREFIX + "data/iris.csv" not in run_tags

    # the old data is still one `git checkout` + `mlkit data checkout` away
    repo = git.Repo(project)
    repo.git.checkout("-q", "HEAD~1")
    assert cli("data", "checkout", cwd=project).exit_code == 0
    assert (project / "data" / "iris.csv").read_bytes() == (tmp_path / "downloads" / "iris.csv").read_bytes()


def test_replace_with_a_new_version_of_the_same_file(cli, tmp_path, project):
    old_md5 = dvc_md5(project, "data/iris.csv")
    newer = tmp_path / "iris.csv"
    flowers(rows=200, seed=3).to_csv(newer, index=False)
    result = cli("data", "replace", str(newer), "--json", cwd=project)
    assert result.exit_code == 0, result.output
    replaced = json.loads(result.stdout)
    assert (replaced["old"], replaced["new"], replaced["removed"]) == ("data/iris.csv", "data/iris.csv", [])
    assert replaced["staged"] == ["data/iris.csv.dvc"] and replaced["commit"] is None
    assert (project / "data" / "iris.csv").read_bytes() == newer.read_bytes()
    assert replaced["md5"] == dvc_md5(project, "data/iris.csv")
    # the first version is intact in DVC's cache: the workspace copy was replaced, never written through
    cached = project / ".dvc" / "cache" / "files" / "md5" / old_md5[:2] / old_md5[2:]
    assert cached.read_bytes() == (tmp_path / "downloads" / "iris.csv").read_bytes()


def test_a_refused_replace_changes_nothing(cli, tmp_path, project):
    wrong = tmp_path / "other.csv"
    prices().to_csv(wrong, index=False)
    result = cli("data", "replace", str(wrong), cwd=project)
    assert result.exit_code == 2
    assert error_lines(result) == [
        "error: mlkit.yaml: data.target: column 'species' is not in other.csv; columns (3): rooms, district, price",
        "hint: give the file's target with --target COLUMN, or fix data.target in mlkit.yaml",
    ]
    result = cli("data", "replace", str(wrong), "--target", "price", cwd=project)
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: mlkit.yaml: model.task classification: target 'price' is numeric with {prices()['price'].nunique()} "
        "distinct non-integer values; each would be a class of its own",
        "hint: pick another --target, or set model.task: regression in mlkit.yaml first",
    ]
    assert_clean(project)
    assert sorted(p.name for p in (project / "data").iterdir()) == [".gitignore", "iris.csv", "iris.csv.dvc"]


def test_remove_untracks_a_data_set_and_refuses_the_training_data(cli, project):
    extra = project / "data" / "extra.csv"
    extra.write_text("a,b\n1,2\n")
    assert cli("data", "add", "data/extra.csv", "--commit", cwd=project).exit_code == 0

    result = cli("data", "remove", "data/iris.csv", cwd=project)
    assert result.exit_code == 2
    assert error_lines(result) == [
        "error: data/iris.csv is the training data (data.train in mlkit.yaml); nothing was removed",
        "hint: to train on another file, run `mlkit data replace NEW_FILE`",
    ]

    extra.unlink()  # a modified copy is refused: it would be lost
    extra.write_text("a,b\n1,3\n")
    result = cli("data", "remove", "data/extra.csv", cwd=project)
    assert result.exit_code == 2
    assert error_lines(result) == [
        "error: data/extra.csv was modified since it was added to DVC; removing it would lose those changes",
        "hint: record them first with `mlkit data add data/extra.csv`, "
        "or put the file back with `mlkit data checkout data/extra.csv --force`",
    ]
    assert cli("data", "checkout", "data/extra.csv", "--force", cwd=project).exit_code == 0

    result = cli("data", "remove", "data/extra.csv", "--commit", "--json", cwd=project)
    assert result.exit_code == 0, result.output
    removed = json.loads(result.stdout)
    assert removed["staged"] == ["data/.gitignore", "data/extra.csv.dvc"] and removed["commit"]
    assert not extra.exists() and not (project / "data" / "extra.csv.dvc").exists()
    assert (project / "data" / ".gitignore").read_text() == "/iris.csv\n"
    assert git.Repo(project).head.commit.message.strip() == "Stop tracking data/extra.csv"
    assert_clean(project)


def test_a_replace_that_fails_halfway_puts_everything_back(cli, tmp_path, project, monkeypatch):
    from mlkit.engines import dvc as dvc_engine
    from mlkit.errors import OperationError

    def fail(*_args, **_kwargs):
        raise OperationError("removing data from DVC failed: disk full")

    monkeypatch.setattr(dvc_engine, "remove", fail)
    original = (project / "data" / "iris.csv").read_bytes()
    newer = tmp_path / "iris-2025.csv"
    flowers(rows=200, seed=5).to_csv(newer, index=False)
    result = cli("data", "replace", str(newer), cwd=project)
    assert result.exit_code == 1
    assert error_lines(result) == ["error: removing data from DVC failed: disk full"]
    assert_clean(project)
    assert sorted(p.name for p in (project / "data").iterdir()) == [".gitignore", "iris.csv", "iris.csv.dvc"]
    assert (project / "data" / "iris.csv").read_bytes() == original
