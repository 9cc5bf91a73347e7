"""The input layers of the text tasks: what turns a padded batch of token ids into a model's input.

    CharCNN        character features of each word (Ma & Hovy 2016): (B, T, C) char ids -> (B, T, filters)
    TextEmbedding  word embeddings [+ CharCNN features] -> dropout: (B, T) ids -> (B, T, D [+ F])
    TokenIds       the "embedding" of a model that embeds token ids itself (trait token_input, BERT): the ids

They read a batch's `inputs` (B, T) ids, 0 at pads, and `chars` (B, T, C) (rnnzoo.tasks.text.TextBatch).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class CharCNN(nn.Module):
    """Character features of each word: embed, convolve, max over the word's characters.

    Ma & Hovy (2016)'s character CNN (also Chiu & Nichols 2016): (B, T, C) char ids ->
    (B, T, filters), so that unseen words still get features from their spelling.
    """

    def __init__(self, num_chars: int, char_dim: int, filters: int, width: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_chars, char_dim, padding_idx=0)
        self.conv = nn.Conv1d(char_dim, filters, width, padding=width // 2)
        self.output_size = filters

    def forward(self, chars: Tensor) -> Tensor:
        B, T, C = chars.shape
        x = self.embed(chars.reshape(B * T, C)).transpose(1, 2)  # (B*T, D, C)
        h = self.conv(x)[..., :C]  # (B*T, F, C)
        real = (chars.reshape(B * T, 1, C) != 0)  # (B*T, 1, C)
        h = h.masked_fill(~real, float("-inf")).amax(2)  # (B*T, F)
        return h.masked_fill(~real.any(2), 0.0).reshape(B, T, -1)  # (B, T, F); pads -> 0


class TokenIds(nn.Module):
    """The input layer of a model that embeds tokens itself: the batch's ids (B, T), untouched."""

    def forward(self, batch: Any) -> Tensor:
        return batch.inputs  # (B, T) long


class TextEmbedding(nn.Module):
    """Word embeddings, optionally concatenated with character features, then dropout.

    The <unk> row (`unk_id`) starts at 0, not at a random draw: with `task.min_freq=1` every
    training word has its own row, so <unk> is never trained, and the unknown words of val and
    test would read a random vector that differs with the seed (on SST-2, where 60% of test
    sentences hold such a word, it moved test accuracy by up to 3.5 points from seed to seed).
    Where training has unknown words (min_freq >= 2) the row is trained from 0."""

    def __init__(self, vocab_size: int, dim: int, dropout: float, chars: CharCNN | None = None,
                 unk_id: int | None = None) -> None:
        super().__init__()
        self.words = nn.Embedding(vocab_size, dim, padding_idx=0)
        if unk_id is not None:
            with torch.no_grad():
                self.words.weight[unk_id].zero_()
        self.chars = chars
        self.dropout = nn.Dropout(dropout)
        self.output_size = dim + (chars.output_size if chars is not None else 0)

    def forward(self, batch: Any) -> Tensor:
        x = self.words(batch.inputs)  # (B, T, D)
        if self.chars is not None:
            x = torch.cat([x, self.chars(batch.chars)], dim=-1)  # (B, T, D + F)
        return self.dropout(x)
