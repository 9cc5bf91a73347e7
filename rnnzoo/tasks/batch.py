"""The batch contract: what the trainer may do with a task's batches, and the one
implementation the dataclass batches share.

A task's batches may be of any type that has what `Batch` lists; the trainer calls nothing
else. Moving and pinning are written once, in `DataclassBatch`, for the batches that are
dataclasses of tensors (SequenceBatch, TextBatch and its PretrainingBatch, TranslationBatch):
tensor fields move field by field; the fields in `cpu_fields` (real lengths, which
`pack_padded_sequence` wants on the CPU) stay where they are, and so does anything that is
not a tensor (the reference sentences of a translation batch, a None).

Sharing a batch between processes (`rnnzoo.training.distributed.shard_rows`): a dataclass
batch whose tensor and list fields are all batch first is sliced on dim 0, every one of
them; a batch of another shape gives itself a method `shard(rank, world_size)` returning its
rank's share.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Protocol, TypeVar

import torch
from torch import Tensor

B = TypeVar("B", bound="Batch")


class Batch(Protocol):
    """What the trainer (and `Task.evaluate`, the gradient probe, the memory guard) may call."""

    @property
    def num_tokens(self) -> int:
        """Tokens the batch holds, for the tokens/s the trainer logs."""

    def to(self: B, device: torch.device, non_blocking: bool = False) -> B:
        """The batch on `device` (a new batch; `non_blocking` from pinned memory on CUDA)."""

    def pin_memory(self: B) -> B:
        """The batch in page-locked memory, so that the copy to a GPU can be asynchronous."""

    def windows(self: B, size: int | None) -> list[B]:
        """Consecutive time windows of at most `size` steps for truncated BPTT (`trainer.tbptt_steps`;
        None: the whole batch); a batch that cannot be cut raises RnnzooError saying so."""


class DataclassBatch:
    """`to` and `pin_memory` of a dataclass batch, field by field (see the module docstring)."""

    #: fields that stay on the CPU whatever the device
    cpu_fields: ClassVar[frozenset[str]] = frozenset({"lengths"})

    def to(self: Any, device: torch.device, non_blocking: bool = False) -> Any:
        return dataclasses.replace(self, **{name: value.to(device, non_blocking=non_blocking)
                                            for name, value in self._device_tensors()})

    def pin_memory(self: Any) -> Any:
        return dataclasses.replace(self, **{name: value.pin_memory() for name, value in self._device_tensors()})

    def _device_tensors(self: Any) -> list[tuple[str, Tensor]]:
        """(name, tensor) of the fields that go to the device."""
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.name not in self.cpu_fields and isinstance(getattr(self, f.name), Tensor)]
