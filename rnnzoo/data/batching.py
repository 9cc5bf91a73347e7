"""Turning lists of id sequences into tensors and batches.

    pad_sequences    right-pad to (B, T) with the lengths beside (what pack_padded_sequence wants)
    bucket_batches   index batches of similar lengths (torchtext's BucketIterator / fairseq's
                     length bucketing), so little of a padded batch is padding
    stream_batches   one long token stream as B parallel streams for stateful LM training
                     (pytorch/examples word_language_model's `batchify`, batch first here)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor


def pad_sequences(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """((B, T) long tensor right-padded with `pad_id`, (B,) long lengths); T = longest length."""
    if len(sequences) == 0:
        raise ValueError("pad_sequences needs at least one sequence")
    lengths = torch.tensor([len(sequence) for sequence in sequences], dtype=torch.long)
    padded = torch.full((len(sequences), int(lengths.max())), pad_id, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        if len(sequence):
            padded[row, :len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
    return padded, lengths


def bucket_batches(lengths: Sequence[int] | np.ndarray, batch_size: int, shuffle: bool,
                   generator: torch.Generator | None = None, bucket_size_multiplier: int = 50) -> list[np.ndarray]:
    """Batches of indices into `lengths`, each index exactly once, lengths alike within a batch.

    The indices (shuffled when `shuffle`) are cut into buckets of `batch_size *
    bucket_size_multiplier`; each bucket is sorted by length (stably, so equal lengths keep
    their shuffled order) and cut into batches; with `shuffle` the batch order is shuffled
    too, so long and short batches alternate. Only the last bucket can end in a short batch.
    The result depends only on the arguments and the generator's state (torch's global
    generator when None). Batches are int64 arrays: memory of 8 bytes per example, whatever
    the corpus.
    """
    if batch_size < 1 or bucket_size_multiplier < 1:
        raise ValueError(f"batch_size and bucket_size_multiplier must be >= 1, got {batch_size}, "
                         f"{bucket_size_multiplier}")
    lengths = np.asarray(lengths)
    count = len(lengths)
    order = torch.randperm(count, generator=generator).numpy() if shuffle else np.arange(count)
    bucket = batch_size * bucket_size_multiplier
    batches = []
    for start in range(0, count, bucket):
        members = order[start:start + bucket]
        members = members[np.argsort(lengths[members], kind="stable")]
        batches += [members[i:i + batch_size] for i in range(0, len(members), batch_size)]
    if shuffle:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


def stream_batches(ids: Tensor | np.ndarray, batch_size: int) -> Tensor | np.ndarray:
    """(N,) ids -> (batch_size, N // batch_size): row b is the b-th contiguous slice of the stream
    (a view: a memory-mapped stream stays on disk until its windows are read).

    Reading the columns left to right in windows gives each row's continuation in the next
    window, which is what carrying a recurrent state across windows needs. The last
    N % batch_size ids are dropped, as in pytorch/examples' `batchify`.
    """
    if ids.ndim != 1:
        raise ValueError(f"stream_batches takes a 1-d array of ids, got shape {tuple(ids.shape)}")
    width = len(ids) // batch_size if batch_size > 0 else 0
    if width == 0:
        raise ValueError(f"{len(ids)} ids cannot fill {batch_size} streams of at least one id")
    return ids[:batch_size * width].reshape(batch_size, width)
