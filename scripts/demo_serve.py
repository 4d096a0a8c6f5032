"""The demo's serving and monitoring part: the production model answers requests, the world moves, and
`mlkit monitor` sees it against the model's own training profile, which sends the loop back to training.

Everything here binds 127.0.0.1 and is stopped by its pid before the part ends.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

MLKIT = str(Path(sys.executable).with_name("mlkit"))
# the size of the cells: what a new scanner calibrated differently would move
SHIFTED = ("mean_radius", "mean_perimeter", "mean_area", "worst_radius", "worst_perimeter", "worst_area")


def serve_and_monitor(
    run: Callable[..., subprocess.CompletedProcess], project: Path, data_file: str, target: str
) -> None:
    rows = _rows(project / data_file, target)
    print(
        "\n\033[1m== serve the production model on 127.0.0.1\033[0m\n$ mlkit serve churn@production --port 0",
        flush=True,
    )
    server = subprocess.Popen(
        [MLKIT, "serve", "churn@production", "--port", "0", "--poll", "1"],
        cwd=project,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "CI": "true"},
    )
    try:
        url = _url(server)
        print(f"serving at {url}", flush=True)
        normal = _invoke(url, rows[:100])
        print(f"100 rows of the data file -> {len(normal)} labels, e.g. {normal[:3]}", flush=True)
        shifted = [{**row, **{name: row[name] * 1.8 for name in SHIFTED}} for row in rows[:300]]
        labels = _invoke(url, shifted)
        print(
            f"300 rows whose cell sizes ({', '.join(SHIFTED)}) grew by 80% -> labels "
            f"{ {label: labels.count(label) for label in sorted(set(labels))} }",
            flush=True,
        )
        with urllib.request.urlopen(f"{url}/version", timeout=10) as response:
            print(f"GET /version: {json.loads(response.read())}", flush=True)
    finally:
        server.send_signal(signal.SIGTERM)  # drains the requests in flight and exits
        server.wait(timeout=60)
    watched = run(
        "monitor the production model over the prediction log: exit 5 means the policy is crossed",
        "monitor",
        "churn@production",
        "--since",
        "1d",
        "--html",
        str(project.parent / "drift.html"),
        cwd=project,
        check=False,
    )
    if watched.returncode != 5:
        sys.exit(f"demo step failed: mlkit monitor exited {watched.returncode}, expected 5 (drift)")
    print(f"the report with a plot per drifted feature: {project.parent / 'drift.html'}", flush=True)
    print("\n\033[1m== the loop back: retrain on the newest data version\033[0m\n$ mlkit train --json", flush=True)
    trained = subprocess.run(
        [MLKIT, "train", "--json"], cwd=project, env={**os.environ, "CI": "true"}, capture_output=True, text=True
    )
    if trained.returncode != 0:
        sys.exit(f"demo step failed ({trained.returncode}): mlkit train --json\n{trained.stderr}")
    version = json.loads(trained.stdout)["model_version"]
    print(f"registered version {version}", flush=True)
    promoted = run(
        "and promote it through the gates to staging (exit 3 if a gate refuses it)",
        "promote",
        "churn",
        str(version),
        "--to",
        "staging",
        "--reason",
        "retrained after drift",
        cwd=project,
        check=False,
    )
    if promoted.returncode not in (0, 3):
        sys.exit(f"demo step failed: mlkit promote exited {promoted.returncode}")


def _rows(path: Path, target: str) -> list[dict[str, float]]:
    with path.open(newline="") as handle:
        return [{k: float(v) for k, v in row.items() if k != target} for row in csv.DictReader(handle)]


def _url(server: subprocess.Popen) -> str:
    assert server.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line and server.poll() is not None:
            sys.exit(f"demo step failed: mlkit serve exited {server.returncode}")
        if "http://" in line:
            url = line[line.index("http://") :].split()[0].rstrip("/")
            _wait_ready(url, deadline)
            return url
    sys.exit("demo step failed: mlkit serve did not say where it listens within 120 s")


def _wait_ready(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("demo step failed: mlkit serve did not become ready within 120 s")


def _invoke(url: str, rows: list[dict[str, float]]) -> list:
    body = json.dumps({"dataframe_records": rows}).encode()
    request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["predictions"]
