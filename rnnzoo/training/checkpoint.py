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

from .. import __version__
from ..errors import CheckpointError

FORMAT_VERSION = 1
FORMAT_KEY = "rnnzoo_format"


def checkpoint_payload(*, run_config: dict[str, Any], model: torch.nn.Module, task_state: dict[str, Any],
                       step: int, epoch: int, batch_in_epoch: int, best_metric: float | None,
                       history: list[list[float]] | None = None, optimizer: dict[str, Any] | None = None,
                       scheduler: dict[str, Any] | None = None, scaler: dict[str, Any] | None = None,
                       carry_state: Any = None, ranks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The checkpoint's contents (see the module docstring), the one place they are written out:
    the gradient trainer and the Hebbian one both save what this returns. `model` is unwrapped
    from DDP / torch.compile here; the RNG state is this process's, read now."""
    return {
        "rnnzoo": __version__, "torch": str(torch.__version__), "config": run_config,
        "model": unwrap_model(model).state_dict(), "optimizer": optimizer, "scheduler": scheduler,
        "scaler": scaler, "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
        "best_metric": best_metric, "history": history or [], "task": task_state, "rng": rng_state(),
        "carry_state": carry_state, "ranks": ranks,
    }


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write `payload` to `path` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            torch.save({FORMAT_KEY: FORMAT_VERSION, **payload}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:  # read-only, full, or not a folder: one line naming it
        raise CheckpointError(f"cannot write the checkpoint {path}: {error.strerror or error} "
                              f"({error.filename or path.parent})") from None
    return path


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """Read and check a checkpoint; every way it can be wrong is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # PyTorch's message advises weights_only=False, which would run whatever the file holds
        raise CheckpointError(f"{path} is not a safe rnnzoo checkpoint: it is corrupt, or holds something other "
                              "than tensors and plain containers (code), which rnnzoo never loads") from None
    except Exception as error:  # noqa: BLE001 (any bytes: a text file is an IndexError, 'hello' a KeyError...)
        said = isinstance(error, (RuntimeError, OSError, ValueError, zipfile.BadZipFile))  # the others say nothing
        reason = _reason(error) if said else "not a file that torch.save wrote"
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt?): {reason}") from None
    check_payload(payload, path)
    return payload


def check_payload(payload: Any, path: Path) -> None:
    """An rnnzoo checkpoint of a format this rnnzoo reads, with the config and weights every
    loading path needs."""
    if not isinstance(payload, dict) or FORMAT_KEY not in payload:
        raise CheckpointError(f"{path} is not an rnnzoo checkpoint (no '{FORMAT_KEY}' entry)")
    version = payload[FORMAT_KEY]
    if type(version) is not int:  # noqa: E721 (a bool is an int too)
        raise CheckpointError(f"{path} has an invalid checkpoint format {version!r} ({type(version).__name__}; "
                              f"rnnzoo writes the integer {FORMAT_VERSION}): not an rnnzoo checkpoint, or an "
                              "edited one")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {version}, newer than this rnnzoo reads "
                              f"({FORMAT_VERSION}); upgrade rnnzoo")
    config = payload.get("config")
    if not isinstance(config, dict) or not all(isinstance(config.get(k), dict) for k in ("model", "task")):
        raise CheckpointError(f"{path} has no run config (its 'config' entry with model and task): rnnzoo "
                              "cannot rebuild the network it holds")
    if not isinstance(payload.get("model"), dict):
        raise CheckpointError(f"{path} has no weights (its 'model' entry)")


def load_weights(module: torch.nn.Module, weights: dict[str, Any], path: str | Path) -> None:
    """`module.load_state_dict(weights)`, its failure one line naming the first tensor that does
    not fit (PyTorch lists every mismatch, over many lines). PyTorch decides what fits: a module
    may take a tensor of another shape (a Hopfield network's stored memory grows when it stores)."""
    try:
        module.load_state_dict(weights)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: {_first_misfit(module.state_dict(), weights) or _reason(error)}; its "
                              "weights are not those of the network its config builds") from None


def _first_misfit(ours: dict[str, Any], theirs: dict[str, Any]) -> str | None:
    for key, value in theirs.items():
        shape = tuple(getattr(value, "shape", ()))
        if key in ours and shape != tuple(ours[key].shape):
            return f"tensor {key} has shape {shape} there, but {tuple(ours[key].shape)} here"
    missing, unexpected = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
    if missing:
        return f"it lacks tensor {missing[0]} ({len(missing)} missing)"
    return f"it has tensor {unexpected[0]}, which the network lacks" if unexpected else None


def _reason(error: Exception) -> str:
    """The first line of a loading error, unless it is advice to load unsafely."""
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    return type(error).__name__ if "weights_only" in first else first


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
