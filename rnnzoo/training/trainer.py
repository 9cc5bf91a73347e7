"""The generic trainer: it never asks which model or task it is running.

Per batch: move it to the device, cut it into truncated-BPTT windows (`trainer.tbptt_steps`),
and for each window call `task.step`, backpropagate, carry the state on detached (the
`repackage_hidden` of pytorch/examples' word_language_model), and every `accumulate`
windows clip the gradient (logging its norm first) and step the optimizer and schedule.
Between batches: log, evaluate on schedule, keep `last.pt` and `best.pt`, stop on a budget
(steps, epochs, seconds) or when the task's target is reached.

Scale (see the modules named): `trainer.precision` runs the step under autocast
(rnnzoo.training.precision), `trainer.compile` trains a torch.compile'd network
(rnnzoo.training.compile), and under torchrun every rank trains on its share of each batch
through DDP (rnnzoo.training.distributed). Three references to the network follow from that:
`model`, the plain module on the device (evaluated, probed, checkpointed); `network`, what
`task.step` trains (`model`, or its compiled wrapper); `ddp`, the DDP wrapper of the step
(None in a single process, whose path is the plain loop above, with no added syncs).
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ContextManager

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import RnnzooError
from ..nn.recurrent import RecurrentEncoder, State
from ..tasks.base import StepOutput, Task, add_stats, seeded_generator
from ..tasks.batch import Batch
from .checkpoint import (
    checkpoint_payload,
    load_checkpoint_file,
    load_weights,
    move_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .compile import compiled_for_training
from .config import TrainerConfig
from .device import resolve_device
from .diagnostics import GradientProbe
from .distributed import Distributed, TaskStep
from .logger import NullLogger, RunLogger, seconds_since_start
from .memory import check_memory
from .optim import build_optimizer, build_scheduler, freeze, stepped_per_epoch
from .precision import Precision
from .run_folder import resume_command, write_metrics

log = logging.getLogger("rnnzoo")
MAX_SKIPPED_IN_A_ROW = 100  # trainer.on_nan=skip ends training after this many NaN/inf losses in a row


class TrainingError(RnnzooError):
    """Training cannot go on (a NaN loss, for instance)."""


class RunDiverged(TrainingError):
    """trainer.on_nan=skip: the loss stayed NaN/inf until training ended. Raised after the run
    folder is written (metrics.json says `"diverged": true`), so the command exits non-zero
    with its own status, which sweeps that expect some runs to diverge can tell from a failure."""

    exit_status = 3

    def __init__(self, message: str, metrics: dict[str, Any]) -> None:
        super().__init__(message)
        self.metrics = metrics


@dataclass
class Progress:
    """Where training stands: saved in checkpoints, restored on resume."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best: float | None = None
    history: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)


class RunTrainer:
    """What every trainer holds: the task, the network on its device, the run folder, and the
    process's place in a distributed run (a world of one without torchrun)."""

    def __init__(self, task: Task, network: nn.Module, config: TrainerConfig, run_dir: Path,
                 run_config: dict[str, Any]) -> None:
        self.task, self.config, self.run_dir = task, config, Path(run_dir)
        self.run_config = run_config
        self.dist = Distributed.from_env(config.devices)
        self.device = self.dist.device_for(resolve_device(config.device))
        self.dist.start(self.device)
        self.network = to_device(network, self.device)
        self.checkpoint_dir = self.run_dir / "checkpoints"


def to_device(network: nn.Module, device: torch.device) -> nn.Module:
    """`network` on `device`; on CUDA, each PyTorch RNN's weights made one contiguous block.

    `.to()` gives an nn.LSTM new weight tensors but not the single buffer cuDNN reads them
    from; without `flatten_parameters` cuDNN copies them into one at every call (and warns).
    """
    network = network.to(device)
    if device.type == "cuda":
        for module in network.modules():
            if isinstance(module, nn.RNNBase):
                module.flatten_parameters()
    return network


class Trainer(RunTrainer):
    """Fits a task's network with gradients; see the module docstring for the loop."""

    def __init__(self, task: Task, network: nn.Module, config: TrainerConfig, run_dir: Path,
                 run_config: dict[str, Any]) -> None:
        super().__init__(task, network, config, run_dir, run_config)
        self.model = self.network
        frozen = freeze(self.model, config.freeze)  # before DDP, which registers the parameters to reduce
        if frozen and self.dist.is_main:
            log.info("trainer.freeze: %d parameter tensors left untrained", frozen)
        if config.compile:
            self.network, notice = compiled_for_training(self.model, self.device)
            if notice and self.dist.is_main:
                log.warning(notice)
        self.ddp = self.dist.wrap(TaskStep(task, self.network)) if self.dist.enabled else None
        self._forward = self._forward_shared if self.ddp is not None else self._forward_alone
        self.precision = Precision(config.precision, self.device)
        self.optimizer = build_optimizer(self.model.parameters(), config)
        self.scheduler = build_scheduler(self.optimizer, config)
        self.progress = Progress()
        self.carry: State | None = None  # state carried across batches (streaming tasks)
        self._window_count = 0
        self._bad_in_a_row = 0  # trainer.on_nan=skip: batches skipped since the last usable one
        self._since_log: dict[str, float] = {}
        self._tokens_since_log = 0
        self._last_log_time = time.perf_counter()
        self._grad_norm = float("nan")
        self._first_batch_logged = False

    # --- the loop -------------------------------------------------------------------
    def fit(self, resume: str | Path | None = None) -> dict[str, float]:
        """Train until a budget or the target is reached; return the final metrics."""
        check_memory(self.task, self.model, self.device)  # refuse a batch that cannot fit, before any work
        if resume is not None:
            self.resume_from(resume)
        else:
            self._reseed_rank()
        self.logger = RunLogger(self.run_dir, self.run_config) if self.dist.is_main else NullLogger()
        self.probe = self._make_probe()
        started = time.perf_counter()
        bar = tqdm(total=self.config.max_steps, initial=self.progress.step, dynamic_ncols=True, desc="train",
                   disable=not (self.config.progress and self.dist.is_main))
        last_eval_step = self.progress.step if resume is not None else -1
        try:
            while not self._budget_spent(started):
                for batch in self.task.train_batches(self.progress.epoch, self.progress.batch_in_epoch):
                    steps_before = self.progress.step
                    self._train_batch(batch)
                    if not self._first_batch_logged:
                        self._log_first_batch()
                    self.progress.batch_in_epoch += 1
                    bar.update(self.progress.step - steps_before)
                    if self._crossed(steps_before, self.config.log_every):  # tok/s at once: a slowdown shows
                        bar.set_postfix(self._postfix, refresh=False)
                    if self.probe is not None and self._crossed(steps_before, self.config.grad_probe_every):
                        self.probe.record(self.model, self.progress.step, self.logger.writer)
                    if self._crossed(steps_before, self.config.eval_every):
                        last_eval_step = self.progress.step
                        if self._evaluate_and_save(bar):
                            return self._ended(self._finish(started))
                    if self._budget_spent(started):
                        break
                else:  # the epoch ran out
                    self.progress.epoch += 1
                    if stepped_per_epoch(self.config):
                        self.scheduler.step()
                    self.progress.batch_in_epoch = 0
            if last_eval_step != self.progress.step:
                self._evaluate_and_save(bar)
            return self._ended(self._finish(started))
        except KeyboardInterrupt:
            path = self.save("last.pt", collective=False)  # the other ranks may be gone already
            log.warning("interrupted at step %d; saved %s; continue with: %s", self.progress.step, path,
                        resume_command(path, self.run_dir))
            raise
        finally:
            bar.close()
            self.logger.close()
            self.dist.close()

    def _ended(self, final: dict[str, float]) -> dict[str, float]:
        """The final metrics of a run that ended well; a diverged run raises RunDiverged."""
        if final.get("diverged"):
            raise RunDiverged(f"training diverged: the loss was NaN/inf for {self._bad_in_a_row} batches in a row "
                              f"at step {self.progress.step + 1}; {self.run_dir / 'metrics.json'} says so "
                              "(\"diverged\": true). Lower trainer.lr or set trainer.grad_clip", final)
        return final

    def _log_first_batch(self) -> None:
        """One line saying how long the run took to reach training: reading or mapping the data,
        building the model. What a large corpus costs shows here (scripts/bench_data.py reads it)."""
        self._first_batch_logged = True
        if self.dist.is_main:
            log.info("first training batch done %.2f s after the process started", seconds_since_start())

    def _make_probe(self) -> GradientProbe | None:
        if self.config.grad_probe_every is None or not self.dist.is_main:
            return None
        batch = next(iter(self.task.eval_batches("val"))).to(self.device)
        return GradientProbe(self.task, batch, self.run_dir, self.model)

    def _diverged(self) -> bool:
        """on_nan=skip: so many NaN/inf losses in a row that the net will not recover. Skipped batches
        take no step, so without this a max_steps budget would never be spent."""
        return self._bad_in_a_row >= MAX_SKIPPED_IN_A_ROW

    def _budget_spent(self, started: float) -> bool:
        c, p = self.config, self.progress
        if self._diverged():
            return True
        if (c.max_steps is not None and p.step >= c.max_steps) or \
                (c.max_epochs is not None and p.epoch >= c.max_epochs):
            return True
        # each rank reads its own clock: they stop together when one says so
        return c.max_time is not None and self.dist.any(time.perf_counter() - started >= c.max_time)

    def _crossed(self, before: int, every: int) -> bool:
        return self.progress.step // every > before // every

    def _train_batch(self, batch: Batch) -> None:
        if not self.network.training:  # back from an evaluation; train() walks every module (~2% of a
            self.network.train()       # small Transformer's step), so not at every batch
        batch = self._to_device(self.dist.shard(batch))
        state = self.carry if self.task.streams_state else None
        for window in batch.windows(self.config.tbptt_steps):
            state = self._train_window(window, state)
        if self.task.streams_state:
            self.carry = state

    def _to_device(self, batch: Batch) -> Batch:
        """On CUDA the copy is asynchronous, from pinned memory (see rnnzoo.tasks.batch)."""
        if self.device.type != "cuda":
            return batch.to(self.device)
        return batch.pin_memory().to(self.device, non_blocking=True)

    def _train_window(self, window: Batch, state: State | None) -> State | None:
        """Forward, backward and, every `accumulate` windows, an optimizer step; the state to carry."""
        closing = (self._window_count + 1) % self.config.accumulate == 0
        with self._gradient_sync(closing):
            out, loss_value, empty = self._forward(window, state)
            usable = not empty and math.isfinite(loss_value)
            if usable or self.ddp is not None:  # DDP expects a backward after each of its forwards
                self.precision.backward(out.loss / self.config.accumulate)
        state = RecurrentEncoder.detach_state(out.state)
        if empty:  # nothing to predict: just carry the state
            return state
        if not usable:
            self._bad_loss(loss_value)
            return state
        self._bad_in_a_row = 0
        add_stats(self._since_log, out.stats)
        self._tokens_since_log += window.num_tokens
        self._window_count += 1
        if self._window_count % self.config.accumulate == 0:
            self._optimizer_step()
        return state

    def _forward_alone(self, window: Any, state: State | None) -> tuple[StepOutput, float, bool]:
        """(the step's output, its loss as a number, whether it had nothing to predict)."""
        with self.precision.autocast():
            out = self.task.step(self.network, window, state)
        loss_value = float(out.loss.detach())  # the one host sync of the step
        return out, loss_value, loss_value == 0.0 and float(out.count) == 0

    def _forward_shared(self, window: Any, state: State | None) -> tuple[StepOutput, float, bool]:
        """`_forward_alone` for this rank's share of a batch; loss and emptiness are the global
        batch's, and the loss to backpropagate is weighted so that DDP's average over ranks is
        the mean over the global batch (see rnnzoo.training.distributed)."""
        with self.precision.autocast():
            loss, count, stats, state = self.ddp(window, state)
        share = loss * count  # this rank's loss sum: loss is the mean over its count targets
        totals = self.dist.sum(torch.stack([share.detach().float(), torch.as_tensor(count, device=share.device)
                                            .float()]))  # (2,): global loss sum, global count
        total_loss, total_count = totals.tolist()  # the one host sync of the step
        weighted = share * (self.dist.world_size / max(total_count, 1.0))
        return StepOutput(weighted, count, stats, state), total_loss / max(total_count, 1.0), total_count == 0

    def _gradient_sync(self, closing: bool) -> ContextManager:
        """DDP reduces gradients only in the window that closes an accumulation; the others
        accumulate locally (reducing them again later is harmless: averaging is linear)."""
        return nullcontext() if self.ddp is None or closing else self.ddp.no_sync()

    def _bad_loss(self, value: float) -> None:
        if self.config.on_nan == "stop":
            raise TrainingError(f"loss is {value} at step {self.progress.step + 1}; lower trainer.lr, "
                                "set trainer.grad_clip, or trainer.on_nan=skip to skip such batches")
        self._bad_in_a_row += 1
        log.warning("skipping a batch whose loss is %s at step %d", value, self.progress.step + 1)
        if self._diverged():
            log.error("training ends: the loss was %s for %d batches in a row at step %d (diverged; lower "
                      "trainer.lr or set trainer.grad_clip)", value, self._bad_in_a_row, self.progress.step + 1)
        self.optimizer.zero_grad(set_to_none=True)

    def _optimizer_step(self) -> None:
        c = self.config
        parameters = [p for p in self.model.parameters() if p.grad is not None]
        self.precision.unscale(self.optimizer)  # float16: clip (and log) the true gradient
        limit = c.grad_clip if (c.grad_clip is not None and c.clip_mode == "norm") else float("inf")
        self._grad_norm = float(nn.utils.clip_grad_norm_(parameters, limit))  # norm before clipping
        if c.grad_clip is not None and c.clip_mode == "value":
            nn.utils.clip_grad_value_(parameters, c.grad_clip)
        self.precision.step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        if not (isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) or stepped_per_epoch(c)):
            self.scheduler.step()
        self.progress.step += 1
        if self.progress.step % c.log_every == 0:
            self._log_training()

    def _log_training(self) -> None:
        *sums, tokens = self.dist.sum_values([*self._since_log.values(), self._tokens_since_log])  # over ranks
        metrics = self.task.metrics(dict(zip(self._since_log, sums)))
        now = time.perf_counter()
        rate = tokens / max(now - self._last_log_time, 1e-9)
        scalars = {f"train/{k}": v for k, v in metrics.items()}
        scalars.update({"train/lr": self.optimizer.param_groups[0]["lr"], "train/grad_norm": self._grad_norm,
                        "train/tokens_per_s": rate})
        self.logger.scalars(scalars, self.progress.step)
        loss = metrics.get("loss", next(iter(metrics.values())))
        self.progress.history.append((self.progress.step, float(loss)))
        self._since_log, self._tokens_since_log, self._last_log_time = {}, 0, now
        self._postfix = {**getattr(self, "_postfix", {}), "loss": f"{loss:.4f}", "tok/s": f"{rate:,.0f}"}

    # --- evaluation and checkpoints -------------------------------------------------
    def _evaluate_and_save(self, bar: tqdm) -> bool:
        """Evaluate on val, save last/best; True when the task's target is reached.

        Rank 0 evaluates; every rank takes the same decisions from the value it monitors."""
        value = self.dist.from_main(self._validate)
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(value if self.task.monitor_mode == "min" else -value)
        improved = self.progress.best is None or (
            value < self.progress.best if self.task.monitor_mode == "min" else value > self.progress.best)
        if improved:
            self.progress.best = value
        self.save("last.pt", *(["best.pt"] if improved else []))
        self._postfix = dict(getattr(self, "_postfix", {}), **{f"val_{self.task.monitor}": f"{value:.4f}"})
        bar.set_postfix(self._postfix)
        target = self.task.target
        reached = target is not None and (value <= target if self.task.monitor_mode == "min" else value >= target)
        if reached:
            log.info("target %s=%s reached at step %d", self.task.monitor, target, self.progress.step)
        return reached

    def _validate(self) -> float:
        """Metrics of `model` on val, logged; the monitored one."""
        metrics = self.task.evaluate(self.model, "val", self.device)
        self.logger.scalars({f"val/{k}": v for k, v in metrics.items()}, self.progress.step, flush=True)
        self.task.on_evaluation(self.model, self.progress.step, self.logger.writer)
        log.info("step %d val %s", self.progress.step, format_metrics(metrics))
        return metrics[self.task.monitor]

    def _finish(self, started: float) -> dict[str, float]:
        """The final metrics, computed by rank 0, on every rank."""
        return self.dist.from_main(lambda: self._final_metrics(started))

    def _final_metrics(self, started: float) -> dict[str, float]:
        """Evaluate the best checkpoint on val and test; write metrics.json."""
        seconds = time.perf_counter() - started
        best = self.checkpoint_dir / "best.pt"
        if best.exists():
            load_weights(self.model, load_checkpoint_file(best)["model"], best)
        final: dict[str, float] = {"train/steps": self.progress.step, "train/seconds": round(seconds, 2)}
        for split in ("val", "test"):
            final.update({f"{split}/{k}": v for k, v in self.task.evaluate(self.model, split, self.device).items()})
        if self._diverged():
            final["diverged"] = True
        write_metrics(self.run_dir / "metrics.json", final)
        self.logger.hparams(self.run_config, final, self.progress.step)
        log.info("finished at step %d in %.1fs: %s", self.progress.step, seconds, format_metrics(final))
        return final

    def save(self, *names: str, collective: bool = True) -> Path:
        """Write the checkpoint under each name (rank 0 only); the last path.

        `collective`: every rank is here, so each one's RNG and carried state are gathered
        into `ranks` (None in a single process; [] where they could not be gathered)."""
        ranks = None
        if self.dist.enabled:
            ranks = self.dist.gather({"rng": rng_state(), "carry": move_state(self.carry, "cpu")}) if collective else []
        p = self.progress
        payload = checkpoint_payload(
            run_config=self.run_config, model=self.model, task_state=self.task.state_dict(), step=p.step,
            epoch=p.epoch, batch_in_epoch=p.batch_in_epoch, best_metric=p.best,
            history=[list(h) for h in p.history], optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(), scaler=self.precision.state_dict(),
            carry_state=None if self.dist.enabled else self.carry, ranks=ranks)
        paths = [self.checkpoint_dir / name for name in names]
        if self.dist.is_main:
            for path in paths:
                save_checkpoint(payload, path)
        return paths[-1]

    def resume_from(self, path: str | Path) -> None:
        """Every rank loads the checkpoint, whichever device or number of processes wrote it."""
        payload = load_checkpoint_file(path)
        load_weights(self.model, payload["model"], path)
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.precision.load_state_dict(payload.get("scaler"))
        self.progress = Progress(payload["step"], payload["epoch"], payload["batch_in_epoch"],
                                 payload["best_metric"], [tuple(h) for h in payload.get("history", [])])
        self._restore_rank_state(payload)
        log.info("resumed from %s at step %d", path, self.progress.step)

    def _restore_rank_state(self, payload: dict[str, Any]) -> None:
        """This rank's RNG and carried state, when the checkpoint was written by as many
        processes; otherwise rank 0's RNG, reseeded per rank, and a fresh state for streams
        (the carried one holds another split of the rows)."""
        ranks = payload.get("ranks")
        if ranks is None:  # written by a single process
            ranks = [{"rng": payload["rng"], "carry": payload.get("carry_state")}]
        if len(ranks) == self.dist.world_size:
            set_rng_state(ranks[self.dist.rank]["rng"])
            self.carry = move_state(ranks[self.dist.rank]["carry"], self.device)
            return
        set_rng_state(payload["rng"])
        self._reseed_rank()
        self.carry = None
        if self.task.streams_state and self.dist.is_main:
            log.warning("the checkpoint holds the carried stream states of %d process(es), not %d: "
                        "streams restart from a zero state", len(ranks), self.dist.world_size)

    def _reseed_rank(self) -> None:
        """Ranks other than 0 draw their own dropout masks: reseed them from (seed, rank, step)."""
        if self.dist.rank != 0:
            seed = int(self.run_config.get("seed", 0))
            torch.manual_seed(seeded_generator(seed, self.dist.rank, self.progress.step).initial_seed())


def format_metrics(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) and not math.isnan(v) else f"{k}={v}"
                    for k, v in metrics.items())
