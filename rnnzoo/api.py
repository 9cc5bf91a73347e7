"""The functions behind the CLI, callable from tests and notebooks with a composed config.

    train(cfg, run_dir)      build task + model, check they fit, fit, return final metrics
    evaluate(cfg, run_dir)   rebuild everything from `cfg.checkpoint` alone, evaluate a split
    create_model(name, **overrides), list_models(pattern), load_checkpoint(path)
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .errors import IncompatibleError, RnnzooError
from .models.traits import TRAIT_HELP, model_traits
from .registry import DATASETS, MODELS, TASKS
from .training.checkpoint import load_checkpoint_file
from .training.config import TrainerConfig, check_trainer_config

log = logging.getLogger("rnnzoo")


def create_model(name: str, **overrides: Any) -> nn.Module:
    """A registered model built from its config defaults plus `overrides`.

    >>> create_model("lstm", input_size=16, hidden_size=32)(torch.zeros(2, 5, 16))[0].shape
    torch.Size([2, 5, 32])
    """
    _load_registries()
    entry = MODELS.entry(name)
    config = entry.make_config(overrides, where=f"model '{name}'")
    try:
        return entry.target(config)
    except ValueError as error:
        raise RnnzooError(f"model '{name}': {error}") from None


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell wildcard, e.g. `list_models("*ru*")`."""
    _load_registries()
    return MODELS.names(pattern)


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The network saved in a checkpoint, rebuilt, weights loaded, in eval mode; and its config."""
    network, _task, config = _rebuild(load_checkpoint_file(path))
    return network, config


def load_run(path: str | Path) -> tuple[nn.Module, Any, dict[str, Any]]:
    """(network in eval mode, its task with vocabularies, the run config) from a checkpoint:
    everything scripts need to decode or score with a trained model."""
    return _rebuild(load_checkpoint_file(path))


# --- building a run -------------------------------------------------------------------
def _load_registries() -> None:
    from . import data, models, tasks  # noqa: F401


def models_fitting(task_name: str) -> list[str]:
    """Models whose default configs have every trait the task needs."""
    needs = TASKS.get(task_name).requires
    return [name for name in MODELS.names() if needs <= model_traits(name)]


def check_compatible(task_name: str, model_name: str, model_config: Any,
                     requires: frozenset[str] | None = None) -> None:
    """Fail before any work when the model lacks a trait the task needs, saying which fit.

    `requires`: what this task instance needs, where its config adds to the class's needs
    (generation with sampling=streams also needs a stateful model)."""
    needs = TASKS.get(task_name).requires if requires is None else requires
    missing = needs - model_traits(model_name, model_config)
    if missing:
        why = "; ".join(f"it must be {trait} ({TRAIT_HELP.get(trait, trait)})" for trait in sorted(missing))
        fits = ", ".join(models_fitting(task_name)) or "none yet"
        raise IncompatibleError(f"model '{model_name}' cannot serve task '{task_name}': {why}, and this "
                                f"configuration is not. Models that fit: {fits}")


def _typed(config: dict[str, Any]) -> tuple[Any, Any, Any, TrainerConfig]:
    """Validate the model, task, dataset and trainer sections against their dataclasses."""
    model_entry = MODELS.entry(config["model"]["name"])
    task_entry = TASKS.entry(config["task"]["name"])
    dataset_entry = DATASETS.entry(config.get("dataset", {}).get("name", "synthetic"))
    model_config = model_entry.make_config(config["model"], where="model")
    task_config = task_entry.make_config(config["task"], where="task")
    dataset_config = dataset_entry.make_config(config.get("dataset"), where="dataset")
    trainer_config = _trainer_config(config.get("trainer", {}))
    reads = task_entry.target.reads
    if not dataset_entry.traits & reads:
        fitting = [d.name for d in DATASETS if d.traits & reads]
        raise RnnzooError(f"task '{task_entry.name}' cannot read dataset '{dataset_entry.name}' "
                          f"({', '.join(sorted(dataset_entry.traits)) or 'no kind'} data); "
                          f"datasets it reads: {', '.join(fitting)}")
    return model_config, task_config, dataset_config, trainer_config


def _trainer_config(values: dict[str, Any]) -> TrainerConfig:
    from .registry import Entry
    config = Entry("trainer", TrainerConfig, TrainerConfig).make_config(values, where="trainer")
    try:
        check_trainer_config(config)
    except ValueError as error:
        raise RnnzooError(str(error)) from None
    return config


def build(config: dict[str, Any], task_state: dict[str, Any] | None = None):
    """(task, network, trainer_config) from a plain run config; nothing trained yet.

    `task_state` (from a checkpoint) gives the task its vocabularies before the model is
    sized from them, so nothing is re-read from the training data.
    """
    _load_registries()
    model_config, task_config, _dataset_config, trainer_config = _typed(config)
    model_name, task_name = config["model"]["name"], config["task"]["name"]
    try:
        task = TASKS.get(task_name)(task_config, int(config.get("seed", 0)), dict(config.get("dataset") or {}))
    except ValueError as error:
        raise RnnzooError(f"task '{task_name}': {error}") from None
    if task_state:
        task.load_state_dict(task_state)
    for field, size in task.model_sizes().items():  # input width, vocabulary sizes: the data decides
        if hasattr(model_config, field):
            setattr(model_config, field, size)
    check_compatible(task_name, model_name, model_config, task.requires)
    if trainer_config.tbptt_steps is not None and "stateful" not in model_traits(model_name, model_config):
        raise IncompatibleError(f"trainer.tbptt_steps needs a model that carries its state across windows; "
                                f"'{model_name}' with this configuration does not")
    try:
        body = MODELS.get(model_name)(model_config)
    except ValueError as error:
        raise RnnzooError(f"model '{model_name}': {error}") from None
    return task, task.build_network(body), trainer_config


def _rebuild(payload: dict[str, Any]):
    config = payload["config"]
    task, network, _ = build(config, payload.get("task") or {})
    network.load_state_dict(payload["model"])
    return network.eval(), task, config


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def plain(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """A resolved plain-dict copy of a run config, without Hydra's own section."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    data.pop("hydra", None)
    return data


# --- the verbs ------------------------------------------------------------------------
def train(cfg: DictConfig | dict[str, Any], run_dir: str | Path) -> dict[str, float]:
    """Train as `rnnzoo train` does; write the run folder; return the final metrics."""
    config = plain(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer_values = config.get("trainer", {})
    if trainer_values.get("num_threads"):
        torch.set_num_threads(int(trainer_values["num_threads"]))
    seed_everything(int(config.get("seed", 0)), bool(trainer_values.get("deterministic", False)))
    task, network, trainer_config = build(config)
    log.info("model %s (%s parameters) on task %s", config["model"]["name"],
             f"{sum(p.numel() for p in network.parameters()):,}", config["task"]["name"])
    trainer = task.make_trainer(network=network, config=trainer_config, run_dir=run_dir, run_config=config)
    return trainer.fit(resume=config.get("resume"))


def evaluate(cfg: DictConfig | dict[str, Any], run_dir: str | Path | None = None) -> dict[str, float]:
    """Evaluate `cfg.checkpoint` on `cfg.split`, rebuilt from the checkpoint alone."""
    config = plain(cfg)
    split = config.get("split", "test")
    if split not in ("val", "test"):
        raise RnnzooError(f"split={split!r} is not one of: val, test")
    network, task, device = _load_for_inference(config, "eval")
    if config.get("beam_size") is not None:
        if not hasattr(task.config, "beam_size") or int(config["beam_size"]) < 1:
            raise RnnzooError(f"beam_size={config['beam_size']}: needs a translation checkpoint and a beam >= 1")
        task.config.beam_size = int(config["beam_size"])
    metrics = {f"{split}/{k}": v for k, v in task.evaluate(network, split, device).items()}
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _load_for_inference(config: dict[str, Any], verb: str):
    """(network on its device, task, device) from `checkpoint=` and `trainer.device=`."""
    from .training.trainer import resolve_device

    if config.get("checkpoint") in (None, "", "???"):
        raise RnnzooError(f"{verb} needs checkpoint=PATH (a run's checkpoints/best.pt or last.pt)")
    network, task, _ = _rebuild(load_checkpoint_file(config["checkpoint"]))
    device = resolve_device(config.get("trainer", {}).get("device", "auto"))
    return network.to(device), task, device


def predict(cfg: DictConfig | dict[str, Any], lines: Iterable[str]) -> Iterator[str]:
    """One output line per input line (tags, labels...), from `cfg.checkpoint`."""
    network, task, device = _load_for_inference(plain(cfg), "predict")
    with torch.no_grad():
        yield from task.predict(network, (line.rstrip("\n") for line in lines), device)


def translate(cfg: DictConfig | dict[str, Any], lines: Iterable[str]) -> Iterator[str]:
    """A translation per source line from `cfg.checkpoint` (beam_size, length_penalty and
    alignment from `cfg`, the checkpoint's task settings where null)."""
    config = plain(cfg)
    network, task, device = _load_for_inference(config, "translate")
    if not hasattr(task, "translate"):
        raise RnnzooError(f"checkpoint {config['checkpoint']} is a '{config_name(task)}' run; translate needs "
                          "task=translation (rnnzoo predict serves the other tasks)")
    beam = config.get("beam_size")
    if beam is not None and int(beam) < 1:
        raise RnnzooError(f"beam_size must be >= 1, got {beam}")
    if config.get("length_penalty") is not None:
        task.config.length_penalty = float(config["length_penalty"])
    with torch.no_grad():
        yield from task.translate(network, (line.rstrip("\n") for line in lines), device,
                                  None if beam is None else int(beam), bool(config.get("alignment", False)))


def config_name(task: Any) -> str:
    from .registry import TASKS
    return next((e.name for e in TASKS if e.target is type(task)), type(task).__name__)


def sample(cfg: DictConfig | dict[str, Any]) -> Iterator[str]:
    """Text continuing `cfg.prompt`, piece by piece, from `cfg.checkpoint`."""
    config = plain(cfg)
    network, task, device = _load_for_inference(config, "sample")
    if config.get("max_new_tokens", 1) < 1 or config.get("temperature", 1.0) <= 0:
        raise RnnzooError("sample needs max_new_tokens >= 1 and temperature > 0")
    top_p = config.get("top_p")
    if top_p is not None and not 0 < top_p <= 1:
        raise RnnzooError(f"top_p must be in (0, 1], got {top_p}")
    generator = torch.Generator(device=device).manual_seed(int(config.get("seed", 0)))
    with torch.no_grad():
        yield from task.sample(network, config.get("prompt") or "", int(config.get("max_new_tokens", 200)), device,
                               generator, float(config.get("temperature", 1.0)), config.get("top_k"), top_p)
