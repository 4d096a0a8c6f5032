"""`mlkit serve` as a real process on a free loopback port, hit by a real HTTP client: raw rows in and
labels out, the bad-input matrix, the token, metrics, the prediction log, a hot swap under load, and a
SIGTERM drain."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from _isolation import isolate
from _serving import LABELS, MLKIT, make_plans_project, mlkit, train

pytestmark = pytest.mark.slow

TOKEN = "s3rve-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROWS = [
    {"usage": 50.0, "tenure": 12, "year": 2020, "region": "west"},
    {"usage": None, "tenure": 30, "year": 2021, "region": None},
    {"usage": 3.0, "tenure": 2, "year": 2024, "region": "north"},
]
START_TIMEOUT = 240  # loading MLflow and the model on a busy two-core machine


class Served:
    def __init__(self, root: Path, process: subprocess.Popen[str], url: str) -> None:
        self.root, self.process, self.url = root, process, url
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def invoke(self, document: object, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], object]:
        status, head, body = self.request(
            "POST",
            "/invocations",
            json.dumps(document).encode(),
            {"Content-Type": "application/json", **AUTH, **(headers or {})},
        )
        return status, head, json.loads(body)


def start(root: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    process = subprocess.Popen(
        [MLKIT, "serve", *args, "--port", "0"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else url
    served = Served(root, process, url)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        status, _, body = served.request("GET", "/health")
        if status == 200:
            return served
        assert status == 503 and json.loads(body)["status"] == "loading"
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.2)
    raise AssertionError("the server did not become ready")


def stop(served: Served) -> tuple[int, str]:
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGTERM)
    _, err = served.process.communicate(timeout=120)
    return served.process.returncode, err


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("serve-e2e")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, base / "home")
        root = make_plans_project(base)
        assert train(root, trees=30) == "1"
        assert train(root, trees=60) == "2"
        mlkit("promote", "plans", "1", "--to", "staging", cwd=root)
        yield root


@pytest.fixture(scope="module")
def served(project: Path) -> Iterator[Served]:
    server = start(project, "plans@staging", "--poll", "0.5", "--max-body-mb", "0.5", env={"MLKIT_SERVE_TOKEN": TOKEN})
    yield server
    code, err = stop(server)
    assert code == 0, err


def test_raw_rows_in_labels_out_in_every_format(served):
    columns = list(ROWS[0])
    split = {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in ROWS]}}
    records = {"dataframe_records": ROWS}
    inputs = {"inputs": {c: [r[c] for r in ROWS] for c in columns}}
    answers = []
    for document in (split, records, inputs):
        status, head, body = served.invoke(document, {"X-Request-Id": "req-1"})
        assert status == 200, body
        assert head["x-request-id"] == "req-1" and head["x-mlkit-model-version"] == "1"
        answers.append(body["predictions"])
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == "premium" and answers[0][2] == "basic" and set(answers[0]) <= LABELS
    csv = "usage,tenure,year,region\n50.0,12,2020,west\n,30,,\n"
    status, _, body = served.request("POST", "/invocations", csv.encode(), {"Content-Type": "text/csv", **AUTH})
    assert status == 200 and json.loads(body)["predictions"][0] == "premium"
    status, _, body = served.invoke({**records, "params": {"probabilities": True}})
    assert status == 200
    assert [sorted(p) for p in body["predictions"]] == [["basic", "premium", "standard"]] * 3
    assert abs(sum(body["predictions"][0].values()) - 1.0) < 1e-6


@pytest.mark.parametrize(
    ("document", "status", "expected"),
    [
        (
            {"dataframe_records": [{"usage": 1.0, "tenure": 2, "region": "east"}]},
            422,
            {
                "error": "missing column 'year': expected long (an integer or null)",
                "column": "year",
                "expected": "long",
            },
        ),
        (
            {"dataframe_records": [{**ROWS[0], "plan": "basic"}]},
            422,
            {"error": "unexpected column 'plan'; the model takes: usage, tenure, year, region", "column": "plan"},
        ),
        (
            {"dataframe_records": [{**ROWS[0], "year": "soon"}]},
            422,
            {
                "error": "column 'year': expected long (an integer or null), got 'soon'",
                "column": "year",
                "expected": "long",
            },
        ),
        (
            {"dataframe_records": [{**ROWS[0], "tenure": 2.5}]},
            422,
            {
                "error": "column 'tenure': expected long (an integer or null), got 2.5",
                "column": "tenure",
                "expected": "long",
            },
        ),
        (
            {"dataframe_records": [{**ROWS[0], "usage": "lots"}]},
            422,
            {
                "error": "column 'usage': expected double (a number or null), got 'lots'",
                "column": "usage",
                "expected": "double",
            },
        ),
        (
            {"dataframe_records": [{**ROWS[0], "region": 5}]},
            422,
            {
                "error": "column 'region': expected string (a string or null), got 5",
                "column": "region",
                "expected": "string",
            },
        ),
        ({"rows": []}, 400, {"error": "the body must hold exactly one of: dataframe_split, dataframe_records, inputs"}),
        ({"dataframe_records": []}, 400, {"error": "the request has no rows"}),
        (
            {"dataframe_split": {"columns": ["usage"], "data": [[1.0, 2.0]]}},
            400,
            {"error": "dataframe_split: row 0 does not have 1 values"},
        ),
        (
            [1, 2],
            400,
            {"error": "the body must be a JSON object with one of: dataframe_split, dataframe_records, inputs"},
        ),
    ],
)
def test_bad_input_is_a_4xx_naming_the_problem(served, document, status, expected):
    got_status, _, body = served.invoke(document)
    assert (got_status, body) == (status, expected)


def test_malformed_too_large_and_wrong_requests(served):
    status, _, body = served.request("POST", "/invocations", b"{bad", {"Content-Type": "application/json", **AUTH})
    assert status == 400
    assert json.loads(body) == {
        "error": "malformed JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    }
    big = json.dumps({"dataframe_records": ROWS * 6000}).encode()
    assert len(big) > 512 * 1024
    status, head, body = served.request("POST", "/invocations", big, {"Content-Type": "application/json", **AUTH})
    assert status == 413 and head["connection"] == "close"
    assert json.loads(body) == {"error": f"the body ({len(big)} bytes) is larger than 524288 bytes"}
    status, _, body = served.request("POST", "/invocations", b"x", {"Content-Type": "text/plain", **AUTH})
    assert (status, json.loads(body)) == (
        415,
        {"error": "unsupported content type 'text/plain'; send application/json or text/csv"},
    )
    status, head, _ = served.request("GET", "/invocations", headers=AUTH)
    assert status == 405 and head["allow"] == "POST"
    status, _, body = served.request("GET", "/nowhere", headers=AUTH)
    assert (status, json.loads(body)) == (
        404,
        {"error": "no such path /nowhere; try /invocations, /health, /version, /metrics"},
    )


def test_the_token_guards_everything_but_health(served):
    document = json.dumps({"dataframe_records": ROWS}).encode()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        status, head, body = served.request("POST", "/invocations", document, headers)
        assert status == 401 and head["www-authenticate"] == "Bearer"
        assert json.loads(body) == {"error": "a bearer token is required (the server's MLKIT_SERVE_TOKEN)"}
    assert served.request("GET", "/version")[0] == 401
    assert served.request("GET", "/health")[0] == 200


def test_version_and_metrics(served):
    status, _, body = served.request("GET", "/version", headers=AUTH)
    info = json.loads(body)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=served.root, capture_output=True, text=True).stdout
    assert status == 200
    assert {k: info[k] for k in ("model", "version", "stage", "commit")} == {
        "model": "plans",
        "version": "1",
        "stage": "staging",
        "commit": head.strip(),
    }
    assert len(info["run_id"]) == 32
    status, head, body = served.request("GET", "/metrics", headers=AUTH)
    text = body.decode()
    assert status == 200 and head["content-type"].startswith("text/plain; version=0.0.4")
    assert 'mlkit_serve_requests_total{path="/invocations",code="200"}' in text
    assert 'mlkit_serve_request_latency_seconds_bucket{le="+Inf"}' in text
    assert "mlkit_serve_batch_rows_count" in text
    assert 'mlkit_serve_model_info{model="plans",version="1"} 1' in text


def test_the_prediction_log_is_parquet_by_day(served):
    import pyarrow.dataset as ds

    status, _, _ = served.invoke({"dataframe_records": ROWS}, {"X-Request-Id": "logged-1"})
    assert status == 200
    folder = served.root / ".mlkit" / "predictions"
    deadline = time.monotonic() + 30
    table = None
    while time.monotonic() < deadline:
        if list(folder.glob("date=*/part-*.parquet")):
            table = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
            if "logged-1" in table.column("_request_id").to_pylist():
                break
        time.sleep(0.3)
    assert table is not None
    assert table.column_names[:10] == [
        "_request_id",
        "_time",
        "_model",
        "_version",
        "_latency_ms",
        "_prediction",
        "usage",
        "tenure",
        "year",
        "region",
    ]
    rows = [r for r in table.to_pylist() if r["_request_id"] == "logged-1"]
    assert [(r["_model"], r["_version"], r["usage"], r["tenure"], r["year"], r["region"]) for r in rows] == [
        ("plans", "1", 50.0, 12, 2020, "west"),
        ("plans", "1", None, 30, 2021, None),
        ("plans", "1", 3.0, 2, 2024, "north"),
    ]
    assert rows[0]["_prediction"] == "premium"
    assert str(table.schema.field("_time").type) == "timestamp[us, tz=UTC]"
    assert all(
        p.parent.name == "date=" + time.strftime("%Y-%m-%d", time.gmtime())
        for p in folder.glob("date=*/part-*.parquet")
    )


def test_a_hot_swap_under_load_fails_no_request(served):
    """Four clients send requests while version 2 is promoted: every request succeeds, the version moves."""
    seen: list[list[str]] = [[] for _ in range(4)]
    failures: list[str] = []
    stop_at = threading.Event()

    def client(index: int) -> None:
        document = json.dumps({"dataframe_records": ROWS}).encode()
        conn = http.client.HTTPConnection(served.host, served.port, timeout=60)
        deadline = time.monotonic() + 180
        while not stop_at.is_set() and time.monotonic() < deadline:
            try:
                conn.request("POST", "/invocations", document, {"Content-Type": "application/json", **AUTH})
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    failures.append(f"{response.status} {body!r}")
                seen[index].append(response.getheader("X-Mlkit-Model-Version") or "")
            except Exception as exc:  # a dropped connection is a failure too
                failures.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection(served.host, served.port, timeout=60)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        mlkit("promote", "plans", "2", "--to", "staging", cwd=served.root)
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and not all(s and s[-1] == "2" for s in seen):
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        stop_at.set()
        for thread in threads:
            thread.join()
    assert failures == []
    for versions in seen:
        assert versions[0] == "1" and versions[-1] == "2"
        switched = versions.index("2")
        assert set(versions[switched:]) == {"2"}  # once a client saw the new version, never the old one
    assert json.loads(served.request("GET", "/version", headers=AUTH)[2])["version"] == "2"
    metrics = served.request("GET", "/metrics", headers=AUTH)[2].decode()
    assert "mlkit_serve_model_swaps_total 1" in metrics


def test_sigterm_answers_requests_in_flight_then_exits_0(project):
    server = start(project, "plans/1", "--no-log", "--drain-seconds", "60")
    document = json.dumps({"dataframe_records": ROWS * 20000}).encode()  # 60000 rows: a while to score
    answers: list[tuple[int, int]] = []

    def send() -> None:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=120)
        conn.request("POST", "/invocations", document, {"Content-Type": "application/json"})
        response = conn.getresponse()
        answers.append((response.status, len(json.loads(response.read())["predictions"])))
        conn.close()

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.5)  # the request is in: sent whole, being decoded and scored
    server.process.send_signal(signal.SIGTERM)
    sender.join(timeout=120)
    code, err = stop(server)
    assert answers == [(200, 60000)]
    assert code == 0, err
    assert "draining: answering the requests already received" in err
    assert err.strip().splitlines()[-1] == "stopped after 1 /invocations requests"
    with pytest.raises(ConnectionRefusedError):
        server.request("GET", "/health")


def _listeners(port: int) -> int:
    """Sockets listening on ``port`` (IPv4) on this machine, from /proc/net/tcp."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A")


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the listening sockets from Linux's /proc")
def test_workers_share_the_port_and_stop_with_the_parent(project):
    server = start(project, "plans/1", "--no-log", "--workers", "2")
    workers = _children(server.process.pid)
    assert workers
    deadline = time.monotonic() + START_TIMEOUT
    while _listeners(server.port) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # the second worker listens once its model is loaded
    assert _listeners(server.port) == 2
    statuses = [server.invoke({"dataframe_records": ROWS})[0] for _ in range(40)]  # a new connection each
    assert statuses == [200] * 40
    code, err = stop(server)
    assert code == 0, err
    assert f"started 1 more worker processes on port {server.port}" in err
    deadline = time.monotonic() + 10  # the parent joined its workers; the kernel may take a moment to reap
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in workers if Path(f"/proc/{pid}").exists()] == []


def test_expect_100_continue_is_answered_before_the_body(served):
    """curl sends `Expect: 100-continue` for bodies over 1 KiB and waits for the interim answer."""
    import socket

    body = json.dumps({"dataframe_records": ROWS * 20}).encode()
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
    )
    with socket.create_connection((served.host, served.port), timeout=5) as sock:
        sock.sendall(head.encode())
        assert sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"]}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert len(json.loads(answer.split(b"\r\n\r\n", 1)[1])["predictions"]) == 60
