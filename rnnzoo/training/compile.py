"""`trainer.compile=true`: torch.compile the network that trains, where that helps.

torch.compile traces a forward into graphs and fuses them. That pays for networks whose
forward is a few large tensor ops (PyTorch's fused recurrent kernels, Transformers). It does
not for a forward that is a Python loop over time steps: the loop is unrolled into one graph
per sequence length, recompiled for every new length, for a step that is one small matmul.
Such networks are left eager, with a one-line notice saying why (`compile_blocker`):

* a recurrent net running its equations in Python (`impl=reference`, or a family with no
  PyTorch kernel, such as jordan): decided per instance, since it depends on the config;
* the recurrent encoder-decoders (seq2seq, bahdanau), whose decoder runs step by step;
* any module whose class says `compile_friendly = False`: how a new model opts out.

The first two rules live here rather than as class attributes because the first depends on
the configuration, not the class, and both cover families written before this option.

Only training runs compiled: evaluation, probes and checkpoints use the plain module, so a
checkpoint never holds the compiled wrapper's `_orig_mod.` prefixes and evaluation never
recompiles for its batch sizes. Where torch.compile cannot work at all (no C++ compiler for
the CPU backend, no Triton for CUDA), training goes on eagerly with a notice as well.
"""

from __future__ import annotations

import os
import sysconfig

import torch
from torch import nn

from ..nn.recurrent import RecurrentEncoder


def compile_blocker(network: nn.Module) -> str | None:
    """Why compiling `network` would not pay off (see the module docstring), or None."""
    from ..models.seq2seq import RecurrentEncoderDecoder  # here: importing rnnzoo.models registers every model

    for module in network.modules():
        name = type(module).__name__
        if getattr(module, "compile_friendly", True) is False:
            return f"{name} declares compile_friendly = False"
        if isinstance(module, RecurrentEncoder) and (module.rnn is None or module.impl == "reference"):
            return f"{name} runs its time loop in Python (impl={module.impl}, PyTorch kernel: {module.rnn is not None})"
        if isinstance(module, RecurrentEncoderDecoder):
            return f"{name} decodes one target step at a time in Python"
    return None


def compiler_missing(device: torch.device) -> str | None:
    """What torch.compile's default backend lacks on this machine for `device`, or None."""
    if not torch._dynamo.is_dynamo_supported():
        return "TorchDynamo does not support this Python version"
    if device.type == "cuda":
        from torch.utils._triton import has_triton
        return None if has_triton() else "Triton is not installed"
    if device.type != "cpu":
        return f"rnnzoo compiles for cpu and cuda, not {device.type}"
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
        get_cpp_compiler()
    except Exception:  # whatever inductor's search raises: no compiler it can use
        return "no C++ compiler found (g++, clang++ or $CXX)"
    if not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
        return "Python's C headers (Python.h) are not installed"
    return None


def compiled_for_training(network: nn.Module, device: torch.device) -> tuple[nn.Module, str | None]:
    """(the module to train: compiled, or `network` itself; a one-line notice when left eager)."""
    reason = compile_blocker(network) or compiler_missing(device)
    if reason is not None:
        return network, f"trainer.compile=true: {reason}; training eagerly"
    return torch.compile(network), None
