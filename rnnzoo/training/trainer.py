"""The generic trainer: it never asks which model or task it is running.

Per batch: move it to the device, cut it into truncated-BPTT windows (`trainer.tbptt_steps`),
and for each window call `task.step`, backpropagate, carry the state on detached (the
`repackage_hidden` of pytorch/examples' word_language_model), and every `accumulate`
windows clip the gradient (logging its norm first) and step the optimizer and schedule.
Between batches: log, evaluate on schedule, keep `last.pt` and `best.pt`, stop on a budget
(steps, epochs, seconds) or when the task's target is reached.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import __version__
from ..errors import RnnzooError
from ..nn.recurrent import RecurrentEncoder, State
from ..tasks.base import Task, add_stats, float_stats
from .checkpoint import load_checkpoint_file, rng_state, save_checkpoint, set_rng_state, unwrap_model
from .config import TrainerConfig
from .diagnostics import GradientProbe
from .logger import RunLogger
from .optim import build_optimizer, build_scheduler

log = logging.getLogger("rnnzoo")


class TrainingError(RnnzooError):
    """Training cannot go on (a NaN loss, for instance)."""


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA, then MPS, then the CPU; an unavailable device is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RnnzooError(f"trainer.device={name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RnnzooError(f"trainer.device={name} but CUDA is not available here; use trainer.device=cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise RnnzooError(f"trainer.device={name} but only {torch.cuda.device_count()} CUDA device(s) exist")
    return device


@dataclass
class Progress:
    """Where training stands: saved in checkpoints, restored on resume."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best: float | None = None
    history: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)


class RunTrainer:
    """What every trainer holds: the task, the network on its device, the run folder."""

    def __init__(self, task: Task, network: nn.Module, config: TrainerConfig, run_dir: Path,
                 run_config: dict[str, Any]) -> None:
        self.task, self.config, self.run_dir = task, config, Path(run_dir)
        self.run_config = run_config
        self.device = resolve_device(config.device)
        self.network = network.to(self.device)
        self.checkpoint_dir = self.run_dir / "checkpoints"


class Trainer(RunTrainer):
    """Fits a task's network with gradients; see the module docstring for the loop."""

    def __init__(self, task: Task, network: nn.Module, config: TrainerConfig, run_dir: Path,
                 run_config: dict[str, Any]) -> None:
        super().__init__(task, network, config, run_dir, run_config)
        self.optimizer = build_optimizer(network.parameters(), config)
        self.scheduler = build_scheduler(self.optimizer, config)
        self.progress = Progress()
        self.carry: State | None = None  # state carried across batches (streaming tasks)
        self._window_count = 0
        self._since_log: dict[str, float] = {}
        self._tokens_since_log = 0
        self._last_log_time = time.perf_counter()
        self._grad_norm = float("nan")

    # --- the loop -------------------------------------------------------------------
    def fit(self, resume: str | Path | None = None) -> dict[str, float]:
        """Train until a budget or the target is reached; return the final metrics."""
        if resume is not None:
            self.resume_from(resume)
        self.logger = RunLogger(self.run_dir, self.run_config)
        self.probe = self._make_probe()
        started = time.perf_counter()
        bar = tqdm(total=self.config.max_steps, initial=self.progress.step, disable=not self.config.progress,
                   dynamic_ncols=True, desc="train")
        last_eval_step = self.progress.step if resume is not None else -1
        try:
            while not self._budget_spent(started):
                for batch in self.task.train_batches(self.progress.epoch, self.progress.batch_in_epoch):
                    steps_before = self.progress.step
                    self._train_batch(batch)
                    self.progress.batch_in_epoch += 1
                    bar.update(self.progress.step - steps_before)
                    if self.probe is not None and self._crossed(steps_before, self.config.grad_probe_every):
                        self.probe.record(self.network, self.progress.step, self.logger.writer)
                    if self._crossed(steps_before, self.config.eval_every):
                        last_eval_step = self.progress.step
                        if self._evaluate_and_save(bar):
                            return self._finish(started)
                    if self._budget_spent(started):
                        break
                else:  # the epoch ran out
                    self.progress.epoch += 1
                    self.progress.batch_in_epoch = 0
            if last_eval_step != self.progress.step:
                self._evaluate_and_save(bar)
            return self._finish(started)
        except KeyboardInterrupt:
            path = self.save("last.pt")
            log.warning("interrupted at step %d; saved %s (continue with resume=%s)", self.progress.step, path, path)
            raise
        finally:
            bar.close()
            self.logger.close()

    def _make_probe(self) -> GradientProbe | None:
        if self.config.grad_probe_every is None:
            return None
        batch = next(iter(self.task.eval_batches("val"))).to(self.device)
        return GradientProbe(self.task, batch, self.run_dir, self.network)

    def _budget_spent(self, started: float) -> bool:
        c, p = self.config, self.progress
        return ((c.max_steps is not None and p.step >= c.max_steps)
                or (c.max_epochs is not None and p.epoch >= c.max_epochs)
                or (c.max_time is not None and time.perf_counter() - started >= c.max_time))

    def _crossed(self, before: int, every: int) -> bool:
        return self.progress.step // every > before // every

    def _train_batch(self, batch: Any) -> None:
        self.network.train()
        batch = batch.to(self.device, non_blocking=self.device.type == "cuda")
        state = self.carry if self.task.streams_state else None
        for window in batch.windows(self.config.tbptt_steps):
            out = self.task.step(self.network, window, state)
            state = RecurrentEncoder.detach_state(out.state)
            loss_value = float(out.loss.detach())  # the one host sync of the step
            if loss_value == 0.0 and float(out.count) == 0:  # nothing to predict: just carry the state
                continue
            if not math.isfinite(loss_value):
                self._bad_loss(loss_value)
                continue
            (out.loss / self.config.accumulate).backward()
            add_stats(self._since_log, out.stats)
            self._tokens_since_log += window.num_tokens
            self._window_count += 1
            if self._window_count % self.config.accumulate == 0:
                self._optimizer_step()
        if self.task.streams_state:
            self.carry = state

    def _bad_loss(self, value: float) -> None:
        if self.config.on_nan == "stop":
            raise TrainingError(f"loss is {value} at step {self.progress.step + 1}; lower trainer.lr, "
                                "set trainer.grad_clip, or trainer.on_nan=skip to skip such batches")
        log.warning("skipping a batch whose loss is %s at step %d", value, self.progress.step + 1)
        self.optimizer.zero_grad(set_to_none=True)

    def _optimizer_step(self) -> None:
        c = self.config
        parameters = [p for p in self.network.parameters() if p.grad is not None]
        limit = c.grad_clip if (c.grad_clip is not None and c.clip_mode == "norm") else float("inf")
        self._grad_norm = float(nn.utils.clip_grad_norm_(parameters, limit))  # norm before clipping
        if c.grad_clip is not None and c.clip_mode == "value":
            nn.utils.clip_grad_value_(parameters, c.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if not isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step()
        self.progress.step += 1
        if self.progress.step % c.log_every == 0:
            self._log_training()

    def _log_training(self) -> None:
        metrics = self.task.metrics(float_stats(self._since_log))
        now = time.perf_counter()
        rate = self._tokens_since_log / max(now - self._last_log_time, 1e-9)
        scalars = {f"train/{k}": v for k, v in metrics.items()}
        scalars.update({"train/lr": self.optimizer.param_groups[0]["lr"], "train/grad_norm": self._grad_norm,
                        "train/tokens_per_s": rate})
        self.logger.scalars(scalars, self.progress.step)
        loss = metrics.get("loss", next(iter(metrics.values())))
        self.progress.history.append((self.progress.step, float(loss)))
        self._since_log, self._tokens_since_log, self._last_log_time = {}, 0, now
        self._postfix = {"loss": f"{loss:.4f}", "tok/s": f"{rate:,.0f}"}

    # --- evaluation and checkpoints -------------------------------------------------
    def _evaluate_and_save(self, bar: tqdm) -> bool:
        """Evaluate on val, save last/best; True when the task's target is reached."""
        metrics = self.task.evaluate(self.network, "val", self.device)
        self.logger.scalars({f"val/{k}": v for k, v in metrics.items()}, self.progress.step, flush=True)
        self.task.on_evaluation(self.network, self.progress.step, self.logger.writer)
        value = metrics[self.task.monitor]
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(value if self.task.monitor_mode == "min" else -value)
        improved = self.progress.best is None or (
            value < self.progress.best if self.task.monitor_mode == "min" else value > self.progress.best)
        if improved:
            self.progress.best = value
        self.save("last.pt")
        if improved:
            self.save("best.pt")
        postfix = dict(getattr(self, "_postfix", {}), **{f"val_{self.task.monitor}": f"{value:.4f}"})
        bar.set_postfix(postfix)
        log.info("step %d val %s", self.progress.step, format_metrics(metrics))
        target = self.task.target
        reached = target is not None and (value <= target if self.task.monitor_mode == "min" else value >= target)
        if reached:
            log.info("target %s=%s reached at step %d", self.task.monitor, target, self.progress.step)
        return reached

    def _finish(self, started: float) -> dict[str, float]:
        """Evaluate the best checkpoint on val and test; write metrics.json."""
        seconds = time.perf_counter() - started
        best = self.checkpoint_dir / "best.pt"
        if best.exists():
            unwrap_model(self.network).load_state_dict(load_checkpoint_file(best)["model"])
        final: dict[str, float] = {"train/steps": self.progress.step, "train/seconds": round(seconds, 2)}
        for split in ("val", "test"):
            final.update({f"{split}/{k}": v for k, v in self.task.evaluate(self.network, split, self.device).items()})
        (self.run_dir / "metrics.json").write_text(json.dumps(final, indent=2) + "\n")
        self.logger.hparams(self.run_config, final)
        log.info("finished at step %d in %.1fs: %s", self.progress.step, seconds, format_metrics(final))
        return final

    def save(self, name: str) -> Path:
        p = self.progress
        payload = {
            "rnnzoo": __version__, "torch": str(torch.__version__), "config": self.run_config,
            "model": unwrap_model(self.network).state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": None,
            "step": p.step, "epoch": p.epoch, "batch_in_epoch": p.batch_in_epoch, "best_metric": p.best,
            "history": [list(h) for h in p.history], "task": self.task.state_dict(),
            "rng": rng_state(), "carry_state": self.carry,
        }
        return save_checkpoint(payload, self.checkpoint_dir / name)

    def resume_from(self, path: str | Path) -> None:
        payload = load_checkpoint_file(path)
        unwrap_model(self.network).load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.progress = Progress(payload["step"], payload["epoch"], payload["batch_in_epoch"],
                                 payload["best_metric"], [tuple(h) for h in payload.get("history", [])])
        self.carry = payload.get("carry_state")
        set_rng_state(payload["rng"])
        log.info("resumed from %s at step %d", path, self.progress.step)


def format_metrics(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) and not math.isnan(v) else f"{k}={v}"
                    for k, v in metrics.items())
