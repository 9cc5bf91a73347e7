"""Modern (continuous) Hopfield networks (Ramsauer et al. 2020, "Hopfield Networks is All You Need").

P stored patterns x_μ ∈ R^d (the rows of X), a continuous state ξ ∈ R^d and an inverse
temperature β. The energy

    E(ξ) = -lse(β, X ξ) + ½ ξᵀξ + β⁻¹ ln P + ½ M²,   lse(β, z) = β⁻¹ ln Σ_μ exp(β z_μ),
                                                    M = max_μ ‖x_μ‖  (the constants make 0 ≤ E)

is lowered by the update (a concave-convex procedure step, so E never rises)

    ξ ← Xᵀ softmax(β X ξ)        (the paper's X softmax(β Xᵀ ξ), with patterns as columns)

A pattern well separated from the others is retrieved after one update, with an error
exponentially small in the separation, and the number of patterns that can be stored grows
exponentially with d (Theorem 3), where the classic network holds about 0.138 d. With small
β the fixed points are metastable averages of similar patterns; as β → ∞ the update picks
the nearest pattern.

The update is attention. State patterns (queries) R and stored patterns Y, mapped into an
association space by W_Q and W_K, retrieve

    Z = softmax(β R W_Q (Y W_K)ᵀ) Y W_K W_V                                        (eq. 10)

which is a transformer's attention with β = 1/√d_k and the values W_V read from the
retrieved keys. This file uses the one update three ways:

* `ModernHopfield.store / recall`: an associative memory. X holds the stored patterns (a
  buffer, no projections) and recall iterates ξ ← Xᵀ softmax(β X ξ) until the state stops
  moving. The state is returned as is: continuous, a convex combination of stored patterns.
  (The associative task reads its sign to compare it with a ±1 pattern.)
* `ModernHopfield.forward`: a sequence encoder, (B, T, input_size) -> (B, T, output_size).
  Every step's query retrieves from the keys of its own sequence (R = Y = the sequence), pads
  masked out of the stored patterns and zeroed in the output. It has no notion of order (no
  positions), no state to carry, and no causal mask: each step sees its whole sequence.
* `HopfieldPooling` (rnnzoo.nn.hopfield): learned query patterns (the paper's static state pattern) retrieve from
  a sequence, (B, T, input_size) -> (B, num_queries * output_size): a sequence summary for a
  classifier head.

`update_steps` > 1 iterates the update in the association space (queries ←
softmax(β Q Kᵀ) K) before the values are read, as the paper's layers can.

Inside a recording (rnnzoo.nn.inside, docs/inside.md) `recall` records the probe and the state
after every update, `modern_hopfield.state` (B, updates + 1, N), and their energies E(ξ),
`modern_hopfield.energy` (B, updates + 1): non-increasing (the update is a CCCP step). As a
sequence encoder it records `modern_hopfield.association` (B, update_steps, heads, T, T), each
step's retrieval weights over the steps of its sequence (rows sum to 1, pads get 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..nn.hopfield import HopfieldPooling, HopfieldRetrieval, association, hopfield_update, padding_mask  # noqa: F401 (re-exported: their home before rnnzoo.nn)
from ..registry import MODELS, help_field
from .hopfield import ResizeOnLoad, check_patterns, record_recall

TOLERANCE = 1e-6  # recall stops once no unit of any state moves by more than this


# --- the energy (row form: states and patterns are rows; the update: rnnzoo.nn.hopfield) -----
def hopfield_energy(state: Tensor, patterns: Tensor, beta: float) -> Tensor:
    """E(ξ) of every state, constants included. (..., S, d), (..., P, d) -> (..., S)."""
    lse = torch.logsumexp(beta * state @ patterns.transpose(-2, -1), dim=-1) / beta  # (..., S)
    largest = patterns.norm(dim=-1).amax(-1, keepdim=True)  # (..., 1) M
    return -lse + 0.5 * (state * state).sum(-1) + math.log(patterns.shape[-2]) / beta + 0.5 * largest**2


# --- the model: a sequence encoder and an associative memory ------------------------------
@dataclass
class ModernHopfieldConfig:
    input_size: int = help_field(32, "features per input step (the task sets it from its data)", ge=1)
    hidden_size: int = help_field(64, "width of the association space (queries and keys), all heads together", ge=1)
    output_size: int = help_field(64, "features per output step (the width of W_V)", ge=1)
    num_heads: int = help_field(1, "independent retrievals, each in hidden_size / num_heads dimensions", ge=1)
    beta: float | None = help_field(None, "inverse temperature β (null: 1/√d, d the head size in the "
                                          "layer and the pattern size N in the memory)", gt=0)
    update_steps: int = help_field(1, "Hopfield updates per query in the layer (1: one attention step)", ge=1)


@MODELS.register("modern_hopfield", config=ModernHopfieldConfig, traits={"sequence", "associative_memory"})
class ModernHopfield(ResizeOnLoad, nn.Module):
    """Modern Hopfield network (Ramsauer et al. 2020): a self-association layer and a dense associative memory."""

    sized_buffers = ("patterns",)

    def __init__(self, config: ModernHopfieldConfig) -> None:
        super().__init__()
        self.config = config
        self.query = nn.Linear(config.input_size, config.hidden_size)  # W_Q
        self.retrieval = HopfieldRetrieval(config.input_size, config.hidden_size, config.output_size,
                                           config.num_heads, config.beta, config.update_steps)
        self.retrieval.inside_name = "modern_hopfield.association"
        self.register_buffer("patterns", torch.zeros(0, 0))  # (P, N) the memory's X, empty until stored
        self.output_size = config.output_size

    # --- as a sequence encoder ------------------------------------------------------
    def forward(self, x: Tensor, lengths: Tensor | None = None, state: object = None) -> tuple[Tensor, tuple]:
        """Each step retrieves from its own sequence.

        Args:
            x: (B, T, input_size); lengths: (B,) real lengths of a right-padded batch, or None.
            state: ignored; there is nothing to carry from one chunk to the next.
        Returns:
            features (B, T, output_size), 0 at pads; and an empty state `()`.
        """
        out = self.retrieval(self.query(x), x, lengths)  # (B, T, output_size)
        mask = padding_mask(lengths, x.shape[1], x.device)
        return (out if mask is None else out * mask.unsqueeze(-1)), ()

    # --- as an associative memory ---------------------------------------------------
    @property
    def num_units(self) -> int:
        return self.patterns.shape[1]

    @property
    def memory_beta(self) -> float:
        return self.config.beta if self.config.beta is not None else self.num_units**-0.5

    @torch.no_grad()
    def store(self, patterns: Tensor) -> None:
        """Add P patterns (P, N) to the memory X (any real values; the associative task stores ±1)."""
        patterns = check_patterns(patterns, self.num_units, binary=False).to(self.patterns.device)
        self.patterns = patterns.clone() if self.num_units == 0 else torch.cat([self.patterns, patterns])

    @torch.no_grad()
    def recall(self, probe: Tensor, steps: int = 100, generator: torch.Generator | None = None) -> Tensor:
        """At most `steps` updates ξ ← Xᵀ softmax(β X ξ) from `probe` (B, N); the continuous state (B, N).

        Stops once no unit moves by more than TOLERANCE. `generator` is unused: the update is
        deterministic (it is accepted so that every associative memory is called alike).
        """
        if self.num_units == 0:
            raise RuntimeError("recall from an empty memory: store patterns first")
        state = check_patterns(probe, self.num_units, binary=False).to(self.patterns.device)
        record_recall("modern_hopfield", self, state)
        for _ in range(steps):
            new = hopfield_update(state, self.patterns, self.memory_beta)  # (B, N)
            moved = (new - state).abs().max()
            state = new
            record_recall("modern_hopfield", self, state)
            if moved <= TOLERANCE:
                break
        return state

    def energy(self, states: Tensor) -> Tensor:
        """E(ξ) of each state (B, N) -> (B,) under the stored patterns."""
        return hopfield_energy(states, self.patterns, self.memory_beta)
