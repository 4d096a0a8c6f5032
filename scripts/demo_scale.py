"""The demo's team-and-scale part: the same project, switched by configuration only to a tracking server
over PostgreSQL, data and artifacts in S3-compatible storage, and training on a Dask cluster.

The services are started on loopback by the same helpers the services tests use (PostgreSQL from
Debian's package, `rclone serve s3`, `dask scheduler` and two `dask worker`s) and stopped by pid at the
end. When a binary is missing the part is skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def team_and_scale(run: Callable[..., subprocess.CompletedProcess], base: Path, project: Path) -> None:
    import _services as S

    started: list[Callable[[], None]] = []
    try:
        try:
            postgres = S.start_postgres()
            started.append(lambda: S.stop_postgres(postgres))
            s3 = S.start_s3()
            started.append(lambda: S.stop_s3(s3))
            cluster = S.start_dask()
            started.append(lambda: S.stop_dask(cluster))
        except S.ServiceUnavailable as exc:
            print(f"\n(team and scale part skipped: {exc})", flush=True)
            return
        backend = postgres.create_database("demo")
        # credentials only in the environment, as a team member would export them; the server takes the
        # admin account from MLFLOW_AUTH_ADMIN_* and the client signs in with MLFLOW_TRACKING_USERNAME/PASSWORD
        os.environ.update({**s3.env(), "PGPASSWORD": postgres.password, **S.admin_env()})
        port = S.free_port()
        run(
            "a team tracking server over PostgreSQL, artifacts proxied to object storage, users sign in",
            "server",
            "start",
            "--backend-store-uri",
            backend,
            "--artifacts-destination",
            f"s3://{s3.bucket('mlflow')}/artifacts",
            "--port",
            str(port),
            "--workers",
            "1",
            cwd=project,
        )
        started.append(lambda: run("stop the server by its pid", "server", "stop", cwd=project, check=False))
        run(
            "its state: pid, URL, store (no password shown) and the health of database and artifact store",
            "server",
            "status",
            cwd=project,
        )
        run(
            "data in S3-compatible storage through DVC",
            "data",
            "remote",
            "add",
            "storage",
            f"s3://{s3.bucket('data')}/churn",
            "--default",
            "--endpoint-url",
            s3.endpoint,
            cwd=project,
        )
        settings = project / "mlkit.yaml"
        text = settings.read_text()
        if "\n  uri:" not in text:
            text = text.replace("  experiment:", f"  uri: http://127.0.0.1:{port}\n  experiment:", 1)
        settings.write_text(text)
        subprocess.run(
            ["git", "commit", "-q", "-m", "Team tracking server and S3 data remote", "--", "mlkit.yaml", ".dvc/config"],
            cwd=project,
            check=True,
        )
        run("push the data to the bucket", "data", "push", cwd=project)
        os.environ["MLKIT_DASK_SCHEDULER"] = cluster.address
        run(
            "train XGBoost on the Dask cluster; run and model go to the team server",
            "train",
            "--set",
            "params.estimator.n_estimators=50",
            cwd=project,
        )
        del os.environ["MLKIT_DASK_SCHEDULER"]
        print_cluster_lineage(f"http://127.0.0.1:{port}", project.name)
        run("the team's registry", "models", "list", cwd=project)
        startups = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in S.STARTUP_SECONDS.items())
        print(f"\nservice start-up times: {startups}", flush=True)
    finally:
        for stop in reversed(started):
            stop()


def print_cluster_lineage(tracking_uri: str, experiment: str) -> None:
    """What the last cluster run recorded about where it ran: the backend and what chose it, the cluster's
    shape, and where the workers read each input."""
    import json

    from mlflow import MlflowClient

    from mlkit import tags

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    runs = (
        client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.`{tags.BACKEND}` = 'dask'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if found
        else []
    )
    if not runs:
        print("\n(no cluster run recorded)", flush=True)
        return
    recorded = runs[0].data.tags
    print(f"\n\033[1m== the cluster run's recorded lineage (run {runs[0].info.run_id})\033[0m", flush=True)
    print(
        f"backend {recorded[tags.BACKEND]} (chosen by {recorded[tags.BACKEND_SOURCE]}), scheduler "
        f"{recorded[tags.DASK_SCHEDULER]}: {recorded[tags.DASK_WORKERS]} workers x "
        f"{recorded[tags.DASK_THREADS]} thread(s), dask {json.loads(recorded[tags.DASK_VERSIONS]).get('dask')}",
        flush=True,
    )
    for path, where in json.loads(recorded.get(tags.DASK_DATA_READ) or "{}").items():
        print(f"{path}: read by the workers from {where}", flush=True)
