"""The whole loop on team infrastructure: data in S3-compatible storage (a real `rclone serve s3`),
runs, models and artifacts on a real `mlflow server` over PostgreSQL. Only configuration changes."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import _services as S
import pytest
from mlflow import MlflowClient


@pytest.mark.slow
def test_init_push_train_promote_reproduce_on_postgres_server_and_s3(
    tracking_server: S.TrackingServer,
    s3: S.S3Server,
    s3_env: dict[str, str],
    make_project: Callable[..., Path],
    cli: Callable,
) -> None:
    root = make_project("teamloop")
    config = root / "mlkit.yaml"
    config.write_text(config.read_text().replace("  # uri: http://127.0.0.1:5000", f"  uri: {tracking_server.url}"))

    bucket = s3.bucket("data")
    added = cli(
        "data",
        "remote",
        "add",
        "storage",
        f"s3://{bucket}/teamloop",
        "--default",
        "--endpoint-url",
        s3.endpoint,
        cwd=root,
    )
    assert added.exit_code == 0, added.stderr
    subprocess.run(["git", "commit", "-qam", "team tracking server and S3 data remote"], cwd=root, check=True)
    dvc_config = (root / ".dvc" / "config").read_text()
    assert f"endpointurl = {s3.endpoint}" in dvc_config
    assert s3.secret_key not in dvc_config and s3.access_key not in dvc_config  # keys stay in the env

    pushed = cli("data", "push", cwd=root)
    assert pushed.exit_code == 0, pushed.stderr
    stored = [p for p in (s3.root / bucket / "teamloop").rglob("*") if p.is_file()]
    assert stored, "nothing reached the S3 server"

    # a teammate's fresh checkout gets the data back from object storage
    data_file = next((root / "data").glob("*.csv"))
    original = data_file.read_bytes()
    data_file.unlink()
    shutil.rmtree(root / ".dvc" / "cache")
    pulled = cli("data", "pull", cwd=root)
    assert pulled.exit_code == 0, pulled.stderr
    assert data_file.read_bytes() == original

    trained = cli("train", "--json", "--set", "params.estimator.n_estimators=30", cwd=root)
    assert trained.exit_code == 0, trained.stderr
    result = json.loads(trained.stdout)
    name, version = result["model_name"], result["model_version"]

    promoted = cli("promote", name, version, "--to", "staging", "--reason", "team loop", cwd=root)
    assert promoted.exit_code == 0, promoted.stderr

    reproduced = cli("reproduce", f"{name}@staging", "--json", cwd=root)
    assert reproduced.exit_code == 0, reproduced.stderr

    # everything is on the server and in object storage, nothing in the project
    registry = MlflowClient(tracking_uri=tracking_server.url, registry_uri=tracking_server.url)
    assert registry.get_model_version_by_alias(name, "staging").version == version
    tags = registry.get_model_version(name, version).tags
    assert tags["mlkit.run_id"] == result["run_id"]
    assert (
        tags["mlkit.git.commit"]
        == subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    assert any(key.startswith("mlkit.data.md5.") for key in tags)
    artifacts = list((s3.root / "mlflow" / "artifacts").rglob("MLmodel"))
    assert artifacts, "the model did not reach object storage through the server"
    assert not (root / ".mlkit" / "mlflow.db").exists()
    assert not (root / ".mlkit" / "artifacts").exists()
