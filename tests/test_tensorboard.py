"""`make tensorboard` serves the run's scalars: start the real server and read them over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from rnnzoo.api import train

from .conftest import TINY_COPY, compose_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:  # loopback only
        return json.loads(response.read())


def tensorboard_command() -> list[str]:
    script = Path(sys.executable).with_name("tensorboard")
    if script.exists():
        return [str(script)]
    found = shutil.which("tensorboard")
    if found is None:
        pytest.skip("the tensorboard command is not installed")
    return [found]


def test_tensorboard_serves_the_run_scalars(tmp_path):
    outputs = tmp_path / "outputs"
    train(compose_config(TINY_COPY), outputs / "run")
    port = free_port()
    server = subprocess.Popen([*tensorboard_command(), "--logdir", str(outputs), "--host", "127.0.0.1",
                               "--port", str(port), "--load_fast=false", "--reload_interval=1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=dict(os.environ, PYTHONWARNINGS="ignore"))
    base = f"http://127.0.0.1:{port}"
    try:
        tags = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "run/tb" not in tags:
            try:
                tags = get_json(f"{base}/data/plugin/scalars/tags")
            except OSError:
                pass
            time.sleep(0.5)
        assert "run/tb" in tags, f"TensorBoard never listed the run: {tags}"
        assert {"train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s", "val/loss",
                "val/recall_accuracy"} <= set(tags["run/tb"])
        query = urllib.parse.urlencode({"run": "run/tb", "tag": "train/loss"})
        points = get_json(f"{base}/data/plugin/scalars/scalars?{query}")
        assert [step for _, step, _ in points] == [1, 2, 3, 4, 5, 6]
        assert all(value > 0 for _, _, value in points)
    finally:
        server.terminate()
        server.wait(timeout=10)
