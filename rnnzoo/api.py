"""The functions behind the CLI, callable from tests and notebooks with a composed config.

    train(cfg, run_dir)      build task + model, check they fit, fit, return final metrics
    prepare(cfg)             tokenize the run's data into the token cache, train nothing
    evaluate(cfg, run_dir)   rebuild everything from `cfg.checkpoint` alone, evaluate a split
    create_model(name, **overrides), list_models(pattern), load_checkpoint(path)
"""

from __future__ import annotations

import logging
import numbers
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .decoding import SampleOptions
from .errors import IncompatibleError, RnnzooError
from .models.traits import INPUT_TRAITS, TRAIT_HELP, fit_to_task, fitting_with_options, model_traits
from .registry import DATASETS, MODELS, TASKS, typed
from .training.checkpoint import load_checkpoint_file, load_weights
from .training.config import TrainerConfig, check_trainer_config
from .training.resume import resumed_config
from .training.run_folder import claim, write_metrics

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
    network, _task, config = _rebuild(path)
    return network, config


def load_run(path: str | Path) -> tuple[nn.Module, Any, dict[str, Any]]:
    """(network in eval mode, its task with vocabularies, the run config) from a checkpoint:
    everything scripts need to decode or score with a trained model."""
    return _rebuild(path)


# --- building a run -------------------------------------------------------------------
def _load_registries() -> None:
    from . import data, models, tasks  # noqa: F401


def models_fitting(task_name: str) -> list[str]:
    """Models whose default configs have every trait the task needs, and read what it can feed."""
    return [name for name in MODELS.names() if not misfits(task_name, model_traits(name))]


def misfits(task_name: str, traits: frozenset[str], requires: frozenset[str] | None = None) -> list[str]:
    """Why a model with `traits` cannot serve the task, one phrase per reason; [] when it fits.

    `requires`: the task instance's needs where they differ from its class's (see check_compatible)."""
    task = TASKS.get(task_name)
    needs = task.requires if requires is None else requires
    why = [f"it must be {trait} ({TRAIT_HELP.get(trait, trait)}), and this configuration is not"
           for trait in sorted(needs - traits)]
    why += [f"it {TRAIT_HELP.get(trait, trait)} ({trait}), which this task cannot feed it"
            for trait in sorted((traits & INPUT_TRAITS) - task.accepts)]
    return why


def check_compatible(task_name: str, model_name: str, model_config: Any,
                     requires: frozenset[str] | None = None) -> None:
    """Fail before any work when the model lacks a trait the task needs, saying which fit.

    `requires`: what this task instance needs, where its config adds to the class's needs
    (generation with sampling=streams also needs a stateful model)."""
    why = misfits(task_name, model_traits(model_name, model_config), requires)
    if why:
        fits = ", ".join(models_fitting(task_name) + fitting_with_options(task_name)) or "none yet"
        raise IncompatibleError(f"model '{model_name}' cannot serve task '{task_name}': {'; '.join(why)}. "
                                f"Models that fit: {fits}")


def _typed(config: dict[str, Any]) -> tuple[Any, Any, Any, TrainerConfig]:
    """Validate the model, task, dataset and trainer sections against their dataclasses."""
    for section in ("model", "task", "dataset", "trainer"):
        for key, value in (config.get(section) or {}).items():
            if value == "???":  # a value the recipe requires; merged onto a schema default it would vanish
                raise RnnzooError(f"{section}.{key} is required here (the config says ???): give {section}.{key}=...")
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

    A fresh run (no `task_state`) whose model config names `init_from` starts from that
    checkpoint (`start_from_pretrained`): its tokenizer, its architecture (written into
    `config["model"]` in place, so the run's saved config rebuilds this very network) and its
    weights. A checkpoint being rebuilt never re-reads `init_from`: its own weights and
    tokenizer are the fine-tuned ones, and the pretraining file may be gone.
    """
    _load_registries()
    model_config, task_config, _dataset_config, trainer_config = _typed(config)
    model_config = fit_to_task(config, model_config, task_config)
    model_name, task_name = config["model"]["name"], config["task"]["name"]
    try:
        task = TASKS.get(task_name)(task_config, int(config.get("seed", 0)), dict(config.get("dataset") or {}))
    except ValueError as error:
        raise RnnzooError(f"task '{task_name}': {error}") from None
    if task_state:
        task.load_state_dict(task_state)
    pretrained = None
    if task_state is None and getattr(model_config, "init_from", None):
        pretrained, model_config = start_from_pretrained(config, model_config, task)
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
    if pretrained is not None:
        load_pretrained_body(body, pretrained["model"], model_config.init_from)
    return task, task.build_network(body), trainer_config


# --- starting from a pretrained checkpoint (model.init_from) ------------------------------
def start_from_pretrained(config: dict[str, Any], model_config: Any, task: Any) -> tuple[dict[str, Any], Any]:
    """Read the `init_from` checkpoint, hand its tokenizer to the task, and return (its payload,
    the model config of its architecture with this run's `init_from` and dropouts).

    The architecture must be the pretrained one or its weights would not fit. Dropout is a
    matter of training, not of architecture, so the fine-tuning run chooses its own.
    """
    path, model_name = model_config.init_from, config["model"]["name"]
    try:
        payload = load_checkpoint_file(path)
    except RnnzooError as error:
        raise RnnzooError(f"model.init_from: {error}") from None
    theirs = payload["config"]["model"]
    if theirs.get("name") != model_name:
        raise RnnzooError(f"model.init_from={path} is a checkpoint of model '{theirs.get('name')}' (task "
                          f"'{payload['config']['task']['name']}'); model '{model_name}' can only start from "
                          f"a '{model_name}' checkpoint")
    task.inherit_tokenizer(payload.get("task") or {})
    mine = config["model"]
    kept = {key: value for key, value in mine.items() if _chosen_per_run(key)}
    architecture = {key: value for key, value in theirs.items() if not _chosen_per_run(key)}
    shown = set(architecture) - set(task.model_sizes()) - {"name"}  # sizes come from the (inherited) data
    config["model"] = {**architecture, **kept}  # what this run's checkpoints will say it is
    log.info("model.init_from=%s: the architecture of that %s run (%s), this run's %s", path, model_name,
             ", ".join(f"{k}={v}" for k, v in architecture.items() if k in shown),
             ", ".join(f"{k}={v}" for k, v in kept.items() if k != "init_from") or "defaults")
    ignored = [f"{key}={mine[key]}" for key in sorted(shown) if key in mine and mine[key] != architecture[key]]
    if ignored:
        log.warning("model.init_from: this run's %s ignored: the pretrained weights fix the architecture",
                    ", ".join(ignored))
    return payload, MODELS.entry(model_name).make_config(config["model"], where="model")


def _chosen_per_run(key: str) -> bool:
    """Model options a run starting from a checkpoint chooses itself: where it starts from and
    its dropouts (regularization: no weight depends on them)."""
    return key == "init_from" or "dropout" in key


def load_pretrained_body(body: nn.Module, weights: dict[str, Any], path: str) -> None:
    """Load the `body.*` tensors of a saved task network into `body`.

    Every task network keeps the registry's model under `body` (TaskNetwork, Classifier,
    Tagger, the pretraining network), so a checkpoint of any task fits. A tensor on one side
    only (a head one run has and the other not: next-sentence, say) is left as it is; one of
    another shape is an error naming it.
    """
    theirs = {key[len("body."):]: value for key, value in weights.items() if key.startswith("body.")}
    ours = body.state_dict()
    for key, value in theirs.items():
        if key in ours and ours[key].shape != value.shape:
            raise RnnzooError(f"model.init_from={path}: {key} has shape {tuple(value.shape)} there and "
                              f"{tuple(ours[key].shape)} here")
    shared = {key: value for key, value in theirs.items() if key in ours}
    if not shared:
        raise RnnzooError(f"model.init_from={path}: no tensor of that checkpoint fits this model")
    body.load_state_dict(shared, strict=False)
    fresh = sorted(set(ours) - set(shared))
    log.info("model.init_from: loaded %d of the model's %d tensors from %s%s", len(shared), len(ours), path,
             f"; initialized afresh: {', '.join(fresh)}" if fresh else "")


def _rebuild(path: str | Path):
    """(network in eval mode, task, config) from the checkpoint at `path` alone."""
    payload = load_checkpoint_file(path)
    config = payload["config"]
    task, network, _ = build(config, payload.get("task") or {})
    load_weights(network, payload["model"], path)
    return network.eval(), task, config


def check_run_options(config: Any) -> None:
    """train.yaml's own options, which no config dataclass types: `seed=x` or `overwrite=maybe`
    (a string, which would count as true) is one line here, not a traceback or a lost run."""
    seed, overwrite, resume = config.get("seed", 0), config.get("overwrite", False), config.get("resume")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**64:  # torch's range
        raise RnnzooError(f"seed={seed} is out of range: must be an integer in [0, 2**64)")
    if not isinstance(overwrite, bool):
        raise RnnzooError(f"overwrite={overwrite} must be true or false")
    if resume is not None and not isinstance(resume, str):
        raise RnnzooError(f"resume={resume} must be the path of a checkpoint (last.pt)")


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
def set_threads(trainer_values: dict[str, Any]) -> None:
    """`trainer.num_threads`, where set: torch's CPU threads (1 per job on a shared machine)."""
    if trainer_values.get("num_threads"):
        torch.set_num_threads(int(trainer_values["num_threads"]))


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
    with _run_folder(Path(run_dir), config) as run_dir:
        trainer_values = config.get("trainer", {})
        set_threads(trainer_values)
        seed_everything(int(config.get("seed", 0)), bool(trainer_values.get("deterministic", False)))
        task, network, trainer_config = build(config, task_state)
        log.info("model %s (%s parameters) on task %s", config["model"]["name"],
                 f"{sum(p.numel() for p in network.parameters()):,}", config["task"]["name"])
        from .training.trainers import make_trainer
        trainer = make_trainer(task, network=network, config=trainer_config, run_dir=run_dir, run_config=config)
        return trainer.fit(resume=config.get("resume"))


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
def _run_folder(run_dir: Path, config: dict[str, Any]) -> Iterator[Path]:
    """Rank 0's run folder, claimed for the body; under torchrun the other ranks write nothing."""
    from .training.distributed import process_rank

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


def prepare(cfg: DictConfig | dict[str, Any]) -> Any:
    """Read and tokenize the data of the run `cfg` describes into the token cache, as `rnnzoo
    prepare` does; return the task (its `cache_entries` name what was written or found).

    The model is built too: it decides how a task frames its inputs (BERT's [CLS] ... [SEP],
    next-sentence pairs), which is part of what is cached."""
    config = plain(cfg)
    set_threads(config.get("trainer", {}))
    task, _network, _ = build(config)
    task.prepare_splits()
    return task


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
        write_metrics(Path(run_dir) / "metrics.json", metrics)
    return metrics


def _load_for_inference(config: dict[str, Any], verb: str):
    """(network on its device, task, device) from `checkpoint=` and `trainer.device=`."""
    from .training.trainer import resolve_device

    if config.get("checkpoint") in (None, "", "???"):
        raise RnnzooError(f"{verb} needs checkpoint=PATH (a run's checkpoints/best.pt or last.pt)")
    set_threads(config.get("trainer", {}))
    network, task, _ = _rebuild(config["checkpoint"])
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
    options = typed(SampleOptions, {k: v for k, v in config.items() if k in SampleOptions.__dataclass_fields__})
    network, task, device = _load_for_inference(config, "sample")
    generator = torch.Generator(device=device).manual_seed(options.seed)
    with torch.no_grad():
        yield from task.sample(network, config.get("prompt") or "", options.max_new_tokens, device, generator,
                               options.temperature, options.top_k, options.top_p)
