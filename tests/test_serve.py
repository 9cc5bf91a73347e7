"""`rnnzoo serve` through real servers: one uvicorn subprocess per task on a free loopback port,
each serving a checkpoint trained here for a few steps; requests with the standard library.

The answers must be what `rnnzoo predict / sample / translate` give for the same input (through
rnnzoo.api, in this process); every bad request is a 4xx JSON error naming what is wrong, and
the server answers /health afterwards; 200 requests from 8 threads all come back right.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from rnnzoo import api
from rnnzoo.errors import RnnzooError
from rnnzoo.serve import views
from rnnzoo.serve.app import create_app

from .conftest import compose_config
from .test_classification import TINY_CLASSIFICATION
from .test_classification import tiny_files as labeled_files
from .test_generation import TEXT
from .test_generation import tiny as tiny_generation
from .test_tagging import TINY_TAGGING
from .test_tagging import tiny_files as tagged_files
from .test_translation import TINY_TRANSLATION

FEW_STEPS = ["trainer.max_steps=3", "trainer.eval_every=3", "trainer.num_threads=1", "trainer.device=cpu"]
# the server's limits in these tests: small, so that going over them is cheap
LIMITS = ["max_request_bytes=4096", "max_input_tokens=20", "max_new_tokens=40"]


def run_overrides(task: str, folder: Path) -> list[str]:
    """Overrides of a tiny run of `task` (its data written into `folder`), from the tasks' own tests."""
    if task == "tagging":
        return [*TINY_TAGGING, *tagged_files(folder)]
    if task == "classification":
        return [*TINY_CLASSIFICATION, *labeled_files(folder)]
    if task == "generation":
        (folder / "corpus.txt").write_text(TEXT)
        return tiny_generation(folder / "corpus.txt", "task.sample_tokens=0")
    if task == "translation":
        return [*TINY_TRANSLATION, "dataset=reversal", "model=bahdanau"]
    return ["model=hopfield", "task=associative", "task.num_units=16", "task.num_patterns=2", "task.probes=8"]


def train_checkpoint(task: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    api.train(compose_config([*run_overrides(task, folder), *FEW_STEPS]), folder / "run")
    return folder / "run" / "checkpoints" / "best.pt"


@dataclass
class Server:
    """A `rnnzoo serve` subprocess and how to ask it."""

    url: str
    checkpoint: Path
    process: subprocess.Popen | None  # None: a server in this process
    log: Path | None

    def call(self, path: str, body: bytes | dict | None = None, method: str | None = None) -> tuple[int, dict]:
        """(HTTP status, decoded JSON) of a request; a body that is a dict is sent as JSON."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def ask(self, **body) -> dict:
        status, reply = self.call("/api/predict", body)
        assert status == 200, reply
        return reply

    def alive(self) -> bool:
        running = self.process is None or self.process.poll() is None
        return running and self.call("/health") == (200, {"status": "ok", "task": self.task})

    @property
    def task(self) -> str:
        return self.call("/info")[1]["task"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(checkpoint: Path, *overrides: str, log: Path | None = None) -> Server:
    """`rnnzoo serve checkpoint=...` on a free loopback port (not yet waited for: see `wait_ready`)."""
    port = free_port()
    log = log or checkpoint.with_suffix(f".serve-{port}.log")
    out = open(log, "w")
    process = subprocess.Popen([sys.executable, "-m", "rnnzoo", "serve", f"checkpoint={checkpoint}", f"port={port}",
                                "trainer.num_threads=1", "trainer.device=cpu", *overrides],
                               stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    return Server(f"http://127.0.0.1:{port}", checkpoint, process, log)


def wait_ready(server: Server, timeout: float = 120) -> Server:
    """Poll /health until it answers; fail with the server's log if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.2)
    if server.process is not None:
        server.process.kill()
    pytest.fail(f"rnnzoo serve did not come up:\n{server.log.read_text() if server.log else ''}")


def stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


TASKS = ["tagging", "classification", "generation", "translation", "associative"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """task -> a running server of a checkpoint of that task (trained once for the module; the
    servers start side by side)."""
    root = tmp_path_factory.mktemp("serve")
    started = {task: start_server(train_checkpoint(task, root / task), *LIMITS) for task in TASKS}
    try:
        yield {task: wait_ready(server) for task, server in started.items()}
    finally:
        for server in started.values():
            stop(server)


def cli_config(server: Server, **options) -> dict:
    """The config `rnnzoo predict|sample|translate checkpoint=...` would compose."""
    return {"checkpoint": str(server.checkpoint), "trainer": {"device": "cpu", "num_threads": 1}, **options}


def test_the_server_reads_its_checkpoint_once(servers, monkeypatch):
    """The model and /info come from one read of the checkpoint file (a BERT-base one is 440 MB)."""
    from rnnzoo.serve import model as served
    from rnnzoo.training import checkpoint
    reads = []
    counting = lambda path: reads.append(path) or checkpoint.load_checkpoint_file(path)  # noqa: E731
    monkeypatch.setattr(served, "load_checkpoint_file", counting)
    monkeypatch.setattr("rnnzoo.build.load_checkpoint_file", counting)
    checkpoint_path = servers["classification"].checkpoint
    model = served.ServedModel({"checkpoint": str(checkpoint_path), "trainer": {"device": "cpu"},
                                "max_input_tokens": 64, "max_new_tokens": 8})
    assert reads == [str(checkpoint_path)] and model.info["metrics"]["step"] is not None


# --- answers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", TASKS)
def test_info_names_the_task_its_vocabularies_and_metrics(servers, task):
    status, info = servers[task].call("/info")
    assert status == 200 and info["task"] == task and info["parameters"] > 0
    assert info["metrics"]["step"] is not None and any(key.startswith("test/") for key in info["metrics"])
    if task != "associative":
        assert info["vocab_sizes"] and all(size > 0 for size in info["vocab_sizes"].values())


def test_tagging_answers_as_rnnzoo_predict(servers):
    sentence = "the big cat sat on a mat"
    reply = servers["tagging"].ask(text=sentence)
    answer = reply["answer"]
    assert answer["words"] == sentence.split()
    assert " ".join(answer["tags"]) == next(api.predict(cli_config(servers["tagging"]), [sentence]))
    probabilities = torch.tensor(answer["probabilities"])  # (W, K)
    assert probabilities.shape == (7, len(answer["tag_set"]))
    torch.testing.assert_close(probabilities.sum(1), torch.ones(7))
    heatmap = next(v for v in reply["views"] if v["kind"] == "heatmap")
    assert heatmap["rows"] == sentence.split() and heatmap["cols"] == answer["tag_set"]


def test_classification_answers_as_rnnzoo_predict(servers):
    text = "the film was really superb"
    answer = servers["classification"].ask(text=text)["answer"]
    assert answer["label"] == next(api.predict(cli_config(servers["classification"]), [text]))
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-5
    assert max(answer["probabilities"], key=answer["probabilities"].get) == answer["label"]


def test_generation_continues_as_rnnzoo_sample(servers):
    options = {"max_new_tokens": 25, "temperature": 0.8, "top_k": 5, "seed": 7}
    reply = servers["generation"].ask(text="ROMEO:", **options)
    expected = "".join(api.sample(cli_config(servers["generation"], prompt="ROMEO:", **options)))
    assert reply["answer"]["continuation"] == expected
    steps = reply["views"][0]["steps"]
    assert len(steps) == 25 and all(len(step["top"]) == 10 for step in steps)
    assert all(step["top"][0]["p"] >= step["top"][-1]["p"] for step in steps)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_translation_answers_as_rnnzoo_translate_with_its_attention(servers, beam_size):
    source = "a b c d"
    answer = servers["translation"].ask(text=source, beam_size=beam_size)["answer"]
    expected = next(api.translate(cli_config(servers["translation"], beam_size=beam_size), [source]))
    assert answer["translation"] == expected
    attention = torch.tensor(answer["attention"])  # (target pieces + <eos>, source pieces)
    assert attention.shape == (len(answer["target_tokens"]), len(answer["source_tokens"]))
    torch.testing.assert_close(attention.sum(1), torch.ones(len(attention)))


def test_associative_recalls_the_probe_s_pattern_down_its_energy(servers):
    server = servers["associative"]
    probe = server.call("/info")[1]["example"]  # test probe 0: pattern 0 with units flipped
    answer = server.ask(text=probe)["answer"]
    network, task, _ = api.load_run(server.checkpoint)
    recalled = network.recall(torch.tensor([[1.0 if s == "+" else -1.0 for s in probe]]), task.config.steps,
                              generator=torch.Generator().manual_seed(0))
    assert answer["readout"] == recalled[0].tolist()
    assert answer["nearest_pattern"] == 0 and answer["overlap"] == 1.0
    energies = answer["energies"]
    assert len(energies) == len(answer["states"]) and all(a >= b for a, b in zip(energies, energies[1:]))


@pytest.mark.parametrize("task", TASKS)
def test_inside_sends_what_the_model_recorded(servers, task):
    body = {"text": servers[task].call("/info")[1]["example"] or "the cat sat", "inside": True}
    reply = servers[task].ask(**body)
    for tensor in reply["inside"]:  # whatever this model records (rnnzoo.nn.inside); none is also an answer
        assert tensor["name"] and len(tensor["shape"]) >= 1
        assert torch.tensor(tensor["values"]).shape == tuple(tensor["sent_shape"])
    assert len(reply["views"]) >= len(servers[task].ask(text=body["text"])["views"])


def test_recorded_tensors_become_labelled_heatmaps_and_curves():
    tokens = ["the", "cat", "sat"]
    inside = {"lstm.layer0.forward.input_gate": torch.rand(1, 3, 4), "hopfield.energy": torch.randn(1, 6),
              "big": torch.zeros(1, 1000, 1000)}
    sent = views.recorded(inside)
    big = torch.tensor(sent[2]["values"])
    assert sent[2]["shape"] == [1, 1000, 1000] and big.numel() <= views.MAX_VALUES
    assert list(big.shape) == sent[2]["sent_shape"]
    gate, energy, _ = views.recorded_views(sent, [tokens])
    assert gate["kind"] == "heatmap" and gate["rows"] == tokens and gate["cols"] == ["0", "1", "2", "3"]
    assert energy["kind"] == "curve" and len(energy["values"]) == 6


# --- refusals -------------------------------------------------------------------------------------
BAD_REQUESTS = [  # (task, body, status, what the message must name)
    ("classification", b"{not json", 400, "not valid JSON"),
    ("classification", b"\xff\xfe", 400, "not valid JSON"),
    ("classification", b'["a list"]', 422, "JSON object"),
    ("classification", {"text": 42}, 422, "text"),
    ("classification", {"text": "good", "inside": "yes"}, 422, "inside"),
    ("classification", {"text": "   "}, 422, "text: is empty"),
    ("classification", {}, 422, "text: missing"),
    ("classification", {"text": "good", "temperature": 1.0}, 422, "temperature: unknown field"),
    ("classification", {"text": "good " * 21}, 422, "limit of 20 (max_input_tokens)"),
    ("classification", b'{"text": "' + b"good " * 1000 + b'"}', 413, "limit of 4,096 bytes"),
    ("generation", {"text": "ROMEO", "max_new_tokens": 41}, 422, "max_new_tokens: 41 is over this server's limit"),
    ("generation", {"text": "ROMEO", "max_new_tokens": 0}, 422, "max_new_tokens"),
    ("generation", {"text": "ROMEO", "top_k": 0}, 422, "top_k"),
    ("generation", {"text": "ROMEO", "top_p": 1.5}, 422, "top_p"),
    ("generation", {"text": "ROMEO", "temperature": -1}, 422, "temperature"),
    ("generation", {"text": "ROMEO", "max_new_tokens": "5"}, 422, "max_new_tokens"),
    ("translation", {"text": "a b", "beam_size": 0}, 422, "beam_size"),
    ("translation", {"text": "a b", "beam_size": 1000}, 422, "beam_size"),
    ("associative", {"text": "+-x"}, 422, "+ and - only"),
    ("associative", {"text": "+-+"}, 422, "16 in all; got 3"),
]


@pytest.mark.parametrize("task, body, status, message", BAD_REQUESTS)
def test_a_bad_request_is_a_4xx_naming_what_is_wrong(servers, task, body, status, message):
    got, reply = servers[task].call("/api/predict", body)
    assert (got, set(reply)) == (status, {"error"}) and message in reply["error"], reply
    assert servers[task].alive()


def test_other_paths_and_methods_are_json_4xx(servers):
    server = servers["classification"]
    assert server.call("/no/such/path")[0] == 404 and "error" in server.call("/no/such/path")[1]
    assert server.call("/api/predict", method="GET")[0] == 405
    assert server.call("/health", b"{}", method="POST")[0] == 405
    assert server.alive()


def test_200_concurrent_requests_all_answered_right(servers):
    server = servers["classification"]
    texts = [" ".join(["the", "film", word, "really"][:1 + i % 4] + [word]) for i, word in
             enumerate(["good", "awful", "dull", "superb", "lovely", "boring", "fine", "poor"] * 3)]
    expected = {text: next(api.predict(cli_config(server), [text])) for text in texts}

    def ask(i: int) -> bool:
        text = texts[i % len(texts)]
        return server.ask(text=text, inside=i % 10 == 0)["answer"]["label"] == expected[text]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(200)))
    assert len(answers) == 200 and all(answers)
    assert server.alive()


def test_a_checkpoint_that_is_not_there_is_one_line_and_status_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "rnnzoo", "serve", f"checkpoint={tmp_path}/none.pt"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "checkpoint not found" in result.stderr


# --- the event loop, without a model ----------------------------------------------------------------
class Stuck:
    """A served model whose answer waits until released, or fails: what the app does around it."""

    task_name, info = "classification", {}

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def parse(self, body: dict) -> dict:
        return body

    def answer(self, ask: dict) -> dict:
        if ask["text"] == "fail":
            raise RuntimeError("the model broke")
        self.entered.set()
        assert self.release.wait(60)
        return {"task": "classification", "answer": {"label": "pos"}, "views": []}


@pytest.fixture
def stuck():
    import uvicorn

    model = Stuck()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(model, 1000), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield model, wait_ready(Server(f"http://127.0.0.1:{port}", Path(), None, None))
    model.release.set()
    server.should_exit = True
    thread.join(30)


def test_a_request_in_the_model_does_not_hold_up_health(stuck):
    model, server = stuck
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(server.call, "/api/predict", {"text": "slow"})
        assert model.entered.wait(60)
        assert server.call("/health") == (200, {"status": "ok", "task": "classification"}) and not pending.done()
        model.release.set()
        assert pending.result() == (200, {"task": "classification", "answer": {"label": "pos"}, "views": []})


def test_an_unexpected_failure_is_a_json_500_and_the_server_goes_on(stuck):
    _model, server = stuck
    failed = server.call("/api/predict", {"text": "fail"})
    assert failed == (500, {"error": "internal error: RuntimeError: the model broke"})
    assert server.call("/health")[0] == 200


# --- the command's own options: one line before anything loads --------------------------------
@pytest.mark.parametrize("key, value", [("port", 99999), ("port", 0), ("port", "abc"), ("workers_threads", 0),
                                        ("max_request_bytes", -1), ("max_new_tokens", True)])
def test_serve_refuses_an_option_out_of_its_range_by_name(key, value):
    from rnnzoo.serve.app import OPTION_RANGES, check_options

    config = {name: low for name, (low, _) in OPTION_RANGES.items()}
    check_options(config)  # the lowest allowed values pass
    with pytest.raises(RnnzooError, match=rf"^{key}={value!r}: must be an integer"):
        check_options({**config, key: value})


def test_serve_refuses_a_taken_port_with_one_line():
    from rnnzoo.serve.app import check_address

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RnnzooError, match=f"cannot serve on 127.0.0.1:{port}: .*choose another with port="):
            check_address("127.0.0.1", port)
    check_address("127.0.0.1", port)  # free again: accepted
