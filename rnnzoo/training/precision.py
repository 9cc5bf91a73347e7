"""Mixed precision (`trainer.precision`): where autocast runs, and float16's gradient scaler.

    32     float32 everywhere (the default; nothing below runs)
    bf16   forward and loss under `torch.autocast(dtype=bfloat16)`, on CUDA or the CPU. bfloat16
           keeps float32's exponent range, so gradients need no scaling.
    16     forward and loss under `torch.autocast(dtype=float16)` with a `torch.amp.GradScaler`:
           float16's narrow range underflows small gradients, so the loss is scaled up before
           backward and the gradients unscaled before clipping (the norm is then the true one)
           and before the optimizer step, which the scaler skips when they overflowed.
           CUDA only: PyTorch does accept float16 autocast on the CPU, but its CPU kernels
           for float16 are missing or slow (the LSTM kernel fails outright), so rnnzoo
           refuses it there with a message rather than crash in the middle of a step.

Autocast wraps the task's step (forward and loss) only: backward runs in the dtypes autocast
chose, the optimizer updates the float32 master weights, and evaluation runs in float32, as
`rnnzoo eval` does, so a run's validation numbers and a later `rnnzoo eval` agree.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, ContextManager

import torch

from ..errors import RnnzooError

DTYPES = {"bf16": torch.bfloat16, "16": torch.float16}
#: the precisions each device type offers (the config's PRECISIONS on CUDA)
AVAILABLE = {"cuda": ("32", "bf16", "16"), "cpu": ("32", "bf16")}


def check_precision(name: str, device: torch.device) -> None:
    """A precision the device cannot run is a user error naming what it can run."""
    available = AVAILABLE.get(device.type, ("32",))
    if name not in available:
        why = " (float16 kernels are missing on the CPU)" if (name, device.type) == ("16", "cpu") else ""
        raise RnnzooError(f"trainer.precision={name} is not available on {device.type}{why}; "
                          f"choices there: {', '.join(available)}")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise RnnzooError("trainer.precision=bf16 but this GPU has no bfloat16 support; choices there: 32, 16")


class Precision:
    """The autocast region and (float16 only) the gradient scaler of one run."""

    def __init__(self, name: str, device: torch.device) -> None:
        check_precision(name, device)
        self.dtype = DTYPES.get(name)  # None: float32, no autocast
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if name == "16" else None

    def autocast(self) -> ContextManager:
        """The region of the forward and the loss."""
        return nullcontext() if self.dtype is None else torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring the gradients back to their true size: clipping and logging read them next."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:  # skipped when the gradients overflowed; the scale then shrinks
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
