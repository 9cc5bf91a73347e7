"""The trainers by kind: a task names the kind that fits its networks (`Task.trainer`), and the
run builds it here, so that tasks never import the training loop (which imports them).

    gradient  rnnzoo.training.trainer.Trainer: backpropagation, the default
    hebbian   rnnzoo.training.hebbian.HebbianTrainer: store once, then evaluate (Hopfield)
"""

from __future__ import annotations

from typing import Any

from ..errors import RnnzooError
from .hebbian import HebbianTrainer
from .trainer import RunTrainer, Trainer

TRAINERS: dict[str, type[RunTrainer]] = {"gradient": Trainer, "hebbian": HebbianTrainer}


def make_trainer(task: Any, **kwargs: Any) -> RunTrainer:
    """The trainer of the kind `task.trainer` names, fitting its network (`kwargs`: network,
    config, run_dir, run_config)."""
    kind = task.trainer
    if kind not in TRAINERS:
        raise RnnzooError(f"task '{type(task).__name__}' names trainer kind {kind!r}; kinds: {', '.join(TRAINERS)}")
    return TRAINERS[kind](task=task, **kwargs)
