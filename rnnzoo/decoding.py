"""Decoding: turning a model's next-token logits into token ids.

    sample_next(logits, generator, temperature, top_k, top_p)   one id per row, (B, V) -> (B,)
    filter_logits(logits, top_k, top_p)                         the logits sampling draws from

Three knobs, applied in this order (as in HuggingFace's `generate` and nanoGPT's `sample.py`):

* temperature T: logits / T. T < 1 sharpens the distribution, T > 1 flattens it; T = 0 is
  greedy (argmax), the limit of T -> 0.
* top-k (Fan et al. 2018): keep the k most likely tokens; top_k = 1 is greedy.
* top-p, nucleus sampling (Holtzman et al. 2020): keep the smallest set of most likely
  tokens whose probabilities sum to at least p; the rest of the tail, which is where
  degenerate text comes from, is never drawn.

Every draw goes through the `torch.Generator` given, never the global RNG, so a seed
reproduces a sample and sampling during training leaves the training run's randomness alone.
Shared by generation (`rnnzoo sample`) and, later, translation.
"""

from __future__ import annotations

import torch
from torch import Tensor


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """`logits` (B, V) with the tokens outside top-k and outside the nucleus set to -inf."""
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
        k = min(int(top_k), logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest logit
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = probs.cumsum(-1) - probs  # (B, V): mass of the more likely tokens
        # a token stays while the mass before it is still short of p: the smallest set reaching p
        drop_sorted = before >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(logits: Tensor, generator: torch.Generator | None = None, temperature: float = 1.0,
                top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Draw one token id per row from `logits` (B, V); returns (B,) long ids.

    temperature 0 (or top_k 1) is greedy decoding. `generator` must live on the logits'
    device; None uses torch's global generator.
    """
    if logits.dim() != 2:
        raise ValueError(f"sample_next takes (B, V) logits, got shape {tuple(logits.shape)}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0 or top_k == 1:
        return logits.argmax(-1)
    logits = filter_logits(logits.float() / temperature, top_k, top_p)
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)
