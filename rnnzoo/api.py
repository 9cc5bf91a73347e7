"""rnnzoo's public API: the functions behind the CLI, callable from tests and notebooks with a
composed config, and the model functions.

    train(cfg, run_dir)      build task + model, check they fit, fit, return final metrics
    prepare(cfg)             tokenize the run's data into the token cache, train nothing
    evaluate(cfg, run_dir)   rebuild everything from `cfg.checkpoint` alone, evaluate a split
    predict / translate / sample(cfg, ...)   text out of `cfg.checkpoint`
    create_model(name, **overrides), list_models(pattern), load_checkpoint(path), load_run(path)

Each verb only composes the pieces, which live where their job is: the typed run config
(rnnzoo.run_config), building (rnnzoo.build), trait matching (rnnzoo.models.traits), the run's
setup (rnnzoo.training.setup), pretrained weights (rnnzoo.training.pretrained). Their public
names are importable from here too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from omegaconf import DictConfig
from torch import nn

from .build import build_run, rebuild
from .decoding import SampleOptions
from .errors import RnnzooError
from .models.traits import check_compatible, misfits, models_fitting
from .registry import MODELS, TASKS, load_registries, typed
from .run_config import RunConfig, check_run_options, plain
from .training.config import TrainerConfig
from .training.device import resolve_device
from .training.pretrained import load_pretrained_body, start_from_pretrained
from .training.run_folder import write_metrics
from .training.setup import record_resumed_config, resumed, run_folder, seed_everything, set_threads
from .training.trainers import make_trainer

log = logging.getLogger("rnnzoo")

__all__ = ["create_model", "list_models", "load_checkpoint", "load_run", "train", "prepare", "evaluate",
           "predict", "translate", "sample", "build", "plain", "RunConfig", "models_fitting", "misfits",
           "check_compatible", "check_run_options", "resumed", "record_resumed_config", "seed_everything",
           "set_threads", "start_from_pretrained", "load_pretrained_body"]

_run_folder = run_folder  # the names these had when they lived here
_load_registries = load_registries


# --- models and checkpoints --------------------------------------------------------------
def create_model(name: str, **overrides: Any) -> nn.Module:
    """A registered model built from its config defaults plus `overrides`.

    >>> create_model("lstm", input_size=16, hidden_size=32)(torch.zeros(2, 5, 16))[0].shape
    torch.Size([2, 5, 32])
    """
    load_registries()
    entry = MODELS.entry(name)
    config = entry.make_config(overrides, where=f"model '{name}'")
    try:
        return entry.target(config)
    except ValueError as error:
        raise RnnzooError(f"model '{name}': {error}") from None


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell wildcard, e.g. `list_models("*ru*")`."""
    load_registries()
    return MODELS.names(pattern)


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The network saved in a checkpoint, rebuilt, weights loaded, in eval mode; and its config."""
    network, _task, config = rebuild(path)
    return network, config


def load_run(path: str | Path) -> tuple[nn.Module, Any, dict[str, Any]]:
    """(network in eval mode, its task with vocabularies, the run config) from a checkpoint:
    everything scripts need to decode or score with a trained model."""
    return rebuild(path)


def build(config: dict[str, Any] | RunConfig,
          task_state: dict[str, Any] | None = None) -> tuple[Any, nn.Module, TrainerConfig]:
    """(task, network, trainer config) from a plain run config (see `plain`); nothing trained
    yet. A plain `config` gets the model really built written into `config["model"]`
    (rnnzoo.build.build_run)."""
    run = config if isinstance(config, RunConfig) else RunConfig.of(config)
    task, network = build_run(run, task_state)
    return task, network, run.trainer


def _typed(config: dict[str, Any]) -> tuple[Any, Any, Any, TrainerConfig]:
    """The model, task, dataset and trainer sections of a plain run config, each checked
    against its dataclass (RunConfig.of): the name this had before RunConfig."""
    run = RunConfig.of(config)
    return run.model, run.task, run.dataset, run.trainer


# --- training ------------------------------------------------------------------------------
def train(cfg: DictConfig | dict[str, Any], run_dir: str | Path,
          overrides: Iterable[str] | None = None) -> dict[str, float]:
    """Train as `rnnzoo train` does; write the run folder; return the final metrics.

    With `resume=PATH` the run config and the task's vocabularies are the checkpoint's
    (rnnzoo.training.resume); `overrides` are the command line's, which say what the user
    asked to change (None: every key of `cfg`). The run folder is held for the run's life and
    never one of another run (rnnzoo.training.run_folder)."""
    config = plain(cfg)
    check_run_options(config)
    config, task_state = resumed(config, overrides)
    with run_folder(Path(run_dir), config) as folder:
        run = RunConfig.of(config)
        set_threads(run.trainer.num_threads)
        seed_everything(run.seed, run.trainer.deterministic)
        task, network = build_run(run, task_state)
        log.info("model %s (%s parameters) on task %s", run.model_name,
                 f"{sum(p.numel() for p in network.parameters()):,}", run.task_name)
        trainer = make_trainer(task, network=network, config=run.trainer, run_dir=folder, run_config=run.values)
        return trainer.fit(resume=run.resume)


def prepare(cfg: DictConfig | dict[str, Any]) -> Any:
    """Read and tokenize the data of the run `cfg` describes into the token cache, as `rnnzoo
    prepare` does; return the task (its `cache_entries` name what was written or found).

    The model is built too: it decides how a task frames its inputs (BERT's [CLS] ... [SEP],
    next-sentence pairs), which is part of what is cached."""
    run = RunConfig.of(plain(cfg))
    set_threads(run.trainer.num_threads)
    task, _network = build_run(run)
    task.prepare_splits()
    return task


# --- inference from a checkpoint -----------------------------------------------------------
def evaluate(cfg: DictConfig | dict[str, Any], run_dir: str | Path | None = None) -> dict[str, float]:
    """Evaluate `cfg.checkpoint` on `cfg.split`, rebuilt from the checkpoint alone (a
    translation checkpoint with `cfg.beam_size` instead of its own, a language model on
    `cfg.eval_tokens` tokens of the split instead of its own prefix)."""
    config = plain(cfg)
    split = config.get("split", "test")
    if split not in ("val", "test"):
        raise RnnzooError(f"split={split!r} is not one of: val, test")
    network, task, device = _load_for_inference(config, "eval")
    decoding: dict[str, int] = {}
    if config.get("beam_size") is not None:
        if not hasattr(task.config, "beam_size") or int(config["beam_size"]) < 1:
            raise RnnzooError(f"beam_size={config['beam_size']}: needs a translation checkpoint and a beam >= 1")
        decoding["beam_size"] = int(config["beam_size"])
    _set_eval_tokens(task, config.get("eval_tokens"))
    metrics = {f"{split}/{k}": v for k, v in task.evaluate(network, split, device, **decoding).items()}
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        write_metrics(Path(run_dir) / "metrics.json", metrics)
    return metrics


def _set_eval_tokens(task: Any, value: Any) -> None:
    """`eval_tokens=N|all`: a language model scored on the split's first N tokens, or on all of
    them, instead of the prefix its checkpoint validated on during training (task.eval_tokens)."""
    if value is None:
        return
    if not hasattr(task.config, "eval_tokens"):
        raise RnnzooError(f"eval_tokens={value}: only a generation checkpoint has a token budget to evaluate on")
    if str(value) == "all":
        task.config.eval_tokens = None
        return
    if isinstance(value, bool) or not str(value).isdigit() or int(value) < 2:
        raise RnnzooError(f"eval_tokens={value!r} is not a whole number >= 2 or 'all'")
    task.config.eval_tokens = int(value)


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
    beam, penalty = config.get("beam_size"), config.get("length_penalty")
    if beam is not None and int(beam) < 1:
        raise RnnzooError(f"beam_size must be >= 1, got {beam}")
    with torch.no_grad():
        yield from task.translate(network, (line.rstrip("\n") for line in lines), device,
                                  None if beam is None else int(beam), bool(config.get("alignment", False)),
                                  length_penalty=None if penalty is None else float(penalty))


def sample(cfg: DictConfig | dict[str, Any]) -> Iterator[str]:
    """Text continuing `cfg.prompt`, piece by piece, from `cfg.checkpoint`."""
    config = plain(cfg)
    options = typed(SampleOptions, {k: v for k, v in config.items() if k in SampleOptions.__dataclass_fields__})
    network, task, device = _load_for_inference(config, "sample")
    generator = torch.Generator(device=device).manual_seed(options.seed)
    with torch.no_grad():
        yield from task.sample(network, config.get("prompt") or "", options.max_new_tokens, device, generator,
                               options.temperature, options.top_k, options.top_p)


def _load_for_inference(config: dict[str, Any], verb: str,
                        payload: dict[str, Any] | None = None) -> tuple[nn.Module, Any, torch.device]:
    """(network on its device, task, device) from `checkpoint=` (`payload`: its contents, where
    the caller has read them) and `trainer.device=`."""
    checkpoint = _checkpoint_of(config, verb)
    trainer = config.get("trainer", {})
    set_threads(trainer.get("num_threads"))
    network, task, _ = rebuild(checkpoint, payload)
    device = resolve_device(trainer.get("device", "auto"))
    return network.to(device), task, device


def _checkpoint_of(config: dict[str, Any], verb: str) -> str:
    """The `checkpoint=` of an inference command; RnnzooError where none is given."""
    if config.get("checkpoint") in (None, "", "???"):
        raise RnnzooError(f"{verb} needs checkpoint=PATH (a run's checkpoints/best.pt or last.pt)")
    return str(config["checkpoint"])


def config_name(task: Any) -> str:
    """The name a task is registered under (what `task=` takes)."""
    return next((e.name for e in TASKS if e.target is type(task)), type(task).__name__)
