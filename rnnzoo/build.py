"""Building a run: its typed config (and, for a saved run, its task state) in; its task and
network out, checked against each other, nothing trained yet.

    build_run(run, task_state)   the task, then the model the task's data sizes, in its network
    rebuild(path)                the same from a checkpoint alone, its weights loaded

A fresh run (no `task_state`) whose model config names `init_from` starts from that checkpoint
(rnnzoo.training.pretrained): its tokenizer, its architecture and its weights. A checkpoint
being rebuilt never re-reads `init_from`: its own weights and tokenizer are the fine-tuned
ones, and the pretraining file may be gone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from .errors import IncompatibleError, RnnzooError
from .models.traits import check_compatible, fit_to_task, model_traits
from .registry import MODELS, TASKS
from .run_config import RunConfig
from .tasks.embeddings import init_embeddings, read_task_vectors
from .training.checkpoint import load_checkpoint_file, load_weights
from .training.pretrained import load_pretrained_body, start_from_pretrained


def build_run(run: RunConfig, task_state: dict[str, Any] | None = None) -> tuple[Any, nn.Module]:
    """(task, network) for `run`. `task_state` (from a checkpoint) gives the task its
    vocabularies before the model is sized from them, so nothing is re-read from the data.

    What is built is written back into `run` (`run.model`, `run.values["model"]`): a variant
    chosen for the task, a pretrained architecture. The run's checkpoints save `run.values`,
    so they rebuild this very network."""
    run.model = fit_to_task(run.values, run.model, run.task)
    task = make_task(run, task_state)
    pretrained = None
    if task_state is None and getattr(run.model, "init_from", None):
        pretrained, run.model = start_from_pretrained(run.values, run.model, task)
    # word vectors are read by a fresh run only (a checkpoint holds them, and the vocabulary they grew)
    vectors = read_task_vectors(task) if task_state is None else {}
    for field, size in task.model_sizes().items():  # input width, vocabulary sizes: the data decides
        if hasattr(run.model, field):
            setattr(run.model, field, size)
    check_compatible(run.task_name, run.model_name, run.model, task.requires)
    check_tbptt(run)
    body = make_model(run.model_name, run.model)
    if pretrained is not None:
        load_pretrained_body(body, pretrained["model"], run.model.init_from)
    network = task.build_network(body)
    init_embeddings(task, network, vectors)  # the vectors in; frozen or lr-scaled on every build
    return task, network


def make_task(run: RunConfig, task_state: dict[str, Any] | None) -> Any:
    """The run's task, its vocabularies restored from `task_state` where given."""
    try:
        task = TASKS.get(run.task_name)(run.task, run.seed, run.dataset_values)
    except ValueError as error:
        raise RnnzooError(f"task '{run.task_name}': {error}") from None
    if task_state:
        task.load_state_dict(task_state)
    return task


def make_model(name: str, config: Any) -> nn.Module:
    """Registered model `name` from its typed config; a config it refuses is one line."""
    try:
        return MODELS.get(name)(config)
    except ValueError as error:
        raise RnnzooError(f"model '{name}': {error}") from None


def check_tbptt(run: RunConfig) -> None:
    """Truncated BPTT carries the state from window to window: the model must return one."""
    if run.trainer.tbptt_steps is not None and "stateful" not in model_traits(run.model_name, run.model):
        raise IncompatibleError(f"trainer.tbptt_steps needs a model that carries its state across windows; "
                                f"'{run.model_name}' with this configuration does not")


def rebuild(path: str | Path, payload: dict[str, Any] | None = None) -> tuple[nn.Module, Any, dict[str, Any]]:
    """(network in eval mode, task, run config) from the checkpoint at `path` alone (`payload`: its
    contents, where the caller has read them already)."""
    payload = load_checkpoint_file(path) if payload is None else payload
    config = payload["config"]
    task, network = build_run(RunConfig.of(config), payload.get("task") or {})
    load_weights(network, payload["model"], path)
    return network.eval(), task, config
