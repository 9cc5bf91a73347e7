"""The memory guard: refuse a run whose largest training batch cannot fit, before it starts.

Without it, a batch too large for the machine is found by the kernel's out-of-memory killer,
which may kill other people's processes first (issue 16: one 1 MB line made a 24 GB run).

The estimate is measured, not guessed per model family. The task's longest training example
is cut to a few short lengths (its longest side 16, 32 and 64 tokens; other sides in
proportion) and each is run forward as in training, one example, under
`torch.autograd.graph.saved_tensors_hooks`, which sees every tensor autograd keeps for the
backward pass: the activations (parameters left out). Their bytes are a polynomial of degree 2
in the length (linear for recurrent layers and outputs, quadratic for attention scores over
S x T), so the three points fit it; evaluated at the full length (at least the linear scaling
of the longest probe), multiplied by the batch size of the longest bucket and by
BACKWARD_FACTOR, that is the estimate. An example of at most 64 tokens is measured whole.

BACKWARD_FACTOR = 2: while the backward pass frees the activations it holds gradients of about
their size (and the optimizer's buffers besides); twice the saved activations bounds the peak
of what we measured on the LSTM, Bahdanau and Transformer runs of the tests.

Available memory: the GPU's free memory on CUDA; on the CPU MemAvailable of /proc/meminfo (or
psutil's, where installed), lowered to a cgroup's remaining limit in a container. Tasks that
cannot say what their longest example is (the synthetic ones, whose sizes are options) are
not checked.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import RnnzooError

log = logging.getLogger("rnnzoo")

BACKWARD_FACTOR = 2.0
PROBE_TOKENS = (16, 32, 64)  # lengths of the longest side the estimate is fit on


class MemoryGuardError(RnnzooError):
    """A run whose largest batch would not fit in the memory available."""


def check_memory(task: Any, network: nn.Module, device: torch.device) -> None:
    """Refuse (MemoryGuardError, one line naming the options) when the largest training batch's
    estimated activation memory exceeds what is available; a tasks without `memory_probe` passes."""
    if not hasattr(task, "memory_probe"):
        return
    available = available_bytes(device)
    if available is None:
        return
    needed, batch_size, tokens = estimate_bytes(task, network, device)
    log.debug("memory guard: about %.2f GB of activations, %.2f GB available", needed / 1e9, available / 1e9)
    if needed > available:
        options = " or ".join(f"task.{o}={getattr(task.config, o)}" for o in task.length_options)
        raise MemoryGuardError(
            f"the largest training batch ({batch_size:,} examples of up to {tokens:,} tokens) needs about "
            f"{needed / 1e9:.1f} GB for its activations, and {available / 1e9:.1f} GB are available: lower "
            f"task.batch_size={task.config.batch_size} or {options}, or use a smaller model")


def estimate_bytes(task: Any, network: nn.Module, device: torch.device) -> tuple[int, int, int]:
    """(estimated peak activation bytes of the largest batch, its batch size, its longest side)."""
    batch_size, longest, probes = task.memory_probe(PROBE_TOKENS)
    fractions = [fraction for fraction, _ in probes]
    measured = [saved_bytes(task, network, batch.to(device)) for _, batch in probes]
    if len(measured) == 1:
        per_example = measured[0] / fractions[0]
    else:
        fitted = float(np.polyval(np.polyfit(fractions, measured, 2), 1.0))
        per_example = max(fitted, measured[-1] / fractions[-1])
    return int(math.ceil(per_example * batch_size * BACKWARD_FACTOR)), batch_size, longest


def saved_bytes(task: Any, network: nn.Module, batch: Any) -> int:
    """Bytes of the tensors autograd saves for the backward pass of one training step on `batch`
    (each storage once; the parameters' left out). No backward runs: the graph is dropped."""
    parameters = {p.untyped_storage().data_ptr() for p in network.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    was_training = network.training
    network.train()
    devices = [batch_device(network)] if batch_device(network).type == "cuda" else []
    try:  # dropout draws from the global generator: fork it, so the run's randomness is untouched
        with torch.random.fork_rng(devices), torch.enable_grad(), \
                torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            out = task.step(network, batch, None)
        del out
    finally:
        network.train(was_training)
    return sum(storages.values())


def batch_device(network: nn.Module) -> torch.device:
    return next(network.parameters()).device


def available_bytes(device: torch.device) -> int | None:
    """Memory a run may still take: free GPU memory, or the CPU's available memory; None if unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    sizes = [size for size in (_psutil_available() or _meminfo_available(), _cgroup_room()) if size is not None]
    return min(sizes) if sizes else None


def _psutil_available() -> int | None:
    try:
        import psutil  # optional: not a dependency of rnnzoo
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> int | None:
    """memory.max - memory.current of this process's cgroup (v2), where a limit is set."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None
