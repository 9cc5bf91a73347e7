"""Speed of the recurrent cells: rnnzoo's models beside PyTorch's own ways of running them.

For every registered recurrent model (a `RecurrentEncoder`: lstm, gru, elman, jordan...) and
two sizes, measures tokens per second for training (forward + backward) and inference:

* the rnnzoo model as configured by default (`impl="auto"`: PyTorch's fused kernel where the
  family has a twin, the Python loop otherwise), and `impl="reference"` (the Python loop) for
  families that have a twin;
* PyTorch directly: the twin module (`nn.LSTM`...) and the naive `nn.LSTMCell` loop.

Each rnnzoo row is given as a ratio to the faster of the two PyTorch ways (jordan, which has
no twin, as a ratio to elman instead), and as a fraction of the machine's matmul peak, which
is measured in the same process: a large square matmul (the peak) and the (B, H) x (H, H)
matmul of one recurrent step (what a step can hope for).

FLOPs per token, forward: 2 x the weight-matrix entries one step of every cell reads, e.g.
LSTM 2 * 4H * (I + H) per layer and direction; training counts 3x that (the backward pass
makes two matmuls of each forward one). Elementwise work is not counted.

Noise: warm-up calls, each timing long enough to cover timer and scheduler jitter, candidates
interleaved (every round times each candidate once, in a rotated order), and the median over
rounds reported (`--stat min`: the fastest round). On a shared machine, `--threads 1 --cpu-time`
times this process's CPU time rather than the wall clock, which other processes' load inflates
at random (with 1 thread the two agree on an idle machine).

    python scripts/bench_cells.py                 # the full run, writes docs/bench_cells.md
    python scripts/bench_cells.py --quick --out - # a few seconds, stdout only
    python scripts/bench_cells.py --threads 1 --cpu-time --stat min --rounds 15 --models elman,jordan
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

import rnnzoo.models  # noqa: F401  (registers the models)
from rnnzoo.nn.recurrent import RecurrentEncoder
from rnnzoo.registry import MODELS
from rnnzoo.timing import CELLS, Candidate, cell_loop, cpu_name, forward_flops, load_average, matmul_candidates, measure

SIZES = [(32, 50, 128), (64, 100, 256)]  # (B, T, H); input size I = H


# --- what is timed ----------------------------------------------------------------------

def runners(module: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor):
    """(train, infer) closures: forward + backward of a sum, and a forward without autograd."""
    def train() -> None:
        module.train()
        module.zero_grad(set_to_none=True)
        forward(x).sum().backward()

    def infer() -> torch.Tensor:
        module.eval()
        with torch.inference_mode():
            return forward(x)

    return train, infer


def candidates_for(B: int, T: int, H: int, models: set[str] | None = None) -> list[Candidate]:
    torch.manual_seed(0)
    x = torch.randn(B, T, H)  # (B, T, I), I = H
    tokens = B * T
    found: list[Candidate] = []
    for entry in MODELS:
        if not (isinstance(entry.target, type) and issubclass(entry.target, RecurrentEncoder)):
            continue
        if models is not None and entry.name not in models:
            continue
        fields = {f.name for f in entry.config.__dataclass_fields__.values()}
        options = {"input_size": H, "hidden_size": H}
        if "output_size" in fields:  # jordan: O = H/2 gives elman's FLOPs, 2H(I + H)
            options["output_size"] = H // 2
        model = entry.target(entry.make_config(options))
        flops = forward_flops(model) * tokens
        impls = ["auto", "reference"] if model.rnn is not None else ["auto"]
        for impl in impls:
            m = model if impl == "auto" else entry.target(entry.make_config({**options, "impl": impl}))
            label = f"{entry.name} ({'kernel' if m.rnn is not None and impl == 'auto' else 'loop'})"
            train, infer = runners(m, lambda v, m=m: m(v)[0], x)
            found.append(Candidate(label, entry.name, "rnnzoo", flops, tokens, infer, train))
        if model.rnn is not None:  # PyTorch's own two ways of running the same network
            twin = copy.deepcopy(model.rnn)
            train, infer = runners(twin, lambda v, twin=twin: twin(v)[0], x)
            found.append(Candidate(f"nn.{type(twin).__name__}", entry.name, "torch twin", flops, tokens,
                                   infer, train))
            cell_type = CELLS[type(twin)]
            extra = {"nonlinearity": twin.nonlinearity} if cell_type is nn.RNNCell else {}
            cell = cell_type(H, H, **extra)
            forward = cell_loop(cell, lstm=cell_type is nn.LSTMCell)
            train, infer = runners(cell, forward, x)
            found.append(Candidate(f"nn.{cell_type.__name__} loop", entry.name, "torch cell loop", flops,
                                   tokens, infer, train))
    return found


# --- report -----------------------------------------------------------------------------

def seconds(c: Candidate, mode: str, stat: str) -> float:
    """One call's time: the median round, or the fastest (`stat="min"`)."""
    return min(c.times[mode]) if stat == "min" else c.median(mode)


def table(B: int, T: int, H: int, cands: list[Candidate], peak: float, step_gflops: float,
          stat: str = "median") -> str:
    by_label = {c.label: c for c in cands}
    rate = lambda c, mode: c.tokens / seconds(c, mode, stat)  # noqa: E731  (tokens/s)
    gflops = lambda c, mode: (3 if mode == "train" else 1) * c.flops / seconds(c, mode, stat) / 1e9  # noqa: E731
    best_torch = {}
    for c in cands:
        if c.kind.startswith("torch"):
            for mode in ("train", "infer"):
                best_torch[c.family, mode] = max(best_torch.get((c.family, mode), 0.0), rate(c, mode))
    lines = [f"### B={B} T={T} H={H} (I={H})", "",
             f"matmul peak {peak:.1f} GFLOP/s ({by_label_peak(cands)}); one step's "
             f"({B}x{H}) @ ({H}x{H}) matmul {step_gflops:.1f} GFLOP/s ({step_gflops / peak:.0%} of peak)", "",
             "| model | way | train tok/s | infer tok/s | train vs best torch | infer vs best torch "
             "| train GFLOP/s (% peak) | infer GFLOP/s (% peak) | spread |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in cands:
        if c.kind == "matmul":
            continue
        ratios = []
        for mode in ("train", "infer"):
            if (c.family, mode) in best_torch:
                ratios.append(f"{rate(c, mode) / best_torch[c.family, mode]:.2f}x")
            else:  # no twin (jordan): against elman's kernel and elman's loop
                kernel, loop = by_label.get("elman (kernel)"), by_label.get("elman (loop)")
                ratios.append(" / ".join(f"{rate(c, mode) / rate(e, mode):.2f}x {name}"
                                         for e, name in ((kernel, "elman kernel"), (loop, "elman loop")) if e)
                              or "n/a")
        perf = [f"{gflops(c, m):.1f} ({gflops(c, m) / peak:.0%})" for m in ("train", "infer")]
        lines.append(f"| {c.label} | {c.kind} | {rate(c, 'train'):,.0f} | {rate(c, 'infer'):,.0f} "
                     f"| {ratios[0]} | {ratios[1]} | {perf[0]} | {perf[1]} | {c.spread():.1f}x |")
    return "\n".join(lines) + "\n"


def by_label_peak(cands: list[Candidate]) -> str:
    return next(c.label.replace(" (peak)", "") for c in cands if c.label.endswith("(peak)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few-second run (small sizes, 1 round)")
    parser.add_argument("--out", default="docs/bench_cells.md", help="markdown file to write ('-': stdout only)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (median taken)")
    parser.add_argument("--stat", choices=("median", "min"), default="median", help="which round to report")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time this process's CPU time, not the wall clock (with --threads 1, on a shared machine)")
    parser.add_argument("--models", default=None, help="comma-separated model names (default: every recurrent one)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.cpu_time else time.perf_counter
    models = set(args.models.split(",")) if args.models else None

    sizes = [(8, 10, 32)] if args.quick else SIZES
    rounds = args.rounds or (1 if args.quick else 7)
    min_time, warmup, peak_n = (0.005, 1, 256) if args.quick else (0.1, 2, 2048)

    command = " ".join(["python scripts/bench_cells.py", *sys.argv[1:]])
    out = ["# Recurrent cells: speed", "",
           f"`{command}`: torch {torch.__version__}, "
           f"{torch.get_num_threads()} threads, {cpu_name()}, {platform.python_version()}; {args.stat} of {rounds} "
           f"interleaved rounds, {'process CPU' if args.cpu_time else 'wall-clock'} time. "
           "Tokens/s count B x T per call; 'vs best torch' divides by the faster of "
           "the twin module and the nn.*Cell loop of the same family (jordan, with no twin: by elman). "
           "GFLOP/s count the weight matmuls (training 3x forward); spread is the slowest round over the "
           "fastest (the worse of train and infer), a measure of the noise. Jordan runs with output_size = H/2, "
           f"which gives it elman's FLOPs. Load average at the start: {load_average()}.", ""]
    for B, T, H in sizes:
        cands = candidates_for(B, T, H, models) + matmul_candidates(B, H, peak_n)
        measure(cands, rounds, min_time, warmup, clock)
        peak = cands[-1].gflops("infer")
        step = cands[-2].gflops("infer")
        out.append(table(B, T, H, cands, peak, step, args.stat))
        print(out[-1], flush=True)
    text = "\n".join(out)
    if args.out != "-":
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    print(f"load average at the end: {load_average()} (other processes on these cores make the numbers noisy)")


if __name__ == "__main__":
    main()
