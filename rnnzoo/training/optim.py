"""Optimizers and learning-rate schedules, built from the trainer config."""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from ..errors import RnnzooError
from .config import TrainerConfig


def freeze(network: nn.Module, prefixes: Iterable[str]) -> int:
    """requires_grad=False on every parameter whose name is a prefix or starts with one followed by
    a dot; returns how many tensors froze. A prefix naming nothing is an error listing the network's
    top-level names, so a typo cannot silently train everything."""
    names = dict(network.named_parameters())
    frozen = 0
    for prefix in prefixes:
        matched = [p for name, p in names.items() if name == prefix or name.startswith(prefix + ".")]
        if not matched:
            tops = sorted({".".join(name.split(".")[:-1][:2]) or name for name in names})  # modules, 2 deep
            raise RnnzooError(f"trainer.freeze: no parameter is named {prefix!r} or under it; "
                              f"the network's parts: {', '.join(tops)}")
        for parameter in matched:
            parameter.requires_grad_(False)
        frozen += len(matched)
    return frozen


def build_optimizer(parameters: Iterable[nn.Parameter], config: TrainerConfig) -> torch.optim.Optimizer:
    parameters = [p for p in parameters if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(lr_groups([{"params": parameters}], config.lr), lr=config.lr,
                                weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(lr_groups(decay_groups(parameters, config.weight_decay), config.lr), lr=config.lr)
    return torch.optim.SGD(lr_groups([{"params": parameters}], config.lr), lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


def lr_groups(groups: list[dict], lr: float) -> list[dict]:
    """Each group split by its parameters' `lr_scale` (an attribute, 1 where absent: set by
    rnnzoo.tasks.embeddings for `task.embedding_lr_scale`), the scaled ones at lr * scale. The
    schedules multiply each group's own lr, so the ratio holds throughout."""
    split = []
    for group in groups:
        scales: dict[float, list[nn.Parameter]] = {1.0: []}  # the unscaled group first: the lr logged is its
        for parameter in group["params"]:
            scales.setdefault(getattr(parameter, "lr_scale", 1.0), []).append(parameter)
        split += [{**group, "params": params, **({} if scale == 1.0 else {"lr": lr * scale})}
                  for scale, params in scales.items() if params or scale == 1.0]
    return split


def decay_groups(parameters: list[nn.Parameter], weight_decay: float) -> list[dict]:
    """AdamW's decoupled weight decay on matrices and embeddings only: biases and LayerNorm
    gains (1-D) are left alone, as in BERT, GPT-2 and nanoGPT (decaying a gain towards 0
    fights the normalization it scales)."""
    matrices = [p for p in parameters if p.dim() >= 2]
    vectors = [p for p in parameters if p.dim() < 2]
    return [{"params": matrices, "weight_decay": weight_decay}, {"params": vectors, "weight_decay": 0.0}]


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainerConfig):
    """A scheduler stepped once per optimizer step, except `plateau`, stepped per evaluation, and
    `epoch_decay`, stepped at the end of each epoch (see `stepped_per_epoch`)."""
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.gamma, patience=config.patience)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    if config.schedule == "warmup_cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(config))
    if config.schedule == "noam":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, Noam(config))
    if config.schedule == "epoch_decay":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, EpochDecay(config))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def stepped_per_epoch(config: TrainerConfig) -> bool:
    """Whether the trainer steps the scheduler at the end of each epoch instead of each update."""
    return config.schedule == "epoch_decay"


class EpochDecay:
    """lr factor after `index` finished epochs: 1 for the first `decay_after_epochs` epochs,
    then multiplied by gamma at the end of each further one.

    Zaremba et al. 2014 (small model): lr 1 for epochs 1-4, then halved after each epoch, so
    epoch e (from 1) trains at 0.5 ** max(e - 4, 0); the same as `decay ** max(i + 1 - max_epoch,
    0)` in TensorFlow's ptb_word_lm.py, with i = e - 1 = `index`.
    """

    def __init__(self, config: TrainerConfig) -> None:
        self.after = config.decay_after_epochs
        self.gamma = config.gamma

    def __call__(self, index: int) -> float:
        return self.gamma ** max(index + 1 - self.after, 0)


class WarmupCosine:
    """lr factor: linear from 0 to 1 over `warmup_steps`, then cosine down to `min_lr_ratio`.

    A class, not a closure, so LambdaLR's state_dict stays plain data.
    """

    def __init__(self, config: TrainerConfig) -> None:
        self.warmup = config.warmup_steps
        self.total = config.max_steps or 0
        self.floor = config.min_lr_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.total <= self.warmup:
            return 1.0
        progress = min((step - self.warmup) / (self.total - self.warmup), 1.0)
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))


class Noam:
    """lr factor of Vaswani et al. 2017, eq. 3: linear warm-up, then decay as 1 / sqrt(step).

    The paper's lr = d_model^-0.5 · min(step^-0.5, step · warmup^-1.5) peaks at step = warmup,
    at d_model^-0.5 · warmup^-0.5. Divided by that peak it is the factor

        min(step / warmup, sqrt(warmup / step))

    so `trainer.lr` is the peak, reached at step `warmup_steps`: the paper's schedule is
    trainer.lr = (d_model · warmup)^-0.5 (7e-4 for d_model 512, warmup 4000). `step` counts
    updates from 1, i.e. LambdaLR's index + 1. Warm-up matters most for post-LN Transformers
    (see rnnzoo.models.transformer).
    """

    def __init__(self, config: TrainerConfig) -> None:
        if config.warmup_steps < 1:
            raise RnnzooError(f"trainer.schedule=noam needs trainer.warmup_steps >= 1 (4000 in Vaswani et al.), "
                              f"got {config.warmup_steps}")
        self.warmup = config.warmup_steps

    def __call__(self, index: int) -> float:
        step = index + 1
        return min(step / self.warmup, math.sqrt(self.warmup / step))
