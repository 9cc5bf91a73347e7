"""The encoder-decoder contract: what translation, beam search and `rnnzoo translate` ask of a
model with the trait `encoder_decoder` (the RNN encoder-decoders here; the Transformer too).

A source sentence x = (x_1 .. x_S) is read once into a `Memory`; the decoder then writes
y_1, y_2, ... one token at a time, each from the previous token, the memory and its own
`cache` (an RNN's state, a Transformer's keys and values):

    memory = model.encode(source (B, S), source_lengths (B,))
    cache = model.start(memory)
    logits, cache, attention = model.decode_step(previous (B,), memory, cache)   # (B, V), .., (B, S) or None
    logits, attention = model(source, source_lengths, target_in (B, T))          # teacher forcing, (B, T, V)

`forward` must equal running `decode_step` over `target_in` token by token (the tests check
it for every registered encoder-decoder), so training (teacher forcing, all steps at once
where the architecture allows) and decoding (one step at a time) compute the same network.

Unlike the sequence models, an encoder-decoder owns its embeddings and its output layer:
Cho et al.'s output layer reads the context vector and the previous target embedding as
well as the decoder state, and the Transformer ties its embeddings to the output layer, so
neither is a plain `features -> head` network. The task sets the two vocabulary sizes
(`source_vocab_size`, `target_vocab_size`) before the model is built, and owns the loss
(label smoothing), decoding and metrics.

Batch rows are what beam search reorders: `Memory.select` and `model.reorder_cache` pick
rows of a batch (hypotheses) by index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

Cache = Any  # a model's decoder state: tensors, or tuples/dicts of them


@dataclass
class Memory:
    """What the encoder hands the decoder; every tensor batch-first.

    states: (B, S, H) encoder outputs, one per source token (0 at pads);
    mask: (B, S) bool, True at real source tokens (attention must put no weight elsewhere);
    extras: other batch-first tensors a model needs (a fixed context vector, ...).
    """

    states: Tensor
    mask: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)

    def select(self, index: Tensor) -> "Memory":
        """The memory of rows `index` (B',) of the batch (beam search: one copy per hypothesis)."""
        return Memory(self.states.index_select(0, index), self.mask.index_select(0, index),
                      {k: v.index_select(0, index) for k, v in self.extras.items()})


def select_rows(structure: Any, index: Tensor, dim: int = 0) -> Any:
    """Rows `index` along `dim` of every tensor in a (nested tuple/list/dict) structure."""
    if isinstance(structure, Tensor):
        return structure.index_select(dim, index)
    if isinstance(structure, (tuple, list)):
        return type(structure)(select_rows(s, index, dim) for s in structure)
    if isinstance(structure, dict):
        return {k: select_rows(v, index, dim) for k, v in structure.items()}
    if structure is None:
        return None
    raise TypeError(f"cannot select rows of {type(structure).__name__}")


class EncoderDecoder(nn.Module):
    """Base class of the models with the `encoder_decoder` trait; see the module docstring."""

    source_vocab_size: int
    target_vocab_size: int

    @classmethod
    def traits(cls, config: Any) -> set[str]:
        return {"encoder_decoder"}

    def encode(self, source: Tensor, source_lengths: Tensor) -> Memory:
        """Read source ids (B, S), right-padded with 0, real lengths (B,) -> Memory."""
        raise NotImplementedError

    def start(self, memory: Memory) -> Cache:
        """The decoder's cache before the first target token."""
        raise NotImplementedError

    def decode_step(self, previous: Tensor, memory: Memory, cache: Cache
                    ) -> tuple[Tensor, Cache, Tensor | None]:
        """One decoder step: previous target ids (B,) -> next-token logits (B, V), new cache,
        and the attention over the source (B, S) (None for models without attention)."""
        raise NotImplementedError

    def forward(self, source: Tensor, source_lengths: Tensor, target_in: Tensor
                ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: logits (B, T, V) for target_in (B, T) (<bos> y_1 .. y_{T-1}), and the
        attention (B, T, S) or None. The default loops over `decode_step`; models override it
        where the architecture allows all steps at once."""
        memory = self.encode(source, source_lengths)
        cache = self.start(memory)
        logits, attention = [], []
        for previous in target_in.unbind(1):
            step_logits, cache, weights = self.decode_step(previous, memory, cache)
            logits.append(step_logits)
            attention.append(weights)
        stacked = None if attention[0] is None else torch.stack(attention, 1)  # (B, T, S)
        return torch.stack(logits, 1), stacked  # (B, T, V)

    def reorder_cache(self, cache: Cache, index: Tensor) -> Cache:
        """The cache of rows `index` of the batch; override where batch is not dim 0."""
        return select_rows(cache, index)

