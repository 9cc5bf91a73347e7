"""The modern Hopfield layers (Ramsauer et al. 2020, "Hopfield Networks is All You Need"): the
update ξ ← Xᵀ softmax(β X ξ), which is attention, and the layers built on it. The model
(rnnzoo.models.modern_hopfield) and the classifier's `pooling=hopfield` both use them.

    Z = softmax(β R W_Q (Y W_K)ᵀ) Y W_K W_V        (eq. 10: state patterns R retrieve from stored Y)

Inside a recording (rnnzoo.nn.inside) a `HopfieldRetrieval` with an `inside_name` records
softmax(β R W_Q (Y W_K)ᵀ) of every update, (B, update_steps, heads, S, T): which stored
patterns (sequence steps) each query retrieves.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .inside import record, recording_now


# --- the update (row form: states and patterns are rows) ----------------------------------
def association(state: Tensor, patterns: Tensor, beta: float, mask: Tensor | None = None) -> Tensor:
    """softmax(β X ξ): how much each state retrieves of each pattern. (..., S, d), (..., P, d) -> (..., S, P).

    mask (broadcastable to (..., S, P)): False where a pattern must get no weight (a pad).
    """
    scores = beta * state @ patterns.transpose(-2, -1)  # (..., S, P)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1)


def hopfield_update(state: Tensor, patterns: Tensor, beta: float, mask: Tensor | None = None) -> Tensor:
    """One update ξ ← Xᵀ softmax(β X ξ) of every state. (..., S, d) -> (..., S, d)."""
    return association(state, patterns, beta, mask) @ patterns


def padding_mask(lengths: Tensor | None, steps: int, device: torch.device) -> Tensor | None:
    """(B, T) True at real steps, None when nothing is padded."""
    if lengths is None:
        return None
    return torch.arange(steps, device=device) < lengths.to(device).unsqueeze(1)


# --- the layer ----------------------------------------------------------------------------
class HopfieldRetrieval(nn.Module):
    """Eq. (10) for queries already in the association space.

    Stored patterns Y (B, T, input_size) become keys Y W_K; each query (B, S, hidden_size)
    takes `update_steps` Hopfield updates over the keys (per head), and W_V reads the result:
    (B, S, output_size). Pads of Y (past `lengths`) get no weight.
    """

    inside_name: str | None = None  # what a recording calls its association weights; None: not recorded

    def __init__(self, input_size: int, hidden_size: int, output_size: int, num_heads: int = 1,
                 beta: float | None = None, update_steps: int = 1) -> None:
        if num_heads < 1 or hidden_size % num_heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be a multiple of num_heads ({num_heads})")
        if update_steps < 1:
            raise ValueError(f"update_steps must be >= 1, got {update_steps}")
        super().__init__()
        self.num_heads, self.update_steps = num_heads, update_steps
        self.beta = beta if beta is not None else (hidden_size // num_heads) ** -0.5  # attention's 1/√d_k
        self.key = nn.Linear(input_size, hidden_size)  # W_K
        self.value = nn.Linear(hidden_size, output_size)  # W_V, on the retrieved keys
        self.output_size = output_size

    def forward(self, queries: Tensor, stored: Tensor, lengths: Tensor | None = None) -> Tensor:
        B, T, _ = stored.shape
        keys = self._split_heads(self.key(stored))  # (B, nh, T, hs)
        state = self._split_heads(queries)  # (B, nh, S, hs)
        mask = padding_mask(lengths, T, stored.device)
        mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, T): over keys only
        for _ in range(self.update_steps):  # ξ ← Xᵀ softmax(β X ξ), as hopfield_update, weights kept to record
            weights = association(state, keys, self.beta, mask)  # (B, nh, S, T)
            if recording_now() and self.inside_name is not None:
                record(self.inside_name, weights, step=True)  # (B, steps, nh, S, T)
            state = weights @ keys  # (B, nh, S, hs)
        merged = state.transpose(1, 2).flatten(2)  # (B, S, hidden_size)
        return self.value(merged)  # (B, S, output_size)

    def _split_heads(self, x: Tensor) -> Tensor:
        B, S, H = x.shape
        return x.view(B, S, self.num_heads, H // self.num_heads).transpose(1, 2)  # (B, nh, S, hs)


class HopfieldPooling(nn.Module):
    """Learned query patterns retrieve from a sequence: (B, T, input_size) -> (B, num_queries * output_size).

    The queries are the paper's static state patterns (its `HopfieldPooling`): trained with
    the rest of the network, they learn what to look for; pads get no weight, so a padded
    sequence pools to what it would alone. Use it as a classifier's pooling:

        pool = HopfieldPooling(input_size=H, hidden_size=64, output_size=H)
        logits = head(pool(features, lengths))  # features (B, T, H) -> (B, H) -> (B, C)
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, num_queries: int = 1,
                 num_heads: int = 1, beta: float | None = None, update_steps: int = 1) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_queries, hidden_size) * hidden_size**-0.5)  # (S, H)
        self.retrieval = HopfieldRetrieval(input_size, hidden_size, output_size, num_heads, beta, update_steps)
        self.output_size = num_queries * output_size

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        queries = self.queries.expand(x.shape[0], -1, -1)  # (B, S, H)
        return self.retrieval(queries, x, lengths).flatten(1)  # (B, S * output_size)
