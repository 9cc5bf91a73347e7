"""The classic Hopfield network (Hopfield 1982), with Hebbian or Storkey (1997) storage.

N binary units s_i ∈ {-1, +1}, symmetric weights (W_ij = W_ji) with a zero diagonal, and a
threshold θ_i per unit. A unit aligns with its local field:

    h_i = Σ_j W_ij s_j
    s_i ← +1 if h_i > θ_i,   -1 if h_i < θ_i,   unchanged if h_i = θ_i

The network has an energy (a Lyapunov function)

    E(s) = -½ sᵀ W s + θᵀ s

that no single-unit update raises: changing s_i changes it by ΔE = -Δs_i (h_i - θ_i) ≤ 0,
since a unit only moves toward its field (the derivation needs W symmetric, W_ii = 0).
So asynchronous dynamics (`update="async"`: one unit at a time, a fresh random order every
sweep) always reach a fixed point. Updating every unit at once (`update="sync"`, Little 1974)
has no such guarantee: it ends in a fixed point or a 2-cycle (Goles-Chacc et al. 1985).

Storing P patterns ξ^1..ξ^P ∈ {-1, +1}^N:

* `rule="hebbian"` (Hopfield 1982): W = (1/N) Σ_μ ξ^μ ξ^μᵀ, diagonal set to 0. Patterns are
  fixed points while the load α = P/N is small: retrieval states exist up to α_c ≈ 0.138
  (Amit, Gutfreund & Sompolinsky 1985); every pattern is a fixed point without a single
  wrong unit, with high probability, while P < N / (2 ln N) (McEliece et al. 1987).
* `rule="storkey"` (Storkey 1997): patterns are added one at a time,

      W^ν_ij = W^{ν-1}_ij + (1/N) (ξ_i ξ_j - ξ_i h_ji - h_ij ξ_j),     i ≠ j
      h_ij   = Σ_{k ≠ i, j} W^{ν-1}_ik ξ_k

  the Hebbian term minus the crosstalk the new pattern already meets. It is still local and
  incremental, and holds more patterns (Storkey's estimate: N / sqrt(2 ln N)).

The weights are buffers, not parameters: the network learns by storing, without gradients
(see `rnnzoo.training.hebbian`). Its size N is that of the patterns it stores (or of the
state_dict it loads), so the task that owns the patterns owns N.

Inside a recording (rnnzoo.nn.inside, docs/inside.md) `recall` records the probe and the state
after every sweep, `hopfield.state` (B, sweeps + 1, N), and their energies, `hopfield.energy`
(B, sweeps + 1): non-increasing under `update="async"`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..nn.inside import record, recording_now
from ..registry import MODELS, help_field

RULES = ("hebbian", "storkey")
UPDATES = ("async", "sync")


class ResizeOnLoad:
    """Mixin for memories whose buffers take their shapes from what they store.

    A freshly built memory holds empty buffers; loading a checkpoint's state_dict resizes
    them to the saved shapes first, so `rnnzoo eval` rebuilds a memory of any size.
    """

    sized_buffers: tuple[str, ...] = ()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        for name in self.sized_buffers:
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)  # type: ignore[misc]


def check_patterns(patterns: Tensor, num_units: int, binary: bool) -> Tensor:
    """Patterns as a float (P, N) tensor; a clear error for the wrong shape, size or values."""
    if patterns.dim() != 2:
        raise ValueError(f"patterns must be (P, N), got shape {tuple(patterns.shape)}")
    if num_units and patterns.shape[1] != num_units:
        raise ValueError(f"this memory has N={num_units} units; cannot store patterns of {patterns.shape[1]}")
    if binary and not ((patterns == 1) | (patterns == -1)).all():
        raise ValueError("patterns of a classic Hopfield network must be ±1")
    return patterns.float()


def hebbian(patterns: Tensor) -> Tensor:
    """The weights of the Hebbian rule, (1/N) Σ_μ ξ^μ ξ^μᵀ with a zero diagonal. (P, N) -> (N, N)."""
    N = patterns.shape[1]
    return (patterns.T @ patterns / N).fill_diagonal_(0)  # (N, N)


def storkey(weight: Tensor, patterns: Tensor) -> Tensor:
    """`weight` (N, N) after adding `patterns` (P, N) one by one with Storkey's rule."""
    N = weight.shape[0]
    for xi in patterns:  # (N,): the rule is sequential, each pattern sees the weights so far
        field = weight @ xi  # (N,) h_i = Σ_k W_ik ξ_k
        h = field[:, None] - weight * xi[None, :]  # (N, N) h_ij = h_i - W_ij ξ_j (W_ii = 0)
        weight = weight + (torch.outer(xi, xi) - xi[:, None] * h.T - h * xi[None, :]) / N
        weight.fill_diagonal_(0)
    return weight


def record_recall(name: str, memory: nn.Module, states: Tensor) -> None:
    """Inside a recording, one step of a recall: `<name>.state` (B, N) and `<name>.energy` (B,),
    each stacked over the steps; outside one, nothing (not even the energy is computed)."""
    if recording_now():
        record(f"{name}.state", states, step=True)
        record(f"{name}.energy", memory.energy(states), step=True)


def align(states: Tensor, drive: Tensor) -> Tensor:
    """sign(drive), keeping the current state where drive is exactly 0 (so E never rises)."""
    return torch.where(drive > 0, 1.0, torch.where(drive < 0, -1.0, states))


@dataclass
class HopfieldConfig:
    rule: str = help_field("hebbian", "storage rule: hebbian (Hopfield 1982) or storkey (Storkey 1997)")
    update: str = help_field("async", "async: one unit at a time in a random order per sweep; "
                                      "sync: every unit at once (may end in a 2-cycle)")
    threshold: float = help_field(0.0, "θ of every unit: s_i turns to +1 when its field exceeds θ", unbounded=True)


@MODELS.register("hopfield", config=HopfieldConfig, traits={"associative_memory"})
class Hopfield(ResizeOnLoad, nn.Module):
    """Classic Hopfield network (Hopfield 1982): ±1 units, Hebbian or Storkey weights, energy descent."""

    sized_buffers = ("weight", "threshold")

    def __init__(self, config: HopfieldConfig) -> None:
        if config.rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}, got {config.rule!r}")
        if config.update not in UPDATES:
            raise ValueError(f"update must be one of {', '.join(UPDATES)}, got {config.update!r}")
        super().__init__()
        self.config = config
        self.register_buffer("weight", torch.zeros(0, 0))  # (N, N) W, empty until something is stored
        self.register_buffer("threshold", torch.zeros(0))  # (N,) θ

    @property
    def num_units(self) -> int:
        return self.weight.shape[0]

    # --- learning: storing ----------------------------------------------------------
    @torch.no_grad()
    def store(self, patterns: Tensor) -> None:
        """Add P patterns (P, N) of ±1 to the memory with the configured rule."""
        patterns = check_patterns(patterns, self.num_units, binary=True).to(self.weight.device)
        N = patterns.shape[1]
        if self.num_units == 0:
            self.weight = patterns.new_zeros(N, N)
            self.threshold = patterns.new_full((N,), self.config.threshold)
        if self.config.rule == "hebbian":
            self.weight = self.weight + hebbian(patterns)  # the rule is additive: storing more adds
        else:
            self.weight = storkey(self.weight, patterns)

    # --- dynamics -------------------------------------------------------------------
    def energy(self, states: Tensor) -> Tensor:
        """E(s) = -½ sᵀ W s + θᵀ s of each state. (B, N) -> (B,)"""
        return -0.5 * ((states @ self.weight) * states).sum(-1) + states @ self.threshold

    def update_unit_(self, states: Tensor, unit: int) -> Tensor:
        """One asynchronous update: unit `unit` of every state aligns with its field. In place."""
        field = states @ self.weight[unit]  # (B,) W is symmetric: row or column alike
        states[:, unit] = align(states[:, unit], field - self.threshold[unit])
        return states

    def sweep_(self, states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One sweep, in place: every unit once (async, in a random order) or all at once (sync)."""
        if self.config.update == "sync":
            return states.copy_(align(states, states @ self.weight - self.threshold))  # (B, N)
        # One order per sweep, shared by the batch: drawn on the CPU so a seeded generator
        # gives the same order on every device.
        for unit in torch.randperm(self.num_units, generator=generator).tolist():
            self.update_unit_(states, unit)
        return states

    @torch.no_grad()
    def recall(self, probe: Tensor, steps: int = 100, generator: torch.Generator | None = None) -> Tensor:
        """Run the dynamics from `probe` (B, N) of ±1 for at most `steps` sweeps.

        Stops early once a whole sweep changes no unit of any probe (every state is then a
        fixed point). `generator` seeds the asynchronous update order. Returns (B, N) of ±1.
        """
        if self.num_units == 0:
            raise RuntimeError("recall from an empty memory: store patterns first")
        states = check_patterns(probe, self.num_units, binary=True).to(self.weight.device).clone()
        record_recall("hopfield", self, states)
        for _ in range(steps):
            before = states.clone()
            self.sweep_(states, generator)
            record_recall("hopfield", self, states)
            if torch.equal(states, before):
                break
        return states

    def forward(self, probe: Tensor, steps: int = 100, generator: torch.Generator | None = None) -> Tensor:
        return self.recall(probe, steps, generator)

    def extra_repr(self) -> str:
        c = self.config
        return f"num_units={self.num_units}, rule={c.rule}, update={c.update}"
