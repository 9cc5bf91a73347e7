"""Shared fixtures: composing configs as the CLI does, tiny training budgets, data paths."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from rnnzoo.config import compose_train as compose_as_cli  # the fixture below takes the name

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("RNNZOO_DATA_DIR", ROOT.parent / "shared" / "data"))

# Small and quick: a few steps of a small model on short sequences.
TINY = ["trainer.max_steps=6", "trainer.eval_every=3", "trainer.log_every=1", "trainer.progress=false",
        "model.hidden_size=16", "task.batch_size=8", "task.eval_examples=32"]
TINY_COPY = ["task=copy", *TINY, "task.length=3", "task.delay=2", "task.alphabet=4"]
TINY_ADDING = ["task=adding", *TINY, "task.length=8"]

torch.set_num_threads(1)  # tests run side by side on small machines

# Token caches of this test session (and of the CLI runs it starts) go to a folder of its own,
# never into the user's ~/.cache; tests of the cache itself give their own folders.
if not os.environ.get("RNNZOO_TEST_KEEP_CACHE_DIR"):
    os.environ["RNNZOO_CACHE_DIR"] = tempfile.mkdtemp(prefix="rnnzoo-test-cache-")
    atexit.register(shutil.rmtree, os.environ["RNNZOO_CACHE_DIR"], True)


def compose_config(overrides: list[str], name: str = "train") -> DictConfig:
    """The config `rnnzoo train OVERRIDES` would compose."""
    return compose_as_cli(overrides, name)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`rnnzoo ARGS` in a subprocess, as a user would type it."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "rnnzoo", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


@pytest.fixture
def compose_train():
    return compose_config


def padded_translation_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For encoder-decoders with source vocabulary >= 11 and target vocabulary >= 13: 3 sources
    of lengths 7, 4, 2 (right-padded with 0) and 5 target tokens each."""
    generator = torch.Generator().manual_seed(1)
    lengths = torch.tensor([7, 4, 2])
    source = torch.randint(5, 11, (3, 7), generator=generator)
    source[torch.arange(7) >= lengths[:, None]] = 0
    target = torch.randint(5, 13, (3, 5), generator=generator)
    return source, lengths, target


def assert_ignores_the_future(model: torch.nn.Module, input_size: int) -> None:
    """Changing inputs from step 5 on leaves outputs before step 5 exactly as they were
    (and does change the later ones): the model is causal."""
    x = torch.randn(2, 9, input_size)
    changed = x.clone()
    changed[:, 5:] += torch.randn(2, 4, input_size)
    out, _ = model(x)
    out_changed, _ = model(changed)
    torch.testing.assert_close(out_changed[:, :5], out[:, :5], atol=0, rtol=0)
    assert not torch.allclose(out_changed[:, 5:], out[:, 5:])
