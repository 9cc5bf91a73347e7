"""What a model computes inside, on request: gates, attention weights, energies.

    from rnnzoo.nn.inside import recording
    with recording() as inside:
        logits = model(tokens)
    inside["lstm.layer0.forward.forget_gate"]   # (B, T, H) float32 tensor, detached, on the CPU

A model reports a quantity with one `record(name, tensor)` at the line that computes it.
Outside `recording()` that call is one module-global check and returns at once: training
pays nothing (no copy, no graph kept) unless something asked. Names are dotted,
`<model>.<part>.<quantity>`; each model's docstring lists what it records, and docs/inside.md
gathers them in one table.

Quantities that arrive piece by piece (a recurrent cell's gates, one time step per call; a
decoder's attention, one output token per `decode_step`) are recorded with `step=True` (one
time step (B, ...), stacked to (B, T, ...)) or `along=d` (a chunk of positions along axis d,
concatenated along d). Chunks that differ in a later axis are zero-padded to the widest: a
cached decoder's self-attention sees one key more at every step, and the keys it cannot see
yet have weight 0 anyway. Every piece recorded under one name in one recording joins the same
tensor, so record one prediction per recording.

A recording belongs to the thread that opened it: a model running in another thread (a
server's other requests) neither records into it nor leaves its fused kernels, so open the
recording in the thread that runs the model. While no thread records, `record` is one check
of a module-global count.

Fused kernels (cuDNN's LSTM, PyTorch's flash attention) never form gates or attention
weights: a model asks `recording_now()` and takes its reference path when it does, which
computes the same outputs (to float rounding) and exposes what the page shows.

Used by `rnnzoo serve` (the page shows these) and anyone who wants to look inside a model.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor
from torch.nn import functional as F

_open = 0  # recordings open in any thread: 0 (nearly always) is all `record` has to look at
_lock = threading.Lock()  # guards _open
_thread = threading.local()  # .inside: the recording this thread has open, if any


class Inside(dict):
    """name -> recorded tensor (float32, detached, CPU); pieces are joined when the recording closes."""

    def __init__(self) -> None:
        super().__init__()
        self._pieces: dict[str, tuple[int, list[Tensor]]] = {}

    def add(self, name: str, tensor: Tensor, along: int | None) -> None:
        """Keep a copy of `tensor` (the model may overwrite its own in place, as Hopfield's state):
        the value of `name` (along None) or one more piece of it along axis `along`."""
        value = tensor.detach().to(device="cpu", dtype=torch.float32, copy=True)
        if along is None:
            self[name] = value
        else:
            self._pieces.setdefault(name, (along, []))[1].append(value)

    def close(self) -> None:
        for name, (along, pieces) in self._pieces.items():
            self[name] = join(pieces, along)
        self._pieces.clear()


def join(pieces: list[Tensor], along: int) -> Tensor:
    """Concatenate `pieces` along axis `along`, each zero-padded in the later axes to the widest."""
    widest = [max(sizes) for sizes in zip(*(p.shape for p in pieces))]
    padded = []
    for piece in pieces:
        pad = []
        for axis in reversed(range(along + 1, piece.dim())):  # F.pad lists the last axis first
            pad += [0, widest[axis] - piece.shape[axis]]
        padded.append(F.pad(piece, pad) if any(pad) else piece)
    return torch.cat(padded, dim=along)


def _active() -> "Inside | None":
    """This thread's open recording, if any."""
    return getattr(_thread, "inside", None) if _open else None


def recording_now() -> bool:
    """True inside `recording()` (in this thread): a model may skip computing what only a
    recording would use, or take the path that forms what it records (the fused kernels do not)."""
    return _open > 0 and getattr(_thread, "inside", None) is not None


def record(name: str, tensor: Tensor, step: bool = False, along: int | None = None) -> None:
    """Report `tensor` under `name` if a recording is open.

    step=True: one time step (B, ...) of a per-step quantity, stacked to (B, T, ...) at the end.
    along=d: a chunk of positions along axis d, concatenated with the name's other chunks.
    Neither: the whole value (a later record of the name replaces it).
    """
    if _open:
        inside = getattr(_thread, "inside", None)
        if inside is not None:
            inside.add(name, tensor.unsqueeze(1) if step else tensor, 1 if step else along)


@contextmanager
def recording() -> Iterator[Inside]:
    """Collect every `record` this thread makes while the block runs; nested recordings are refused."""
    global _open
    if _active() is not None:
        raise RuntimeError("a recording is already open: recordings do not nest")
    inside = Inside()
    _thread.inside = inside
    with _lock:
        _open += 1
    try:
        yield inside
    finally:
        with _lock:
            _open -= 1
        _thread.inside = None
        inside.close()


@contextmanager
def gathering() -> Iterator[Inside]:
    """Inside a recording: collect the records made in the block apart, for the caller to record
    under fuller names. A recurrent cell records `input_gate`; the layer that runs it knows
    which model, layer and direction that is (rnnzoo.nn.recurrent)."""
    outer, inner = getattr(_thread, "inside", None), Inside()
    _thread.inside = inner
    try:
        yield inner
    finally:
        _thread.inside = outer
        inner.close()
