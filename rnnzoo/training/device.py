"""Which device a run uses: the one home of `resolve_device` (the trainer, `rnnzoo` verbs and
scripts/bench.py all call it)."""

from __future__ import annotations

import torch

from ..errors import RnnzooError


def resolve_device(name: str, option: str = "trainer.device") -> torch.device:
    """`auto` picks CUDA, then MPS, then the CPU; an unknown or unavailable device is an
    RnnzooError of one line naming `option` (what the user typed it as)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RnnzooError(f"{option}={name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RnnzooError(f"{option}={name} but CUDA is not available here; use {option}=cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise RnnzooError(f"{option}={name} but only {torch.cuda.device_count()} CUDA device(s) exist")
    return device
