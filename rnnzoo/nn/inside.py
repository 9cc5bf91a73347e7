"""What a model computes inside, on request: gates, attention weights, energies.

    from rnnzoo.nn.inside import recording
    with recording() as inside:
        logits = model(tokens)
    inside["lstm.layer0.forget_gate"]   # (B, T, H) float tensor, detached, on the CPU

A model reports a quantity with `record(name, tensor)` at the line that computes it. Outside
`recording()` that call is one module-global check and returns at once: training pays nothing
(no copy, no graph kept) unless something asked. Names are dotted, `<model>.<part>.<quantity>`,
and each model's docstring lists what it records and the shapes (docs/serve.md gathers them).
A recurrent model that calls `record` once per time step under the same name has its steps
stacked along dim 1 (the time axis) when the recording closes.

Used by `rnnzoo serve` (the page shows these) and anyone who wants to look inside a model.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor

_active: "Inside | None" = None  # the recording open now, if any (one per process: serve runs one at a time)


class Inside(dict):
    """name -> recorded tensor (detached, CPU); per-step records are stacked along dim 1 on close."""

    def __init__(self) -> None:
        super().__init__()
        self._steps: dict[str, list[Tensor]] = {}

    def add(self, name: str, tensor: Tensor, step: bool) -> None:
        value = tensor.detach().float().cpu()
        if step:
            self._steps.setdefault(name, []).append(value)
        else:
            self[name] = value

    def close(self) -> None:
        for name, steps in self._steps.items():
            self[name] = torch.stack(steps, dim=1)  # (B, T, ...) from T tensors of (B, ...)
        self._steps.clear()


def recording_now() -> bool:
    """True inside `recording()`: a model may skip computing what only a recording would use."""
    return _active is not None


def record(name: str, tensor: Tensor, step: bool = False) -> None:
    """Report `tensor` under `name` if a recording is open; `step=True`: one time step of a
    per-step quantity, (B, ...), stacked into (B, T, ...) at the end."""
    if _active is not None:
        _active.add(name, tensor, step)


@contextmanager
def recording() -> Iterator[Inside]:
    """Collect every `record` made while the block runs; nested recordings are refused."""
    global _active
    if _active is not None:
        raise RuntimeError("a recording is already open: recordings do not nest")
    inside = Inside()
    _active = inside
    try:
        yield inside
    finally:
        _active = None
        inside.close()
