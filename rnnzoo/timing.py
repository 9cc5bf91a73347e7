"""Timing sequence models on a shared machine: interleaved rounds, medians, the machine's own peak.

Why this is library code and not a file of scripts/: the benchmark scripts (scripts/bench.py,
bench_cells.py, bench_trainer.py, bench_peers.py) run as plain files from anywhere an installed
rnnzoo is, and share these pieces. Kept in a script, the others could reach them only by putting
the script's folder on `sys.path`; here they are one import, and nothing in them needs a checkout.
What is specific to one benchmark (its tables, its models, its command line) stays in its script.

* `Candidate` is one thing to time (a forward call, a training step), `measure` times a list of
  them in interleaved rounds (every round times each once, in a rotated order, so that a busy
  moment of a shared machine hits all alike) and `Candidate.median` reads the median round.
* `interleaved_rates` times two training-step functions batch by batch, alternating which goes
  first: tokens/s of each.
* Baselines: `cell_loop` (PyTorch's naive way, one `nn.*Cell` call per step; `CELLS` maps each
  fused module to its cell), `matmul_candidates` (the machine's matmul peak and one recurrent
  step's matmul), `forward_flops` (2 x the weight-matrix entries of a module).
* The machine: `cpu_name`, `load_average`.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

CELLS = {nn.LSTM: nn.LSTMCell, nn.GRU: nn.GRUCell, nn.RNN: nn.RNNCell}


@dataclass
class Candidate:
    label: str
    family: str
    kind: str  # "rnnzoo", "torch twin", "torch cell loop", "matmul"
    flops: float  # per call of `infer` (forward); training counts 3x
    tokens: int
    infer: Callable[[], object]
    train: Callable[[], object] | None = None
    times: dict[str, list[float]] = field(default_factory=lambda: {"train": [], "infer": []})

    def median(self, mode: str) -> float:
        return statistics.median(self.times[mode])

    def tokens_per_s(self, mode: str) -> float:
        return self.tokens / self.median(mode)

    def spread(self) -> float:
        """Slowest over fastest round, the worse of train and infer: 1.1x is a quiet machine."""
        return max(max(t) / min(t) for t in self.times.values() if t)

    def gflops(self, mode: str) -> float:
        return (3 if mode == "train" else 1) * self.flops / self.median(mode) / 1e9


# --- what is timed ----------------------------------------------------------------------

def cell_loop(cell: nn.Module, lstm: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """The naive way: one nn.*Cell call per step, input projection included in each."""
    def forward(x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        h = x.new_zeros(B, cell.hidden_size)
        state = (h, h) if lstm else h
        outputs = []
        for x_t in x.unbind(1):
            state = cell(x_t, state)
            outputs.append(state[0] if lstm else state)
        return torch.stack(outputs, dim=1)  # (B, T, H)
    return forward


def forward_flops(model: nn.Module) -> float:
    """2 x the weight-matrix entries: each is one multiply-add per token per step."""
    return 2.0 * sum(p.numel() for p in model.parameters() if p.dim() == 2)


def matmul_candidates(B: int, H: int, peak_n: int, device: str | torch.device = "cpu") -> list[Candidate]:
    a, w = torch.randn(B, H, device=device), torch.randn(H, H, device=device)
    big_a, big_b = torch.randn(peak_n, peak_n, device=device), torch.randn(peak_n, peak_n, device=device)
    steps = 100  # one timed call = 100 step-sized matmuls, as a time loop would issue them
    def step() -> None:
        for _ in range(steps):
            torch.mm(a, w)
    return [Candidate(f"matmul ({B}x{H}) @ ({H}x{H})", "matmul", "matmul", 2.0 * B * H * H * steps, 0,
                      step),
            Candidate(f"matmul {peak_n}^2 (peak)", "matmul", "matmul", 2.0 * peak_n ** 3, 0,
                      lambda: torch.mm(big_a, big_b))]


# --- timing -----------------------------------------------------------------------------

def timed(fn: Callable[[], object], iters: int, clock: Callable[[], float] = time.perf_counter) -> float:
    start = clock()
    for _ in range(iters):
        fn()
    return (clock() - start) / iters


def measure(candidates: list[Candidate], rounds: int, min_time: float, warmup: int,
            clock: Callable[[], float] = time.perf_counter) -> None:
    """Fill each candidate's times: interleaved rounds, each timing >= min_time seconds of `clock`
    (`time.process_time`: this process's CPU time, which other processes' load does not inflate)."""
    jobs = [(c, mode, fn) for c in candidates for mode, fn in (("train", c.train), ("infer", c.infer))
            if fn is not None]
    iters = {}
    for c, mode, fn in jobs:
        for _ in range(warmup):
            fn()
        once = timed(fn, 1, clock)
        iters[c.label, mode] = max(1, math.ceil(min_time / max(once, 1e-6)))
    for r in range(rounds):
        shift = r % len(jobs)
        for c, mode, fn in jobs[shift:] + jobs[:shift]:  # a rotated order every round
            c.times[mode].append(timed(fn, iters[c.label, mode], clock))


def interleaved_rates(ours: Callable[[Any], object], other: Callable[[Any], object],
                      batches: Iterable[Any]) -> tuple[float, float]:
    """Tokens/s of two training-step functions, alternating batch by batch (and who goes first),
    so that a slow moment of a shared machine lands on both rather than on whichever ran then.
    A batch counts `batch.num_tokens` tokens."""
    batches = list(batches)
    seconds = {"ours": 0.0, "other": 0.0}
    for index, batch in enumerate(batches):
        order = [("ours", ours), ("other", other)] if index % 2 == 0 else [("other", other), ("ours", ours)]
        for name, train_batch in order:
            start = time.perf_counter()
            train_batch(batch)
            seconds[name] += time.perf_counter() - start
    tokens = sum(batch.num_tokens for batch in batches)
    return tokens / seconds["ours"], tokens / seconds["other"]


# --- the machine ------------------------------------------------------------------------

def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    if not Path("/proc/cpuinfo").exists():
        return platform.processor()
    with open("/proc/cpuinfo") as info:
        return next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                    platform.processor())


def load_average() -> str:
    try:
        return ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "unknown"
