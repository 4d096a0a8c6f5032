"""`mlkit runs list|show|compare` on a real MLflow SQLite store with two tracked runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _isolation import isolate

from mlkit.errors import ExitCode
from mlkit.project import load_project
from mlkit.training import TrainOptions, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    from mlkit.scaffold import init_project

    base = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, base / "home")
        root = Path(
            init_project(
                "runsdemo", template="regression", directory=base / "runsdemo", data_remote=base / "remote"
            ).root
        )
        first = train(load_project(root), TrainOptions(overrides={"params.estimator.n_estimators": 5}))
        second = train(
            load_project(root), TrainOptions(overrides={"params.estimator.n_estimators": 10}, register=False)
        )
        yield root, first.run_id, second.run_id


def test_list_shows_newest_first(two_runs, cli):
    root, first, second = two_runs
    result = cli("runs", "list", "--json", cwd=root)
    assert result.exit_code == 0
    runs = json.loads(result.stdout)
    assert [r["run_id"] for r in runs] == [second, first]
    assert runs[0]["status"] == "FINISHED" and set(runs[0]["metrics"]) == {"rmse", "mae", "r2"}
    table = cli("runs", "list", "--limit", "1", cwd=root)
    assert second in table.stdout and first not in table.stdout


def _fake_run(root: Path, run_tags: dict[str, str], status: str) -> str:
    """A run written straight into the store, the way a failed training or a reproduction leaves one."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / '.mlkit' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("runsdemo")
    run = client.create_run(experiment.experiment_id, tags=run_tags)
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def test_list_marks_reproductions_and_says_why_a_run_failed(two_runs, cli):
    root, first, _ = two_runs
    failed = _fake_run(root, {"mlkit.failure": "mlkit.yaml: data.hook: p.m:f failed: KeyError: 'x'"}, "FAILED")
    rebuilt = _fake_run(root, {"mlkit.reproduces": first}, "FINISHED")
    try:
        runs = {r["run_id"]: r for r in json.loads(cli("runs", "list", "--json", cwd=root).stdout)}
        assert runs[rebuilt]["reproduces"] == first and runs[rebuilt]["failure"] == ""
        assert runs[failed]["failure"] == "mlkit.yaml: data.hook: p.m:f failed: KeyError: 'x'"
        assert runs[first]["fit_seconds"] > 0 and runs[first]["run_seconds"] >= runs[first]["fit_seconds"]
        assert "duration_s" not in runs[first]
        lines = cli("runs", "list", cwd=root).stdout.splitlines()
        assert "fit_seconds" in lines[0].split() and "note" in lines[0].split()
        row = {line.split()[0]: line for line in lines[1:]}
        assert row[rebuilt].rstrip().endswith(f"reproduces {first[:12]}")
        assert row[failed].rstrip().endswith("failed: mlkit.yaml: data.hook: p.m:f failed: KeyError: 'x'")
    finally:
        from mlflow import MlflowClient

        uri = f"sqlite:///{root / '.mlkit' / 'mlflow.db'}"
        for run_id in (failed, rebuilt):
            MlflowClient(tracking_uri=uri).delete_run(run_id)


def test_list_refuses_bad_limit_and_unknown_experiment(two_runs, cli):
    root, _, _ = two_runs
    result = cli("runs", "list", "--limit", "0", cwd=root)
    assert result.exit_code == ExitCode.USAGE
    assert "error: --limit 0: must be at least 1\n" in result.stderr
    result = cli("runs", "list", "--experiment", "nope", cwd=root)
    assert result.exit_code == ExitCode.USAGE
    assert "error: experiment 'nope' does not exist\n" in result.stderr


def test_show_has_params_metrics_lineage_and_artifacts(two_runs, cli):
    root, first, _ = two_runs
    result = cli("runs", "show", first, "--json", cwd=root)
    assert result.exit_code == 0
    detail = json.loads(result.stdout)
    assert detail["params"]["estimator.n_estimators"] == "5"
    assert "r2" in detail["metrics"]
    assert detail["lineage"]["mlkit.data.md5.data/diabetes.csv"]
    assert "plots/residuals.png" in detail["artifacts"] and "lineage/requirements.lock" in detail["artifacts"]
    assert detail["model_versions"] == ["runsdemo/1"]
    table = cli("runs", "show", first, cwd=root)
    assert "mlkit.git.commit" in table.stdout and "plots/residuals.png" in table.stdout


def test_runs_are_found_by_prefix_and_by_model_reference(two_runs, cli):
    from mlflow import MlflowClient

    root, first, second = two_runs
    uri = f"sqlite:///{root / '.mlkit' / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias("runsdemo", "staging", "1")
    assert json.loads(cli("runs", "show", first[:8], "--json", cwd=root).stdout)["run_id"] == first
    assert json.loads(cli("runs", "show", "runsdemo/1", "--json", cwd=root).stdout)["run_id"] == first
    result = cli("runs", "compare", "runsdemo@staging", second[:12], "--json", cwd=root)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["run_ids"] == [first, second]
    result = cli("runs", "show", "runsdemo@production", cwd=root)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines() == [
        "error: 'runsdemo@production': model 'runsdemo' has no alias 'production'",
        "hint: see `mlkit models show runsdemo` or `mlkit models list`",
    ]


def test_show_unknown_run(two_runs, cli):
    root, _, _ = two_runs
    result = cli("runs", "show", "0123456789abcdef", cwd=root)
    assert result.exit_code == ExitCode.USAGE
    assert "error: run '0123456789abcdef' not found in the tracking store\n" in result.stderr
    assert "hint: run `mlkit runs list` to see run ids" in result.stderr


def test_compare_shows_what_differs(two_runs, cli):
    root, first, second = two_runs
    result = cli("runs", "compare", first, second, "--json", cwd=root)
    assert result.exit_code == 0
    rows = {(r["section"], r["key"]): r for r in json.loads(result.stdout)["rows"]}
    assert rows[("param", "estimator.n_estimators")]["values"] == ["5", "10"]
    assert rows[("param", "estimator.n_estimators")]["differs"] is True
    assert rows[("param", "seed")]["differs"] is False
    assert rows[("lineage", "mlkit.git.commit")]["differs"] is False
    markdown = cli("runs", "compare", first, second, "--format", "markdown", cwd=root).stdout
    assert markdown.splitlines()[0] == f"|  | key | {first[:12]} | {second[:12]} |"
    assert "| param | estimator.n_estimators | 5 | 10 |" in markdown
    assert "| param | seed |" not in markdown
    # hashes are cut to 12 characters (+ …) in tables; timing is no difference between models
    commit = rows[("lineage", "mlkit.git.commit")]["values"][0]
    assert ("timing", "fit_seconds") in rows and ("metric", "fit_seconds") not in rows
    every = cli("runs", "compare", first, second, "--all", "--format", "markdown", cwd=root).stdout
    assert f"| lineage | mlkit.git.commit | {commit[:12]}… | {commit[:12]}… |" in every
    assert commit not in every
    assert "| timing | fit_seconds |" in every and "fit_seconds" not in markdown


def test_compare_in_github_actions_writes_the_step_summary(two_runs, cli, monkeypatch, tmp_path):
    root, first, second = two_runs
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert cli("runs", "compare", first, second, cwd=root).exit_code == 0
    assert "| param | estimator.n_estimators | 5 | 10 |" in summary.read_text()


def test_compare_needs_two_runs_and_a_known_format(two_runs, cli):
    root, first, second = two_runs
    result = cli("runs", "compare", first, cwd=root)
    assert result.exit_code == ExitCode.USAGE
    assert "error: compare needs at least two run ids\n" in result.stderr
    result = cli("runs", "compare", first, second, "--format", "html", cwd=root)
    assert result.exit_code == ExitCode.USAGE
    assert "error: --format 'html': must be table or markdown\n" in result.stderr
