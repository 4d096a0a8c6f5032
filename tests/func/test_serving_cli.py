"""`mlkit serve` and `mlkit predict` on a project with no served version yet: the errors and the Dockerfile."""

from __future__ import annotations

import pytest


@pytest.fixture
def churn(make_project):
    return make_project("churn", "classification")


def test_dockerfile_runs_the_same_server(churn, cli):
    result = cli("serve", "churn@staging", "--port", "9000", "--dockerfile", "Dockerfile.serve", cwd=churn)
    assert result.exit_code == 0, result.output
    text = (churn / "Dockerfile.serve").read_text()
    assert text.splitlines()[-1] == 'CMD ["mlkit", "serve", "churn@staging", "--host", "0.0.0.0", "--port", "9000"]'
    assert "RUN pip install --no-cache-dir -r requirements.txt" in text
    assert "EXPOSE 9000" in text
    assert "USER 10001" in text
    assert result.stderr.strip() == "wrote Dockerfile.serve (build it with `docker build -f Dockerfile.serve .`)"


def test_a_stage_that_is_not_configured_is_bad_usage(churn, cli):
    result = cli("serve", "churn@prod", cwd=churn)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: 'churn@prod': stage 'prod' is not one of staging, production",
        "hint: use NAME@STAGE with a stage from `stages` in mlkit.yaml, or NAME/VERSION",
    ]


def test_nothing_to_serve_is_a_failed_operation(churn, cli):
    result = cli("serve", "--port", "0", "--no-log", cwd=churn)
    assert result.exit_code == 1
    assert result.stdout.startswith("http://127.0.0.1:")
    lines = result.stderr.strip().splitlines()
    assert lines[-2].startswith("error: churn@production: no version holds this stage (")
    assert lines[-1] == "hint: promote one first: `mlkit promote churn VERSION --to production`"


def test_predict_checks_its_paths_before_loading(churn, cli, tmp_path):
    (tmp_path / "rows.json").write_text("{}")
    result = cli("predict", "churn@production", str(tmp_path / "rows.json"), "-o", str(tmp_path / "out.csv"), cwd=churn)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'rows.json'}: the input must be a .csv or .parquet file",
        "hint: rename or convert it",
    ]
    result = cli(
        "predict", "churn@production", str(tmp_path / "nothing.csv"), "-o", str(tmp_path / "out.csv"), cwd=churn
    )
    assert result.exit_code == 2
    assert f"error: {tmp_path / 'nothing.csv'}: no such file" in result.stderr
