"""The registered model is self-contained: raw rows of the data file in, the data's labels out, through
MLflow's own loader, in a process that has neither mlkit's project nor its package on the path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _isolation import isolate
from _serving import LABELS, make_plans_project, mlkit, plans_frame, tracking_uri, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("serving-model")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, base / "home")
        root = make_plans_project(base)
        assert train(root) == "1"
        yield root


def _load(root: Path):
    import mlflow.pyfunc

    mlflow.set_tracking_uri(tracking_uri(root))
    return mlflow.pyfunc.load_model("models:/plans/1")


def test_raw_rows_with_gaps_and_integer_columns_give_the_data_labels(plans):
    import numpy as np
    import pandas as pd

    model = _load(plans)
    rows = pd.DataFrame(
        {
            "usage": [50.0, np.nan, 3.0],
            "tenure": np.array([12, 30, 2], dtype=np.int64),
            "year": np.array([2020, 2021, 2024], dtype=np.int64),
            "region": ["west", None, "north"],
        }
    )
    labels = model.predict(rows)
    assert list(labels) == ["premium", labels[1], "basic"]
    assert set(labels) <= LABELS
    probabilities = model.predict(rows, params={"probabilities": True})
    assert list(probabilities.columns) == ["basic", "premium", "standard"]
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_the_signature_has_the_types_of_the_data_file(plans):
    model = _load(plans)
    inputs = {c.name: (c.type.name, c.required) for c in model.metadata.get_input_schema().inputs}
    assert inputs == {
        "usage": ("double", True),
        "tenure": ("long", True),
        "year": ("long", True),
        "region": ("string", True),
    }
    assert [c.type.name for c in model.metadata.get_output_schema().inputs] == ["string"]
    assert model.metadata.metadata["mlkit.label_mapping"] == {"0": "basic", "1": "premium", "2": "standard"}


def test_the_whole_data_file_scores_like_training_saw_it(plans):
    """The data file's own rows (target dropped) score through the model; accuracy as in training."""
    frame = plans_frame()
    labels = _load(plans).predict(frame.drop(columns=["plan"]))
    assert (labels == frame["plan"].to_numpy()).mean() > 0.9


def test_a_fresh_process_loads_it_with_mlflow_alone(plans, tmp_path):
    """No project on the path, another working directory: the hook comes from the model's code/ folder."""
    script = (
        "import json, mlflow.pyfunc, pandas as pd\n"
        "m = mlflow.pyfunc.load_model('models:/plans/1')\n"
        "rows = pd.DataFrame({'usage': [40.0, None], 'tenure': [3, 40], 'year': [2019, 2023],"
        " 'region': ['east', None]})\n"
        "import plans.usage\n"
        "print(json.dumps({'labels': m.predict(rows).tolist(), 'hook': plans.usage.__file__}))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri(plans)}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["labels"][0] == "premium" and set(out["labels"]) <= LABELS
    assert Path(out["hook"]).parts[-3:] == ("code", "plans", "usage.py")
    assert str(plans / "src") not in out["hook"]


def test_bad_columns_name_the_column_and_the_type(plans):
    import pandas as pd

    impl = _load(plans)._model_impl
    good = {"usage": [1.0], "tenure": [3], "year": [2020], "region": ["east"]}
    with pytest.raises(ValueError) as missing:
        impl.conform(pd.DataFrame({k: v for k, v in good.items() if k != "year"}))
    assert str(missing.value) == "missing column 'year': expected long (an integer or null)"
    with pytest.raises(ValueError) as mistyped:
        impl.conform(pd.DataFrame({**good, "year": ["soon"]}))
    assert str(mistyped.value) == "column 'year': expected long (an integer or null), got 'soon'"
    with pytest.raises(ValueError) as fraction:
        impl.conform(pd.DataFrame({**good, "tenure": [2.5]}))
    assert str(fraction.value) == "column 'tenure': expected long (an integer or null), got 2.5"
    with pytest.raises(ValueError) as extra:
        impl.conform(pd.DataFrame({**good, "plan": ["basic"]}))
    assert str(extra.value) == "unexpected column 'plan'; the model takes: usage, tenure, year, region"
    gaps = impl.conform(pd.DataFrame({**good, "year": [None]}))
    assert gaps["year"].dtype.kind == "f" and gaps["year"].isna().all()


def test_the_sklearn_flavor_is_the_bare_pipeline(plans):
    import mlflow.sklearn

    _load(plans)  # points MLflow at the project's store
    pipeline = mlflow.sklearn.load_model("models:/plans/1")
    assert type(pipeline).__name__ == "Pipeline"
    assert type(pipeline.steps[-1][1]).__name__ == "XGBClassifier"


def test_predict_scores_a_parquet_file_larger_than_its_chunk(plans, tmp_path):
    import pandas as pd

    from mlkit.project import load_project
    from mlkit.serving.batch import predict_file

    rows = plans_frame(rows=2500, seed=11).drop(columns=["plan"])
    rows.insert(0, "customer", [f"c{i}" for i in range(len(rows))])  # a column the model does not take
    rows.to_parquet(tmp_path / "in.parquet", index=False)
    lines: list[str] = []
    result = predict_file(
        load_project(plans),
        "plans/1",
        tmp_path / "in.parquet",
        tmp_path / "out.parquet",
        chunk_rows=1000,
        progress=lines.append,
    )
    assert (result.rows, result.chunks, result.version) == (2500, 3, "1")
    assert lines[-3:] == ["1000 rows scored", "2000 rows scored", "2500 rows scored"]
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["customer", "usage", "tenure", "year", "region", "prediction"]
    pd.testing.assert_frame_equal(out.drop(columns=["prediction"]), rows)
    expected = _load(plans).predict(rows.drop(columns=["customer"]))
    assert out["prediction"].tolist() == list(expected)
    assert not list(tmp_path.glob(".*partial"))


def test_mlkit_predict_on_csv_with_gaps(plans, tmp_path):
    import pandas as pd

    rows = plans_frame(rows=1500, seed=5).drop(columns=["plan"])
    rows.loc[::7, "year"] = None  # an integer column with gaps: pandas writes it as floats
    rows.to_csv(tmp_path / "in.csv", index=False)
    done = mlkit(
        "predict",
        "plans/1",
        str(tmp_path / "in.csv"),
        "-o",
        str(tmp_path / "out.csv"),
        "--chunk-rows",
        "400",
        "--json",
        cwd=plans,
    )
    report = json.loads(done.stdout)
    assert (report["rows"], report["model"], report["version"]) == (1500, "plans", "1")
    assert report["chunks"] >= 2
    assert "1500 rows scored" in done.stderr
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 1500 and set(out["prediction"]) <= LABELS
    assert out["usage"].isna().sum() == rows["usage"].isna().sum()
    again = mlkit(
        "predict", "plans/1", str(tmp_path / "in.csv"), "-o", str(tmp_path / "in.csv"), cwd=plans, check=False
    )
    assert again.returncode == 2
    assert f"error: {tmp_path / 'in.csv'}: the output would overwrite the input" in again.stderr


def test_the_installed_mlflow_writes_a_schema_the_direct_reader_knows(plans):
    """A new MLflow migration fails here first: check the tables `direct` reads, then add the revision."""
    import sqlite3

    from mlkit.engines import mlflow_direct as direct

    with sqlite3.connect(plans / ".mlkit" / "mlflow.db") as connection:
        revisions = {row[0] for row in connection.execute("SELECT version_num FROM alembic_version")}
    assert revisions <= direct.KNOWN_REVISIONS


def test_the_direct_path_reads_the_registry_and_loads_the_model_without_mlflow(plans):
    """In a fresh process: alias, version, run, commit and predictions equal MLflow's, and MLflow is never imported."""
    script = (
        "import json, sys\n"
        "import pandas as pd\n"
        "from mlkit.project import load_project\n"
        "from mlkit.serving.source import ModelSource\n"
        "source = ModelSource(load_project(), 'plans@staging')\n"
        "loaded = source.load(source.current_version())\n"
        "rows = pd.DataFrame({'usage': [40.0, None, 3.0], 'tenure': [3, 40, 2], 'year': [2019, 2023, 2024],"
        " 'region': ['east', None, 'north']})\n"
        "labels = loaded.model.predict_frame(loaded.model.conform(rows)).tolist()\n"
        "print(json.dumps({'mlflow': 'mlflow' in sys.modules, 'sqlalchemy': 'sqlalchemy' in sys.modules,"
        " 'version': loaded.version, 'run_id': loaded.run_id, 'commit': loaded.commit, 'labels': labels}))\n"
    )
    mlkit("promote", "plans", "1", "--to", "staging", cwd=plans)
    done = subprocess.run([sys.executable, "-c", script], cwd=plans, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    fast = json.loads(done.stdout.strip().splitlines()[-1])
    assert (fast["mlflow"], fast["sqlalchemy"]) == (False, False)

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri(plans), tracking_uri(plans))
    held = client.get_model_version_by_alias("plans", "staging")
    assert (fast["version"], fast["run_id"], fast["commit"]) == (
        str(held.version),
        held.run_id,
        held.tags["mlkit.git.commit"],
    )
    rows = {
        "usage": [40.0, None, 3.0],
        "tenure": [3, 40, 2],
        "year": [2019, 2023, 2024],
        "region": ["east", None, "north"],
    }
    import pandas as pd

    assert fast["labels"] == _load(plans).predict(pd.DataFrame(rows)).tolist()


def test_an_unknown_store_revision_falls_back_to_mlflow(plans, tmp_path):
    import shutil
    import sqlite3

    from mlkit.engines import mlflow_direct as direct

    copy = tmp_path / "mlflow.db"
    shutil.copy(plans / ".mlkit" / "mlflow.db", copy)
    marker = plans / ".mlkit" / "mlflow.db.ready"
    assert direct.sqlite_registry(f"sqlite:///{copy}", marker) is not None
    with sqlite3.connect(copy) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'f00000000000'")
    assert direct.sqlite_registry(f"sqlite:///{copy}", marker) is None
    assert direct.sqlite_registry("http://127.0.0.1:5000", marker) is None
    assert direct.sqlite_registry(f"sqlite:///{copy}", tmp_path / "no-marker") is None
