"""Scale: mixed precision, torch.compile, several processes (DDP), checkpoints across devices.

The distributed tests run 2 gloo processes on the CPU: through the CLI (`trainer.devices=2`,
which relaunches itself with torchrun) and through torch.multiprocessing with torchrun's
environment variables set by hand. Each checks that the 2 processes train exactly as one
process does on the same global batch. Tests marked `gpu` need CUDA and skip without it.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from rnnzoo.api import build, plain, train
from rnnzoo.errors import RnnzooError
from rnnzoo.tasks.base import SequenceBatch
from rnnzoo.tasks.copy import CopyTask
from rnnzoo.training import compile as compile_module
from rnnzoo.training.checkpoint import load_checkpoint_file, save_checkpoint
from rnnzoo.training.compile import compile_blocker
from rnnzoo.training.distributed import shard_rows

from .conftest import TINY_COPY, compose_config, run_cli

CPU = [*TINY_COPY, "trainer.device=cpu"]
# 7 rows split 3 + 4: the two processes' loss means cover different counts, so only the
# exact weighting (loss_sum / global count) matches one process; 2 BPTT windows per batch
# accumulated into one step exercise DDP's no_sync
SHARED = [*CPU, "task.batch_size=7", "trainer.tbptt_steps=4", "trainer.accumulate=2"]


def history(run_dir: Path) -> list[list[float]]:
    return load_checkpoint_file(run_dir / "checkpoints" / "last.pt")["history"]


def losses(run_dir: Path) -> list[float]:
    return [loss for _, loss in history(run_dir)]


def assert_same_parameters(run_a: Path, run_b: Path) -> None:
    a = load_checkpoint_file(run_a / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint_file(run_b / "checkpoints" / "last.pt")["model"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6, msg=key)


# --- mixed precision ----------------------------------------------------------------------
def record_head_dtypes(monkeypatch) -> list[tuple[bool, torch.dtype]]:
    """(training?, dtype) of every output of the copy network's head (a Linear)."""
    seen: list[tuple[bool, torch.dtype]] = []
    real = CopyTask.build_network

    def build_network(self, body):
        network = real(self, body)
        network.head.register_forward_hook(lambda module, inputs, output: seen.append((module.training, output.dtype)))
        return network

    monkeypatch.setattr(CopyTask, "build_network", build_network)
    return seen


def test_bf16_trains_under_bfloat16_autocast_and_evaluates_in_float32(tmp_path, monkeypatch):
    seen = record_head_dtypes(monkeypatch)
    final = train(compose_config([*CPU, "trainer.precision=bf16"]), tmp_path)
    assert {dtype for training, dtype in seen if training} == {torch.bfloat16}
    assert {dtype for training, dtype in seen if not training} == {torch.float32}
    assert len(history(tmp_path)) == 6 and all(math.isfinite(loss) for loss in losses(tmp_path))
    assert math.isfinite(final["test/loss"])


def test_float16_is_refused_on_the_cpu_naming_what_runs_there(tmp_path):
    with pytest.raises(RnnzooError, match=r"trainer.precision=16 is not available on cpu .*choices there: 32, bf16"):
        train(compose_config([*CPU, "trainer.precision=16"]), tmp_path)


def test_a_bad_precision_names_the_choices(tmp_path):
    with pytest.raises(RnnzooError, match=r"trainer.precision='8' is not one of: 32, bf16, 16"):
        train(compose_config([*CPU, "trainer.precision=8"]), tmp_path)


# --- torch.compile ------------------------------------------------------------------------
@pytest.mark.parametrize("compiler", ["usable", "missing"])
def test_compiled_runs_save_checkpoints_an_eager_network_loads(tmp_path, monkeypatch, caplog, compiler):
    """Inductor's first compile takes minutes on a busy CPU: the test compiles with dynamo's
    eager backend, which wraps the network (and its state_dict keys) just the same."""
    calls = []
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model: calls.append(model) or real_compile(model, backend="eager"))
    if compiler == "missing":
        monkeypatch.setattr(compile_module, "compiler_missing", lambda device: "no C++ compiler found")
    config = compose_config([*CPU, "trainer.compile=true"])
    with caplog.at_level(logging.WARNING, logger="rnnzoo"):
        train(config, tmp_path)
    assert len(calls) == (1 if compiler == "usable" else 0)
    notices = [r.getMessage() for r in caplog.records if "trainer.compile" in r.getMessage()]
    expected = [] if compiler == "usable" else ["trainer.compile=true: no C++ compiler found; training eagerly"]
    assert notices == expected
    saved = load_checkpoint_file(tmp_path / "checkpoints" / "best.pt")["model"]
    assert not [key for key in saved if "_orig_mod" in key]
    _task, network, _ = build(plain(config))
    network.load_state_dict(saved, strict=True)


def test_networks_looping_in_python_stay_eager(tmp_path, caplog):
    from rnnzoo.api import create_model

    assert compile_blocker(create_model("lstm", input_size=4, hidden_size=8)) is None
    assert compile_blocker(create_model("transformer", shape="decoder", input_size=4)) is None
    assert "impl=reference" in compile_blocker(create_model("lstm", input_size=4, hidden_size=8, impl="reference"))
    assert "runs its time loop in Python" in compile_blocker(create_model("jordan", input_size=4, hidden_size=8))
    seq2seq = create_model("seq2seq", source_vocab_size=10, target_vocab_size=10)
    assert "decodes one target step at a time" in compile_blocker(seq2seq)

    class Declared(torch.nn.Linear):
        compile_friendly = False

    assert compile_blocker(torch.nn.Sequential(Declared(2, 2))) == "Declared declares compile_friendly = False"
    with caplog.at_level(logging.WARNING, logger="rnnzoo"):
        train(compose_config(["model=jordan", *CPU, "trainer.compile=true", "trainer.max_steps=1"]), tmp_path)
    assert any("Jordan runs its time loop in Python" in r.getMessage() for r in caplog.records)


# --- several processes --------------------------------------------------------------------
def test_each_rank_takes_a_contiguous_share_of_every_row_field():
    batch = SequenceBatch(torch.arange(14).view(7, 2), torch.zeros(7, 2), torch.ones(7, 2, dtype=torch.bool),
                          torch.arange(7))
    shares = [shard_rows(batch, rank, 2) for rank in range(2)]
    assert [s.inputs[:, 0].tolist() for s in shares] == [[0, 2, 4], [6, 8, 10, 12]]
    assert [s.lengths.tolist() for s in shares] == [[0, 1, 2], [3, 4, 5, 6]]
    with pytest.raises(RnnzooError, match="a training batch of 7 rows cannot be shared by 8 processes"):
        shard_rows(batch, 0, 8)


def test_devices_without_a_launcher_is_a_user_error(tmp_path):
    with pytest.raises(RnnzooError, match="trainer.devices=2 but this process was not started .* choices here: 1"):
        train(compose_config([*CPU, "trainer.devices=2"]), tmp_path)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> dict[int, Path]:
    """Single-process runs of SHARED for 6 and for 8 steps: what the shared runs must equal."""
    root = tmp_path_factory.mktemp("one")
    runs = {steps: root / str(steps) for steps in (6, 8)}
    for steps, run_dir in runs.items():
        train(compose_config([*SHARED, f"trainer.max_steps={steps}"]), run_dir)
    return runs


@pytest.fixture(scope="module")
def two_processes_cli(tmp_path_factory):
    """`rnnzoo train trainer.devices=2 ...`, run from an empty working directory."""
    root = tmp_path_factory.mktemp("two")
    (root / "cwd").mkdir()
    result = run_cli("train", *SHARED, "trainer.devices=2", f"hydra.run.dir={root / 'run'}", cwd=root / "cwd",
                     timeout=120)
    assert result.returncode == 0, result.stderr
    return root, result


def test_two_processes_train_exactly_as_one(one_process, two_processes_cli):
    root, result = two_processes_cli
    run_dir = root / "run"
    assert [step for step, _ in history(run_dir)] == list(range(1, 7))
    assert losses(run_dir) == pytest.approx(losses(one_process[6]), rel=1e-5)
    assert_same_parameters(run_dir, one_process[6])
    metrics = (run_dir / "metrics.json").read_text()
    assert metrics.count("test/loss") == 1 and "test/recall_accuracy" in result.stdout
    assert len(load_checkpoint_file(run_dir / "checkpoints" / "last.pt")["ranks"]) == 2


def test_only_rank_zero_writes(two_processes_cli):
    root, result = two_processes_cli
    assert list((root / "cwd").iterdir()) == []  # rank 1 wrote nothing where it ran
    assert len(list((root / "run" / "tb").glob("events.out.tfevents.*"))) == 1
    assert (root / "run" / "train.log").read_text().count("finished at step 6") == 1
    assert result.stdout.count("run folder:") == 1


def test_a_two_process_checkpoint_resumes_in_one_process(one_process, two_processes_cli, tmp_path):
    root, _ = two_processes_cli
    resumed = [*SHARED, "trainer.max_steps=8", f"resume={root / 'run' / 'checkpoints' / 'last.pt'}"]
    train(compose_config(resumed), tmp_path)
    assert losses(tmp_path) == pytest.approx(losses(one_process[8]), rel=1e-5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rank_main(rank: int, world_size: int, port: int, config: dict, run_dir: str) -> None:
    """One process of a distributed run, with the environment torchrun would give it."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    train(config, run_dir)


def test_two_processes_resume_a_one_process_checkpoint(one_process, tmp_path):
    """Every rank loads the checkpoint; the run goes on as the uninterrupted one."""
    checkpoint = one_process[6] / "checkpoints" / "last.pt"
    config = plain(compose_config([*SHARED, "trainer.max_steps=8", f"resume={checkpoint}"]))
    mp.spawn(rank_main, args=(2, free_port(), config, str(tmp_path)), nprocs=2)
    assert losses(tmp_path) == pytest.approx(losses(one_process[8]), rel=1e-5)
    assert_same_parameters(tmp_path, one_process[8])


# --- checkpoints across devices -----------------------------------------------------------
def claim_cuda_storage(monkeypatch) -> None:
    """Make torch.save record every tensor as living on cuda:0, as on a GPU machine."""
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")


def test_a_checkpoint_written_on_a_gpu_resumes_on_the_cpu(tmp_path, monkeypatch):
    config = [*CPU, "trainer.max_steps=3"]
    train(compose_config(config), tmp_path / "first")
    payload = load_checkpoint_file(tmp_path / "first" / "checkpoints" / "last.pt")
    payload.pop("rnnzoo_format")
    cuda_rng = torch.cuda.get_rng_state() if torch.cuda.is_available() else torch.zeros(16, dtype=torch.uint8)
    payload["rng"]["cuda"] = [cuda_rng]
    gpu_written = tmp_path / "gpu.pt"
    with monkeypatch.context() as patch:
        claim_cuda_storage(patch)
        save_checkpoint(payload, gpu_written)
    if not torch.cuda.is_available():  # the file really asks for CUDA unless mapped to the CPU
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(gpu_written, weights_only=True)
    final = train(compose_config([*CPU, "trainer.max_steps=6", f"resume={gpu_written}"]), tmp_path / "second")
    assert final["train/steps"] == 6


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["32", "bf16", "16"])
def test_gpu_runs_and_checkpoints_cross_devices(tmp_path, precision):
    """Train on the GPU; resume that checkpoint on the CPU, and a CPU checkpoint on the GPU."""
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bfloat16 on this GPU")
    gpu = [*TINY_COPY, "trainer.device=cuda", f"trainer.precision={precision}"]
    final = train(compose_config([*gpu, "trainer.compile=true"]), tmp_path / "gpu")
    assert math.isfinite(final["test/loss"])
    gpu_checkpoint = tmp_path / "gpu" / "checkpoints" / "last.pt"
    train(compose_config([*CPU, "trainer.max_steps=8", f"resume={gpu_checkpoint}"]), tmp_path / "on_cpu")
    assert len(history(tmp_path / "on_cpu")) == 8
    cpu_checkpoint = tmp_path / "on_cpu" / "checkpoints" / "last.pt"
    train(compose_config([*gpu, "trainer.max_steps=10", f"resume={cpu_checkpoint}"]), tmp_path / "back")
    assert len(history(tmp_path / "back")) == 10
