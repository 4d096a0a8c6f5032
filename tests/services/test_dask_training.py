"""`training.backend: dask`: XGBoost trained with xgboost.dask on a real two-worker cluster."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import _services as S
import pytest
from mlflow import MlflowClient

from mlkit import tags

FAST = ["--set", "params.estimator.n_estimators=30"]
LINEAGE_KEYS = (
    tags.GIT_COMMIT,
    tags.GIT_BRANCH,
    tags.GIT_DIRTY,
    tags.PARAMS,
    tags.SEED,
    tags.SPLIT,
    tags.PYTHON,
    tags.PACKAGE_LOCK,
    tags.MLKIT_VERSION,
)


def _train(cli: Callable, root: Path, *extra: str) -> dict:
    result = cli("train", "--json", *FAST, *extra, cwd=root)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _version_tags(root: Path, name: str, version: str) -> dict[str, str]:
    uri = f"sqlite:///{root / '.mlkit' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(name, version).tags


@pytest.mark.slow
def test_dask_trained_model_is_registered_with_the_same_lineage_and_reruns_identically(
    dask_cluster: S.DaskCluster, make_project: Callable[..., Path], cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project("daskproj")
    local = _train(cli, root)

    monkeypatch.setenv("MLKIT_DASK_SCHEDULER", dask_cluster.address)
    first = _train(cli, root)
    second = _train(cli, root)

    assert (first["model_version"], second["model_version"]) == ("2", "3")
    assert first["metrics"] == second["metrics"]
    assert first["predictions_sha256"] == second["predictions_sha256"]
    assert 0.9 < first["metrics"]["accuracy"] <= 1.0

    local_tags = _version_tags(root, local["model_name"], local["model_version"])
    dask_tags = _version_tags(root, first["model_name"], first["model_version"])
    for key in LINEAGE_KEYS:
        assert dask_tags[key] == local_tags[key], key
    data_keys = [k for k in local_tags if k.startswith(tags.DATA_MD5_PREFIX)]
    assert data_keys and all(dask_tags[k] == local_tags[k] for k in data_keys)
    assert dask_tags["mlkit.run_id"] == first["run_id"]

    # the registered model is a plain scikit-learn pipeline: it loads and predicts without a cluster
    import mlflow.sklearn

    mlflow.set_tracking_uri(f"sqlite:///{root / '.mlkit' / 'mlflow.db'}")
    model = mlflow.sklearn.load_model(f"models:/{first['model_name']}/{first['model_version']}")
    assert type(model.steps[-1][1]).__name__ == "XGBClassifier"
    client = MlflowClient(tracking_uri=f"sqlite:///{root / '.mlkit' / 'mlflow.db'}")
    assert client.get_run(first["run_id"]).data.params["training.backend"] == "dask"


@pytest.mark.slow
def test_unreachable_scheduler_fails_cleanly_and_registers_nothing(
    make_project: Callable[..., Path], cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project("nodask")
    address = f"tcp://127.0.0.1:{S.free_port()}"
    monkeypatch.setenv("MLKIT_DASK_SCHEDULER", address)
    result = cli("train", *FAST, cwd=root)
    assert result.exit_code == 1
    error, hint = result.stderr.splitlines()[-2:]
    assert error.startswith(f"error: Dask scheduler {address} is unreachable: ")  # then the OS's reason
    assert hint == (
        f"hint: start it (`dask scheduler`, `dask worker {address}`) or fix training.scheduler / MLKIT_DASK_SCHEDULER"
    )
    uri = f"sqlite:///{root / '.mlkit' / 'mlflow.db'}"
    assert MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions() == []


def test_dask_backend_without_a_scheduler_is_a_usage_error(make_project: Callable[..., Path], cli: Callable) -> None:
    root = make_project("noscheduler")
    result = cli("train", "--set", "training.backend=dask", cwd=root)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: mlkit.yaml: training.scheduler: is required when training.backend is dask",
        "hint: set training.scheduler: tcp://HOST:8786 or MLKIT_DASK_SCHEDULER",
    ]


@pytest.mark.slow
def test_scikit_learn_estimator_fits_under_joblibs_dask_backend(
    dask_cluster: S.DaskCluster, make_project: Callable[..., Path], cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project("forest", template="regression")
    monkeypatch.setenv("MLKIT_DASK_SCHEDULER", dask_cluster.address)
    trained = _train(cli, root, "--set", "params.estimator.n_jobs=2")
    assert trained["model_version"] == "1"
    assert trained["metrics"]["r2"] > 0.2
    client = MlflowClient(tracking_uri=f"sqlite:///{root / '.mlkit' / 'mlflow.db'}")
    assert client.get_run(trained["run_id"]).data.params["training.backend"] == "dask"


def test_the_cluster_listens_on_loopback_only(dask_cluster: S.DaskCluster) -> None:
    # `--host` binds the Dask protocol only; each process's HTTP server (health, metrics) runs even with
    # `--no-dashboard`, on every interface unless `--dashboard-address` binds it
    pids: set[str] = set()
    for pid in dask_cluster.pids:
        pids |= set(subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.split())
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    addresses = [line.split()[3] for line in listening.splitlines() if any(f"pid={p}," in line for p in pids)]
    assert len(addresses) >= 3  # the scheduler and two workers at least
    assert [a for a in addresses if not a.startswith("127.0.0.1:")] == []
