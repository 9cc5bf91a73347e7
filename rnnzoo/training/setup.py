"""What a run sets up before anything is built: the config it resumes, the run folder it
holds, torch's threads and the seeds."""

from __future__ import annotations

import random
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from omegaconf import OmegaConf

from .checkpoint import load_checkpoint_file
from .distributed import process_rank
from .resume import resumed_config
from .run_folder import claim


def resumed(config: dict[str, Any], overrides: Iterable[str] | None = None) -> tuple[dict[str, Any], Any]:
    """(the run config, the task state to build from): with `resume=PATH` both are the
    checkpoint's, with the overrides that may change applied (rnnzoo.training.resume);
    otherwise `config` as it is and None."""
    if config.get("resume") is None:
        return config, None
    payload = load_checkpoint_file(config["resume"])
    config = resumed_config(config, payload["config"], config["resume"], overrides)
    return config, payload.get("task") or {}  # {}, not None: a checkpoint never re-reads model.init_from


@contextmanager
def run_folder(run_dir: Path, config: dict[str, Any]) -> Iterator[Path]:
    """Rank 0's run folder, claimed for the body; under torchrun the other ranks write nothing."""
    if process_rank() != 0:
        yield run_dir
        return
    with claim(run_dir, config.get("resume"), bool(config.get("overwrite", False))) as folder:
        if config.get("resume") is not None:
            record_resumed_config(folder, config)
        yield folder


def record_resumed_config(run_dir: Path, config: dict[str, Any]) -> None:
    """Hydra's copy of the config (`.hydra/config.yaml`), where there is one, made the resumed
    run's: Hydra wrote the config composed from the command line, defaults included, which is
    not the checkpoint's."""
    copy = run_dir / ".hydra" / "config.yaml"
    if copy.is_file():
        OmegaConf.save(OmegaConf.create(config), copy)


def set_threads(num_threads: int | None) -> None:
    """`trainer.num_threads`, where set: torch's CPU threads (1 per job on a shared machine)."""
    if num_threads:
        torch.set_num_threads(int(num_threads))


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Python's and torch's generators from the run's seed; `deterministic`: torch's
    deterministic kernels only, so a rerun gives the same numbers bit for bit."""
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
