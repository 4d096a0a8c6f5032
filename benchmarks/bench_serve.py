"""`mlkit serve` against `mlflow models serve --env-manager local`: the same registered model, the same
loopback client, in one run.

The model is the classification template's (XGBoost, 200 trees, 31 raw columns and the feature hook).
The client is one asyncio process with C keep-alive connections, each sending one row per request for a
fixed time; it reports throughput and the p50/p99 latency. Also measured: start-up (process start to
the first healthy answer), identical predictions on the test split, and the cost of the prediction log.
Targets: at concurrency 32, >= 10x MLflow's throughput and p99 <= 1/5 of MLflow's; start-up <= 1/2;
the prediction log costs <= 5% of throughput, measured as the server's CPU time per request.

Run alone: `python benchmarks/bench_serve.py [--seconds S]`, or `nox -s bench -- serve`. Every server it
starts binds 127.0.0.1 and is stopped by its process id; every load loop ends by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _timing import clean_env, mlkit_executable

LEVELS = (1, 8, 32)
BASE, OFF, ON = "mlflow models serve", "mlkit serve (log off)", "mlkit serve (log on)"
HOST = "127.0.0.1"


# --- the client (run in a process of its own) -----------------------------------------------------------
async def _worker(port: int, request: bytes, until: float, latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n", 1)[0].decode())
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def _load(port: int, body: bytes, concurrency: int, seconds: float, warmup: float) -> dict[str, float]:
    request = (
        f"POST /invocations HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    if warmup:
        await asyncio.gather(
            *(_worker(port, request, time.perf_counter() + warmup, [], []) for _ in range(concurrency))
        )
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(*(_worker(port, request, started + seconds, latencies, errors) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "throughput": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else float("nan"),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000 if latencies else float("nan"),
    }


def client_main(argv: list[str]) -> None:
    port, concurrency, seconds, warmup, body_file = int(argv[0]), int(argv[1]), float(argv[2]), float(argv[3]), argv[4]
    result = asyncio.run(_load(port, Path(body_file).read_bytes(), concurrency, seconds, warmup))
    print(json.dumps(result))


# --- the servers --------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{url} did not become healthy")


class Server:
    def __init__(self, name: str, argv: list[str], health: str, cwd: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = _free_port()
        argv = [a.replace("{port}", str(self.port)) for a in argv]
        log = cwd.parent / f"server-{self.port}.log"
        started = time.perf_counter()
        with open(log, "wb") as stream:
            self.process = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=stream, start_new_session=True
            )
        _wait_healthy(f"http://{HOST}:{self.port}{health}", self.process, log)
        self.startup = time.perf_counter() - started

    def predict(self, document: dict) -> list:
        request = urllib.request.Request(
            f"http://{HOST}:{self.port}/invocations",
            json.dumps(document).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())["predictions"]

    def load(self, body_file: Path, concurrency: int, seconds: float, warmup: float) -> dict[str, float]:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--client",
                str(self.port),
                str(concurrency),
                str(seconds),
                str(warmup),
                str(body_file),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)

    def cpu_seconds(self) -> float:
        """User and system CPU time of the server process so far (Linux /proc), its threads included."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the process group this benchmark started
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def make_project(base: Path, env: dict[str, str]) -> Path:
    mlkit = mlkit_executable()
    subprocess.run(
        [mlkit, "init", "bench", "--data-remote", str(base / "remote")],
        cwd=base,
        env=env,
        check=True,
        capture_output=True,
    )
    root = base / "bench"
    subprocess.run([mlkit, "train"], cwd=root, env=env, check=True, capture_output=True)
    return root


def test_split(root: Path) -> tuple[list[str], list[list[object]]]:
    """The raw rows of the test split training evaluated on (same seed, same stratification)."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    frame = pd.read_csv(root / "data" / "breast_cancer.csv")
    features, target = frame.drop(columns=["diagnosis"]), frame["diagnosis"]
    _, test, _, _ = train_test_split(features, target, test_size=0.2, random_state=42, stratify=target)
    return list(test.columns), test.astype(object).to_numpy().tolist()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per concurrency level")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--startups", type=int, default=3, help="measured start-ups per server (median)")
    parser.add_argument("--log-rounds", type=int, default=3, help="turns of log off / on for its cost (median)")
    args, _ = parser.parse_known_args()
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    with tempfile.TemporaryDirectory(prefix="mlkit-bench-serve-") as tmp:
        env = {k: v for k, v in clean_env().items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        root = make_project(Path(tmp), env)
        # MLflow runs `uvicorn` by name: the one of this environment
        path = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env_mlflow = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{root / '.mlkit' / 'mlflow.db'}", "PATH": path}
        columns, rows = test_split(root)
        body_file = Path(tmp) / "one-row.json"
        body_file.write_text(json.dumps({"dataframe_split": {"columns": columns, "data": [rows[0]]}}))
        split = {"dataframe_split": {"columns": columns, "data": rows}}
        servers = {
            BASE: (
                [
                    mlflow,
                    "models",
                    "serve",
                    "-m",
                    "models:/bench/1",
                    "--env-manager",
                    "local",
                    "-h",
                    HOST,
                    "-p",
                    "{port}",
                ],
                "/ping",
                env_mlflow,
            ),
            OFF: ([mlkit_executable(), "serve", "bench/1", "--port", "{port}", "--no-log"], "/health", env),
            ON: ([mlkit_executable(), "serve", "bench/1", "--port", "{port}"], "/health", env),
        }
        # start-up: the servers take turns, a first round (filling the byte-code cache) not counted
        startups: dict[str, list[float]] = {name: [] for name in servers}
        for round_ in range(args.startups + 1):
            for name, (argv, health, server_env) in servers.items():
                server = Server(name, argv, health, root, server_env)
                server.stop()
                if round_:
                    startups[name].append(server.startup)
        results: dict[str, dict[str, object]] = {}
        predictions: dict[str, list] = {}
        for name, (argv, health, server_env) in servers.items():
            server = Server(name, argv, health, root, server_env)
            try:
                predictions[name] = server.predict(split)
                levels = {c: server.load(body_file, c, args.seconds, args.warmup) for c in LEVELS}
            finally:
                server.stop()
            results[name] = {"startup": statistics.median(startups[name]), "levels": levels}
        # the prediction log's cost: throughput on a loaded shared machine moves by more than 5% from
        # one run to the next, so the cost is measured as the server's own CPU time per request (from
        # /proc), log off and on taking turns over the same request stream; the log's writer thread
        # flushes every second, so the count waits for its last flush
        turns: dict[str, list[float]] = {OFF: [], ON: []}
        cpu: dict[str, list[float]] = {OFF: [], ON: []}
        for _ in range(args.log_rounds):
            for name in turns:
                argv, health, server_env = servers[name]
                server = Server(name, argv, health, root, server_env)
                try:
                    server.load(body_file, LEVELS[-1], args.warmup, 0)
                    before = server.cpu_seconds()
                    measured = server.load(body_file, LEVELS[-1], args.seconds, 0)
                    time.sleep(1.5)
                    cpu[name].append((server.cpu_seconds() - before) / measured["requests"] * 1e6)
                    turns[name].append(measured["throughput"])
                finally:
                    server.stop()
        _print(
            results,
            predictions,
            len(rows),
            {name: statistics.median(v) for name, v in turns.items()},
            {name: statistics.median(v) for name, v in cpu.items()},
        )
        print(f"  load average during the run: {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[2]:.1f} (15 min)")


def _print(
    results: dict[str, dict[str, object]],
    predictions: dict[str, list],
    test_rows: int,
    turns: dict[str, float],
    cpu: dict[str, float],
) -> None:
    base, fast, logged = BASE, OFF, ON
    print("\n## serve: one row per request, loopback, keep-alive (start-up: median, process start to healthy)")
    print(
        "| server | start-up s | "
        + " | ".join(f"c={c} req/s | c={c} p50 ms | c={c} p99 ms" for c in LEVELS)
        + " | errors |"
    )
    print("|---|---:|" + "---:|" * (3 * len(LEVELS)) + "---:|")
    for name, data in results.items():
        levels = data["levels"]
        assert isinstance(levels, dict)
        cells = [
            f"{levels[c]['throughput']:.0f} | {levels[c]['p50_ms']:.1f} | {levels[c]['p99_ms']:.1f}" for c in LEVELS
        ]
        errors = sum(int(levels[c]["errors"]) for c in LEVELS)
        print(f"| {name} | {data['startup']:.1f} | " + " | ".join(cells) + f" | {errors} |")
    top = LEVELS[-1]

    def level(name: str) -> dict[str, float]:
        return results[name]["levels"][top]  # type: ignore[index]

    speedup = level(fast)["throughput"] / level(base)["throughput"]
    p99 = level(fast)["p99_ms"] / level(base)["p99_ms"]
    startup = float(results[fast]["startup"]) / float(results[base]["startup"])  # type: ignore[arg-type]
    log_cost = cpu[logged] / cpu[fast] - 1
    same = predictions[base] == predictions[fast] == predictions[logged]
    print(f"\n  c={top} throughput: {speedup:.1f}x MLflow's (target >= 10x): {'met' if speedup >= 10 else 'NOT met'}")
    print(f"  c={top} p99: {p99:.2f} of MLflow's (target <= 0.20): {'met' if p99 <= 0.2 else 'NOT met'}")
    print(f"  start-up: {startup:.2f} of MLflow's (target <= 0.50): {'met' if startup <= 0.5 else 'NOT met'}")
    print(
        f"  prediction log cost at c={top}: {log_cost * 100:+.1f}% server CPU per request (target <= 5%; medians "
        f"of turns: off {cpu[fast]:.0f} us, on {cpu[logged]:.0f} us per request; throughput off "
        f"{turns[fast]:.0f}/s, on {turns[logged]:.0f}/s): " + ("met" if log_cost <= 0.05 else "NOT met")
    )
    print(f"  identical predictions on the test split ({test_rows} rows): {'yes' if same else 'NO'}")
    sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(sys.argv[2:])
    else:
        main()
