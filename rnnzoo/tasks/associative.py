"""Associative recall (Hopfield 1982): store random patterns, recall them from corrupted probes.

P patterns ξ^μ of N units, each unit ±1 with probability ½, are stored in the network (the
load is α = P/N). Every probe is a stored pattern with round(flip_fraction · N) of its units
flipped (distinct units, chosen at random); the network runs from the probe for at most
`steps` sweeps (or updates), and its final state s is read out as sign(s): the classic
network's states are ±1 already; the modern network's state is a convex combination of stored
patterns, whose sign is the pattern it has retrieved when retrieval succeeded. We report

    exact_recall    fraction of probes whose readout equals their pattern, every unit
    mean_overlap    m = (1/N) ξ·sign(s), averaged over probes (1: perfect; ~0: unrelated)
    load            α = P/N
    probe_overlap   1 - 2 · flips / N, the overlap the probes start from: the baseline

The classic Hebbian network recalls almost every probe at α = 0.05 and loses its patterns
near α ≈ 0.138 (Amit, Gutfreund & Sompolinsky 1985); see scripts/capacity_sweep.py.

N belongs to this task: the memories take their size from the patterns they store (and a
loaded checkpoint), so `task.num_units` is the one place to set it. Patterns come from a
generator seeded by (seed, "train"), the probes of val and test and their update orders from
generators seeded by (seed, split), so `rnnzoo eval` regenerates exactly what training saw.

The network learns without gradients: the task names the storage trainer (`trainer = "hebbian"`,
`rnnzoo.training.hebbian`), which stores the patterns once and evaluates with `evaluate` below,
the same function `rnnzoo eval` calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..nn.inside import Inside, gathering, record
from ..registry import TASKS, help_field
from .base import Stats, Task, float_stats, seeded_generator
from .synthetic import SPLIT_CODES

PROBES, ORDER = 0, 1  # the two generators of a split


@dataclass
class AssociativeConfig:
    num_units: int = help_field(100, "units N per pattern (the memory takes its size from the patterns)", ge=2)
    num_patterns: int = help_field(5, "patterns P to store; the load is P/N", ge=1)
    flip_fraction: float = help_field(0.1, "fraction of a probe's units flipped from its pattern", ge=0, le=0.5)
    probes: int = help_field(500, "corrupted probes in each of the validation and test sets", ge=1)
    steps: int = help_field(20, "most sweeps (classic) or updates (modern) per recall; it stops "
                                "earlier once the state stops changing", ge=1)


@TASKS.register("associative", config=AssociativeConfig)
class AssociativeTask(Task):
    """Store random ±1 patterns; recall them from corrupted probes (exact recall, mean overlap)."""

    requires = frozenset({"associative_memory"})
    monitor = "exact_recall"
    monitor_mode = "max"
    trainer = "hebbian"  # storing, not gradient descent: see rnnzoo.training.hebbian

    def __init__(self, config: AssociativeConfig, seed: int, dataset: dict | None = None) -> None:
        super().__init__(config, seed, dataset)
        self.flips = round(config.flip_fraction * config.num_units)

    @property
    def input_size(self) -> int:
        """N: a probe is one vector of N features (read only by models that take an input_size)."""
        return self.config.num_units

    # --- data -----------------------------------------------------------------------
    def memories(self) -> Tensor:
        """The P patterns to store, (P, N) of ±1: what "training" on this task means."""
        c = self.config
        generator = seeded_generator(self.seed, SPLIT_CODES["train"])
        return torch.randint(0, 2, (c.num_patterns, c.num_units), generator=generator).float() * 2 - 1

    def probes(self, split: str) -> tuple[Tensor, Tensor]:
        """(probes, their patterns), both (M, N): every pattern probed in turn, `flips` units flipped."""
        c = self.config
        generator = seeded_generator(self.seed, SPLIT_CODES[split], PROBES)
        targets = self.memories()[torch.arange(c.probes) % c.num_patterns]  # (M, N)
        flipped = torch.rand(c.probes, c.num_units, generator=generator).argsort(1)[:, :self.flips]  # (M, flips)
        signs = torch.ones_like(targets).scatter_(1, flipped, -1.0)  # (M, N)
        return targets * signs, targets

    # --- model ----------------------------------------------------------------------
    def build_network(self, body: nn.Module) -> nn.Module:
        """The memory itself: no embedding, no head."""
        return body

    # --- evaluation -----------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, network: nn.Module, split: str, device: torch.device) -> dict[str, float]:
        """Recall every probe of `split` and score the readouts."""
        if split not in ("val", "test"):
            raise ValueError(f"split must be val or test, got {split!r}")
        probes, targets = (t.to(device) for t in self.probes(split))
        order = seeded_generator(self.seed, SPLIT_CODES[split], ORDER)
        readout = network.recall(probes, self.config.steps, generator=order).sign()  # (M, N) ±1
        return self.metrics(float_stats(self.stats(readout, targets)))

    @torch.no_grad()
    def recall_steps(self, network: nn.Module, probe: Tensor, steps: int | None = None,
                     generator: torch.Generator | None = None) -> dict[str, Any]:
        """One probe (N,) recalled step by step, as data: the state and its energy E after each
        step (the probe first), the readout sign(s), and which stored pattern it is nearest to
        (its overlap m). A step is one `recall` of one step, so the dynamics are the model's
        own; it stops once the state stops changing, as `recall` does. `rnnzoo serve` answers
        with this."""
        state = probe.view(1, -1).float()  # (1, N)
        states, energies = [state], [float(network.energy(state))]
        for index in range(self.config.steps if steps is None else steps):
            with gathering() as recorded:  # a one-step recall records its start state and its result
                new = network.recall(state, 1, generator=generator)  # (1, N)
            unchanged = torch.equal(new, state)
            pass_on_once(recorded, first=index == 0, last=unchanged)
            if unchanged:
                break
            state = new
            states.append(state)
            energies.append(float(network.energy(state)))
        readout = state.sign()  # (1, N)
        overlaps = (self.memories() * readout).mean(1)  # (P,) m = (1/N) ξ·s
        return {"states": [s[0].tolist() for s in states], "energies": energies, "readout": readout[0].tolist(),
                "nearest_pattern": int(overlaps.argmax()), "overlap": float(overlaps.max())}

    def stats(self, readout: Tensor, targets: Tensor) -> Stats:
        return {"exact": (readout == targets).all(1).sum(),
                "overlap_sum": (readout * targets).mean(1).sum(),  # Σ over probes of (1/N) ξ·s
                "probes": torch.tensor(len(targets))}

    def metrics(self, totals: dict[str, float]) -> dict[str, float]:
        c = self.config
        return {"exact_recall": totals["exact"] / totals["probes"],
                "mean_overlap": totals["overlap_sum"] / totals["probes"],
                "load": c.num_patterns / c.num_units,
                "probe_overlap": 1 - 2 * self.flips / c.num_units}


def pass_on_once(recorded: Inside, first: bool, last: bool) -> None:
    """Record a one-step recall's (B, 2, ...) records, [start, result], into the open recording so
    that the trajectory lists each state once, as `recall_steps` answers: the start only at the
    first step, the result only where the state moved."""
    for name, value in recorded.items():
        kept = value[:, 0 if first else 1:1 if last else None]
        if kept.shape[1]:
            record(name, kept, along=1)
