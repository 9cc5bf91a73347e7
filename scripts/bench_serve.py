"""Requests per second of `rnnzoo serve` for a classification BiLSTM on one core, every answer checked.

The server runs pinned to one CPU core (`taskset -c CORE`, torch with one thread, one worker
thread); this script, the client, runs on the other cores. It sends the SST-2 test sentences,
one per request, from `--clients` threads over keep-alive connections on loopback, a bounded
load (`--requests` in all), and checks every answer's label against what `rnnzoo predict`'s
code (the task's `predict`) says for that sentence in this process. It prints requests/s
(after a warm-up), the latency percentiles and the count of wrong answers (must be 0).
Issue 19's target: >= 50 requests/s.

    python -m scripts.bench_serve [--checkpoint PATH] [--requests 2000] [--clients 4] [--core 0]

Without `--checkpoint` it trains `experiment=sst2_bilstm` (BiLSTM 2x150, 300-wide embeddings,
max pooling) for `--train-steps` steps first: the speed of an answer does not depend on how
well the model was trained, and a short run keeps the bench short.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from rnnzoo import api

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("RNNZOO_DATA_DIR", ROOT.parent / "shared" / "data"))


def train_checkpoint(folder: Path, steps: int) -> Path:
    """A short `rnnzoo train experiment=sst2_bilstm` run on one thread; its best checkpoint."""
    subprocess.run([sys.executable, "-m", "rnnzoo", "train", "experiment=sst2_bilstm", f"trainer.max_steps={steps}",
                    "trainer.max_time=null", f"trainer.eval_every={steps}", "trainer.num_threads=1",
                    "trainer.progress=false", "trainer.device=cpu", f"hydra.run.dir={folder}"], check=True)
    return folder / "checkpoints" / "best.pt"


def sentences() -> list[str]:
    path = DATA / "sst2" / "stsa.binary.test"
    if not path.is_file():
        sys.exit(f"bench_serve needs the SST-2 test file {path} (set RNNZOO_DATA_DIR)")
    return [line.split(" ", 1)[1].strip() for line in path.read_text().splitlines() if line.strip()]


def expected_labels(checkpoint: Path, texts: list[str]) -> list[str]:
    """`rnnzoo predict`'s label of each text, each alone (as the server sees it)."""
    network, task, _ = api.load_run(checkpoint)
    with torch.no_grad():
        return [next(task.predict(network, [text], torch.device("cpu"))) for text in texts]


def start_server(checkpoint: Path, core: int) -> tuple[subprocess.Popen, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pin = ["taskset", "-c", str(core)] if shutil.which("taskset") else []
    process = subprocess.Popen([*pin, sys.executable, "-m", "rnnzoo", "serve", f"checkpoint={checkpoint}",
                                f"port={port}", "trainer.num_threads=1", "trainer.device=cpu", "workers_threads=1"],
                               env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process, port
        except OSError:
            time.sleep(0.3)
    process.kill()
    sys.exit("rnnzoo serve did not come up")


def load(port: int, texts: list[str], expected: list[str], requests: int, clients: int) -> dict[str, float]:
    """`requests` requests from `clients` threads (request i asks text i mod len): rate, latencies, wrong answers."""
    latencies: list[float] = []
    wrong = [0]
    counter = iter(range(requests))
    lock = threading.Lock()

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            body = json.dumps({"text": texts[i % len(texts)]})
            start = time.perf_counter()
            connection.request("POST", "/api/predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            reply = json.loads(response.read())
            took = time.perf_counter() - start
            ok = response.status == 200 and reply["answer"]["label"] == expected[i % len(texts)]
            with lock:
                latencies.append(took)
                wrong[0] += not ok

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    latencies.sort()
    return {"requests": len(latencies), "seconds": seconds, "per_second": len(latencies) / seconds,
            "p50_ms": 1000 * latencies[len(latencies) // 2], "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
            "wrong": wrong[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="a classification checkpoint (default: train one)")
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--core", type=int, default=0, help="the CPU core the server runs on")
    args = parser.parse_args()
    texts = sentences()
    with tempfile.TemporaryDirectory(prefix="rnnzoo-bench-serve-") as tmp:
        checkpoint = args.checkpoint or train_checkpoint(Path(tmp) / "run", args.train_steps)
        expected = expected_labels(checkpoint, texts)
        others = set(range(os.cpu_count() or 1)) - {args.core}
        if others and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, others)  # the client off the server's core
        process, port = start_server(checkpoint, args.core)
        try:
            load(port, texts, expected, 50, args.clients)  # warm-up
            result = load(port, texts, expected, args.requests, args.clients)
        finally:
            process.terminate()
            process.wait(timeout=30)
    info = api.load_checkpoint(checkpoint)[1]["model"] if args.checkpoint else {"name": "lstm (sst2_bilstm)"}
    print(f"model {info.get('name')}, {len(texts)} SST-2 test sentences, {args.clients} client threads, "
          f"server on core {args.core}")
    print(f"{result['requests']} requests in {result['seconds']:.2f} s: {result['per_second']:.1f} requests/s; "
          f"latency p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms; wrong answers: {result['wrong']}")
    if result["wrong"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
