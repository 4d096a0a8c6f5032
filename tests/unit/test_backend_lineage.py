"""The backend in a run's lineage: its tags, what chose it, how reproduce replays it or refuses."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from mlkit import lineage as L
from mlkit import tags
from mlkit.errors import UsageError
from mlkit.reproduction import replay_backend
from mlkit.training.distributed import environment_source, keeps_rows_on_workers

CLUSTER = L.Backend(
    name="dask",
    source="MLKIT_DASK_SCHEDULER",
    scheduler="127.0.0.1:8786",
    workers=2,
    threads_per_worker="1",
    memory_per_worker=4_000_000_000,
    versions={"dask": "2026.8.0", "distributed": "2026.8.0"},
    data_read={"data/train.csv": "DVC remote 'storage' (s3://bucket/files/md5/ab/cd)"},
)


def test_a_dask_backend_round_trips_through_its_tags() -> None:
    values = CLUSTER.tags()
    assert values[tags.DASK_WORKERS] == "2"
    assert values[tags.DASK_SCHEDULER] == "127.0.0.1:8786"
    assert L.Backend.from_tags(values) == CLUSTER


def test_a_local_backend_records_no_cluster() -> None:
    assert L.Backend(source="default").tags() == {tags.BACKEND: "local", tags.BACKEND_SOURCE: "default"}


def test_a_run_from_before_the_backend_was_recorded_falls_back_on_its_param() -> None:
    backend = L.Backend.from_tags({}, {"training.backend": "dask"})
    assert (backend.name, backend.source, backend.describe()) == (
        "dask",
        "not recorded",
        "dask (cluster shape not recorded)",
    )


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("tcp://127.0.0.1:8786", "127.0.0.1:8786"),
        ("tls://user:secret@scheduler.example:8786", "scheduler.example:8786"),
        ("tcp://[::1]:8786", "[::1]:8786"),
    ],
)
def test_the_scheduler_is_recorded_as_host_and_port_only(address: str, expected: str) -> None:
    assert L.scheduler_host_port(address) == expected


def test_backend_differences_name_the_shape() -> None:
    one_worker = L.Backend(**{**CLUSTER.__dict__, "workers": 1})
    assert CLUSTER.differences(one_worker) == ["Dask workers: 2 then, 1 now"]
    assert CLUSTER.differences(L.Backend()) == ["backend dask with 2 workers x 1 thread then, local now"]
    assert CLUSTER.differences(CLUSTER) == []


@pytest.mark.parametrize(
    ("backend", "in_file", "environ", "expected"),
    [
        ("local", None, {}, "default"),
        ("local", "local", {}, "mlkit.yaml"),
        ("dask", "dask", {}, "mlkit.yaml"),
        ("dask", None, {"MLKIT_DASK_SCHEDULER": "tcp://h:1"}, "MLKIT_DASK_SCHEDULER"),
        ("dask", "local", {"MLKIT_DASK_SCHEDULER": "tcp://h:1"}, "MLKIT_DASK_SCHEDULER"),
        ("dask", "local", {}, "--set"),
        ("local", "local", {"MLKIT_DASK_SCHEDULER": "tcp://h:1"}, "--set"),
        ("local", "dask", {}, "--set"),
    ],
)
def test_what_chose_the_backend(backend: str, in_file: Any, environ: dict[str, str], expected: str) -> None:
    assert environment_source(backend, in_file, environ) == expected


def _project(scheduler: str | None) -> Any:
    return SimpleNamespace(config=SimpleNamespace(training=SimpleNamespace(scheduler=scheduler)))


def test_a_local_run_is_replayed_locally_even_with_a_scheduler_configured() -> None:
    assert replay_backend(_project("tcp://127.0.0.1:8786"), L.Backend()) == {"training.backend": "local"}


def test_a_dask_run_is_replayed_on_the_configured_scheduler_or_refused() -> None:
    assert replay_backend(_project("tcp://10.0.0.5:8786"), CLUSTER) == {
        "training.backend": "dask",
        "training.scheduler": "tcp://10.0.0.5:8786",
    }
    with pytest.raises(UsageError) as refused:
        replay_backend(_project(None), CLUSTER)
    assert refused.value.message == (
        "recorded backend dask with 2 workers x 1 thread; "
        "set MLKIT_DASK_SCHEDULER or training.scheduler to reproduce it"
    )
    assert refused.value.exit_code == 2


def test_only_built_in_xgboost_estimators_keep_their_rows_on_the_workers() -> None:
    def config(backend: str, estimator: str, entrypoint: str | None = None) -> Any:
        return SimpleNamespace(
            training=SimpleNamespace(backend=backend),
            model=SimpleNamespace(estimator=estimator, entrypoint=entrypoint),
        )

    assert keeps_rows_on_workers(config("dask", "xgboost.XGBClassifier"))
    assert not keeps_rows_on_workers(config("local", "xgboost.XGBClassifier"))
    assert not keeps_rows_on_workers(config("dask", "sklearn.ensemble.RandomForestRegressor"))
    assert not keeps_rows_on_workers(config("dask", "xgboost.XGBClassifier", "pkg.model:build"))
