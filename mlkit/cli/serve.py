"""`mlkit serve` (the production model behind HTTP) and `mlkit predict` (a file through the same model)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from mlkit.serving import DEFAULT_HOST, DEFAULT_PORT, ENV_TOKEN

_REF_HELP = "NAME@STAGE (default: the project's model at its last stage, usually production) or NAME/VERSION."


def serve(
    ref: str = typer.Argument(None, metavar="[NAME@STAGE]", help=_REF_HELP),
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Address to bind; anything but loopback is warned about."),
    port: int = typer.Option(DEFAULT_PORT, "--port", "-p", help="Port to bind; 0 picks a free one."),
    poll: float = typer.Option(
        10.0, "--poll", help="Seconds between checks of the stage's alias (hot swap); 0 never checks."
    ),
    max_batch_rows: int = typer.Option(512, "--max-batch-rows", help="Most rows in one model call."),
    max_wait_ms: float = typer.Option(
        2.0, "--max-wait-ms", help="Longest wait for more requests to batch, only while requests arrive concurrently."
    ),
    max_body_mb: float = typer.Option(16.0, "--max-body-mb", help="Larger request bodies get 413."),
    drain_seconds: float = typer.Option(
        30.0, "--drain-seconds", help="On SIGTERM, how long to wait for requests in flight."
    ),
    no_log: bool = typer.Option(False, "--no-log", help="Keep no prediction log."),
    log_sample: float = typer.Option(
        1.0, "--log-sample", min=0.0, max=1.0, help="Share of requests written to the prediction log."
    ),
    log_max_mb: float = typer.Option(
        1024.0, "--log-max-mb", help="Disk budget of the prediction log; the oldest files go first."
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        "-w",
        min=1,
        help="Server processes sharing the port, each with the model loaded (Linux and macOS).",
    ),
    dockerfile: Path = typer.Option(
        None, "--dockerfile", help="Write a Dockerfile that runs this server to PATH and exit (nothing is built)."
    ),
) -> None:
    """Serve the model a stage points at over HTTP, following the stage as it moves (hot swap).

    MLflow's POST /invocations formats (dataframe_split, dataframe_records, inputs; text/csv) take the
    raw rows of the data file and return the labels; GET /health, /version and /metrics (Prometheus).
    Binds 127.0.0.1 unless --host says otherwise. When MLKIT_SERVE_TOKEN is set, every path but /health
    wants `Authorization: Bearer <token>`. Predictions are logged to .mlkit/predictions/ (Parquet, by
    day). SIGTERM or Ctrl-C answers the requests in flight and exits 0; a second signal, or requests
    still open after --drain-seconds, exits 130.

    Example: mlkit serve churn@production --port 8080
    """
    from mlkit.cli import _output
    from mlkit.project import load_project
    from mlkit.serving.server import ServeOptions, dockerfile_text, is_loopback
    from mlkit.serving.server import serve as run_server

    project = load_project()
    target = ref or f"{project.model_name}@{project.config.stages[-1]}"
    if dockerfile is not None:
        dockerfile.write_text(dockerfile_text(target, port=port))
        _output.status(f"wrote {dockerfile} (build it with `docker build -f {dockerfile} .`)")
        return
    token = os.environ.get(ENV_TOKEN) or None
    if not is_loopback(host):
        _output.warn(
            f"--host {host}: the server is reachable from other machines"
            + ("" if token else f"; set {ENV_TOKEN} to require a token")
        )
    options = ServeOptions(
        host=host,
        port=port,
        poll_seconds=poll,
        max_batch_rows=max_batch_rows,
        max_wait_ms=max_wait_ms,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        drain_seconds=drain_seconds,
        token=token,
        log=not no_log,
        log_sample=log_sample,
        log_max_bytes=int(log_max_mb * 1024 * 1024),
        workers=workers,
    )

    def listening(url: str) -> None:
        _output.status(f"listening on {url} (the model loads next; /health says when it is ready)")
        typer.echo(url)

    result = run_server(project, target, options, progress=_output.status, on_listening=listening)
    _output.status(
        f"stopped after {result.requests} /invocations requests"
        + ("" if result.drained else " (requests were still open)")
    )
    if not result.drained:
        raise KeyboardInterrupt


def predict(
    ref: str = typer.Argument(..., metavar="NAME@STAGE", help=_REF_HELP),
    source: Path = typer.Argument(..., metavar="INPUT", help="A CSV or Parquet file with the data's columns."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Where to write the rows with a prediction column (.csv or .parquet)."
    ),
    chunk_rows: int = typer.Option(100_000, "--chunk-rows", min=1, help="Rows read and scored at a time."),
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Score a CSV or Parquet file with a registered model, chunk by chunk (memory stays bounded).

    The output holds the input rows, in order, with a `prediction` column: the labels as they are in
    the data. When the project trains on Dask (training.backend: dask, training.scheduler or
    MLKIT_DASK_SCHEDULER), the cluster's workers read, score and write the file; a Parquet output is
    then a folder of part files.

    Example: mlkit predict churn@production data/new_customers.csv -o scored.parquet
    """
    from mlkit.cli import _output
    from mlkit.project import load_project
    from mlkit.serving.batch import predict_file

    result = predict_file(load_project(), ref, source, output, chunk_rows=chunk_rows, progress=_output.status)
    data = result.to_dict()
    _output.emit(
        data,
        json_output=json_,
        table=lambda: _output.print_table(("field", "value"), [(k, str(v)) for k, v in data.items()]),
        summary_markdown=_output.mapping_markdown(f"mlkit predict {ref}", data),
        outputs={k: v for k, v in data.items() if isinstance(v, (str, int, float))},
    )
