"""The trainer's typed config: every `trainer.*` option with its default and help."""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import help_field

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "warmup_cosine", "step", "plateau", "noam", "epoch_decay")
PRECISIONS = ("32", "bf16", "16")  # see rnnzoo.training.precision


@dataclass
class TrainerConfig:
    device: str = help_field("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    max_steps: int | None = help_field(5000, "stop after this many optimizer steps (null: no limit)", ge=1)
    max_epochs: int | None = help_field(None, "stop after this many epochs (null: no limit)", ge=1)
    max_time: float | None = help_field(None, "stop after this many seconds of training (null: no limit)", gt=0)
    optimizer: str = help_field("adam", f"one of {', '.join(OPTIMIZERS)}")
    lr: float = help_field(5e-3, "peak learning rate (5e-3 suits the small recurrent nets of the synthetic "
                                                "tasks; recipes for larger models set their own)", gt=0)
    weight_decay: float = help_field(0.0, "L2 penalty (adamw: decoupled, on matrices and embeddings only)", ge=0)
    momentum: float = help_field(0.9, "momentum for sgd", ge=0, lt=1)
    schedule: str = help_field("constant", f"learning-rate schedule: one of {', '.join(SCHEDULES)} (noam: "
                                           "Vaswani et al.'s warm-up then 1/sqrt(step), peaking at lr; "
                                           "epoch_decay: gamma per epoch after decay_after_epochs)")
    warmup_steps: int = help_field(0, "linear warm-up steps (warmup_cosine, noam)", ge=0)
    min_lr_ratio: float = help_field(0.0, "final lr / peak lr for warmup_cosine", ge=0, le=1)
    step_size: int = help_field(1000, "steps between lr decays for the step schedule", ge=1)
    gamma: float = help_field(0.5, "lr decay factor for the step, plateau and epoch_decay schedules", gt=0, le=1)
    decay_after_epochs: int = help_field(1, "epoch_decay: epochs at the full lr; the lr is then multiplied by "
                                            "gamma after each epoch (Zaremba et al. 2014: 4)", ge=1)
    patience: int = help_field(2, "evaluations without improvement before plateau decays the lr", ge=0)
    grad_clip: float | None = help_field(1.0, "clip gradients at this norm or value (null: off)", gt=0)
    clip_mode: str = help_field("norm", "norm: rescale the whole gradient; value: clamp each entry")
    tbptt_steps: int | None = help_field(None, "truncated BPTT window in steps (null: full BPTT)", ge=1)
    accumulate: int = help_field(1, "micro-batches (or BPTT windows) per optimizer step", ge=1)
    eval_every: int = help_field(100, "evaluate on the validation split every this many steps", ge=1)
    log_every: int = help_field(10, "write training scalars every this many steps", ge=1)
    on_nan: str = help_field("stop", "a NaN/inf loss: stop (naming the step) or skip the batch "
                             "(training ends, diverged, after 100 in a row)")
    deterministic: bool = help_field(False, "use deterministic kernels only (slower)")
    num_threads: int | None = help_field(None, "CPU threads for torch (null: torch's default)", ge=1)
    progress: bool = help_field(True, "show a tqdm progress bar")
    grad_probe_every: int | None = help_field(None, "every this many steps, log ||dL/dh(t)|| for each t on a "
                                                    "fixed validation batch (null: off)", ge=1)
    precision: str = help_field("32", "32 (float32), bf16 (bfloat16 autocast: cuda, cpu) or 16 (float16 autocast "
                                      "with gradient scaling: cuda only)")
    compile: bool = help_field(False, "torch.compile the network for training (models that loop over time steps "
                                      "in Python stay eager, with a notice)")
    freeze: list[str] = help_field([], "parameters left untrained: names or name prefixes as the network lists them "
                                       "(e.g. [body.embeddings] for a fine-tuned bert's embeddings)")
    devices: int = help_field(1, "processes on this machine, one per GPU on cuda (gloo processes on cpu): "
                                 "`rnnzoo train trainer.devices=N` relaunches itself through torchrun", ge=1)


def check_trainer_config(config: TrainerConfig) -> None:
    """Values outside their allowed choices raise ValueError naming the key and the choices.

    Numeric ranges are the fields' own (`help_field(..., ge=1)`), checked where the config is
    made (`Entry.make_config`); only what one field's range cannot say is checked here."""
    choices = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "clip_mode": ("norm", "value"),
               "on_nan": ("stop", "skip"), "precision": PRECISIONS}
    for key, allowed in choices.items():
        if getattr(config, key) not in allowed:
            raise ValueError(f"trainer.{key}={getattr(config, key)!r} is not one of: {', '.join(allowed)}")
    if config.schedule == "noam" and config.warmup_steps < 1:
        raise ValueError(f"trainer.schedule=noam needs trainer.warmup_steps >= 1, got {config.warmup_steps}")
