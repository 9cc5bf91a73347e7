"""Checkpoints: one file of tensors and plain containers, written atomically.

`torch.load(path, map_location="cpu", weights_only=True)` reads every rnnzoo checkpoint, so
loading one can never run code. The file holds:

    format          FORMAT_VERSION; a newer one is refused with a message
    rnnzoo, torch   versions that wrote it
    config          the resolved run config, a plain dict (model, task, trainer, seed...)
    model           the task network's state_dict (unwrapped from DDP / torch.compile)
    optimizer, scheduler, scaler   their state_dicts (None where absent; scaler: precision=16)
    step, epoch, batch_in_epoch, best_metric
    task            the task's state (vocabularies...)
    rng             torch CPU (and CUDA) RNG states, for exact resumption
    carry_state     the model state carried across batches by streaming tasks, or None
                    (None in a run of several processes: each carries its own rows' state)
    ranks           several processes: each rank's {"rng", "carry"}, in rank order ([] when
                    saved on Ctrl-C, when they cannot be gathered); None for one process

Tensors are saved from wherever they live (a GPU too) and always read onto the CPU
(`map_location`); the trainer then moves them to its device, so a checkpoint written on a
GPU resumes on a CPU and the other way round.

A crash while saving leaves the previous file whole: we write `<name>.tmp` then rename it.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

FORMAT_VERSION = 1
FORMAT_KEY = "rnnzoo_format"


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write `payload` to `path` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        torch.save({FORMAT_KEY: FORMAT_VERSION, **payload}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """Read and check a checkpoint; every way it can be wrong is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt?): {reason}") from None
    if not isinstance(payload, dict) or FORMAT_KEY not in payload:
        raise CheckpointError(f"{path} is not an rnnzoo checkpoint (no '{FORMAT_KEY}' entry)")
    version = payload[FORMAT_KEY]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {version}, newer than this rnnzoo reads "
                              f"({FORMAT_VERSION}); upgrade rnnzoo")
    return payload


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def move_state(state: Any, device: torch.device | str) -> Any:
    """A carried model state (a tensor, or a tuple of them, or None) on `device`."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.to(device)
    return type(state)(move_state(s, device) for s in state)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DistributedDataParallel and torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        elif hasattr(model, "module") and isinstance(model.module, torch.nn.Module):  # DDP
            model = model.module
        else:
            return model
