"""`mlkit predict` on the Dask backend: the input read, scored and written by a real cluster's workers,
with the same rows, predictions and order as the in-process path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _isolation import isolate
from _serving import make_plans_project, plans_frame, train

pytestmark = pytest.mark.slow

_IN_CI = bool(os.environ.get("CI"))  # read before the isolation fixture clears it


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    try:
        from distributed import LocalCluster
    except ImportError as exc:  # pragma: no cover - the dask extra is part of the test install
        if _IN_CI:
            pytest.fail(f"distributed is not installed ({exc}); CI is set, so this test must run")
        pytest.skip(f"distributed is not installed: {exc}")
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as local:
        yield str(local.scheduler_address)


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("predict-dask")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, base / "home")
        root = make_plans_project(base)
        assert train(root) == "1"
        yield root


def _predict(root: Path, source: Path, target: Path, scheduler: str | None, chunk_rows: int):
    from mlkit.project import load_project
    from mlkit.serving.batch import predict_file

    with pytest.MonkeyPatch.context() as monkeypatch:
        if scheduler:
            monkeypatch.setenv("MLKIT_DASK_SCHEDULER", scheduler)
        else:
            monkeypatch.delenv("MLKIT_DASK_SCHEDULER", raising=False)
        lines: list[str] = []
        result = predict_file(
            load_project(root), "plans/1", source, target, chunk_rows=chunk_rows, progress=lines.append
        )
    return result, lines


@pytest.mark.parametrize(("suffix", "out_suffix"), [(".parquet", ".parquet"), (".csv", ".csv"), (".csv", ".parquet")])
def test_the_cluster_writes_what_the_local_path_writes(plans, cluster, tmp_path, suffix, out_suffix):
    import pandas as pd

    rows = plans_frame(rows=3000, seed=13).drop(columns=["plan"])
    rows.insert(0, "customer", [f"c{i}" for i in range(len(rows))])  # a column the model does not take
    rows.loc[::11, "region"] = None
    source = tmp_path / f"in{suffix}"
    if suffix == ".parquet":
        # several row groups, so the cluster gets several partitions
        rows.to_parquet(source, index=False, row_group_size=700)
    else:
        rows.to_csv(source, index=False)

    local, _ = _predict(plans, source, tmp_path / f"local{out_suffix}", None, chunk_rows=700)
    remote, lines = _predict(plans, source, tmp_path / f"dask{out_suffix}", cluster, chunk_rows=700)

    assert (remote.backend, remote.workers, remote.rows, remote.version) == ("dask", 2, 3000, "1")
    assert local.backend == "local" and local.workers is None
    assert remote.chunks > 1
    assert f"scoring {source} on the Dask cluster at {cluster} (2 workers)" in lines
    assert lines[-1] == f"3000 rows scored in {remote.chunks} partitions on 2 workers"
    read = pd.read_parquet if out_suffix == ".parquet" else pd.read_csv
    expected, got = read(tmp_path / f"local{out_suffix}"), read(tmp_path / f"dask{out_suffix}")
    assert (
        list(got.columns) == list(expected.columns) == ["customer", "usage", "tenure", "year", "region", "prediction"]
    )
    assert got["customer"].tolist() == expected["customer"].tolist() == rows["customer"].tolist()
    assert got["prediction"].tolist() == expected["prediction"].tolist()
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert not list(tmp_path.glob(".*partial"))


def test_a_mistyped_value_is_bad_input_named_with_its_column(plans, cluster, tmp_path):
    from mlkit.errors import UsageError

    rows = plans_frame(rows=200, seed=3).drop(columns=["plan"]).astype({"year": object})
    rows.loc[150, "year"] = "soon"
    rows.to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(UsageError) as raised:
        _predict(plans, tmp_path / "in.csv", tmp_path / "out.parquet", cluster, chunk_rows=50)
    assert "column 'year': expected long (an integer or null), got 'soon'" in raised.value.message
    assert not (tmp_path / "out.parquet").exists()
    assert not list(tmp_path.glob(".*partial"))


def test_an_earlier_output_folder_is_replaced_and_a_foreign_one_is_left_alone(plans, cluster, tmp_path):
    import pandas as pd

    from mlkit.errors import UsageError

    plans_frame(rows=300, seed=1).drop(columns=["plan"]).to_parquet(tmp_path / "in.parquet", index=False)
    out = tmp_path / "out.parquet"
    _predict(plans, tmp_path / "in.parquet", out, cluster, chunk_rows=100)
    again, _ = _predict(plans, tmp_path / "in.parquet", out, cluster, chunk_rows=100)
    assert again.rows == 300 and len(pd.read_parquet(out)) == 300
    foreign = tmp_path / "mine.parquet"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not ours")
    with pytest.raises(UsageError) as raised:
        _predict(plans, tmp_path / "in.parquet", foreign, cluster, chunk_rows=100)
    assert raised.value.message == f"{foreign}: a folder that is not an earlier output"
    assert (foreign / "notes.txt").read_text() == "not ours"
    assert not list(tmp_path.glob(".*partial"))
