"""The trainer of networks that learn without gradients: store once, then evaluate.

A Hopfield network learns by storing its patterns (Hebbian or Storkey outer products in the
classic network, the patterns themselves in a modern one), so there is no loop, optimizer,
schedule or learning rate here; of the `trainer.*` options only `device` applies. A task
whose networks learn this way names it (`trainer = "hebbian"`, see rnnzoo.training.trainers)
and provides `memories()` (what to store) and `evaluate(network, split, device)` (the function
`rnnzoo eval` runs too, so eval reproduces the run's test metrics).

The run folder is the gradient trainer's: `checkpoints/last.pt` and `best.pt` (the same
payload keys; optimizer, scheduler and scaler None), `metrics.json` (train/steps,
train/seconds, val/*, test/*) and `tb/` (val scalars at step 1, the config, hparams).
Storage is one step, so both checkpoints hold the same network; `resume=` loads the stored
memory from a checkpoint instead of storing again. Of the scale options, only `device` and
`devices` apply (under several processes rank 0 stores and evaluates alone).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from .checkpoint import checkpoint_payload, load_checkpoint_file, load_weights, save_checkpoint, unwrap_model
from .logger import RunLogger
from .run_folder import write_metrics
from .trainer import RunTrainer, format_metrics

log = logging.getLogger("rnnzoo")

STEPS = 1  # storing all the patterns is the one training step


class HebbianTrainer(RunTrainer):
    """Stores `task.memories()` in the network, evaluates val and test, writes the run folder."""

    def fit(self, resume: str | Path | None = None) -> dict[str, float]:
        """Store (or load the stored memory from `resume`), evaluate, save; the final metrics.

        Storing is one step with nothing to share out, so under torchrun rank 0 does it all
        and the other ranks receive its metrics."""
        try:
            return self.dist.from_main(lambda: self._store(resume))
        finally:
            self.dist.close()

    def _store(self, resume: str | Path | None) -> dict[str, float]:
        logger = RunLogger(self.run_dir, self.run_config)
        started = time.perf_counter()
        try:
            if resume is not None:
                load_weights(unwrap_model(self.network), load_checkpoint_file(resume)["model"], resume)
                log.info("loaded the stored memory from %s", resume)
            else:
                self.network.store(self.task.memories().to(self.device))
            val = self.task.evaluate(self.network, "val", self.device)
            logger.scalars({f"val/{k}": v for k, v in val.items()}, STEPS)
            for name in ("last.pt", "best.pt"):
                self.save(name, val[self.task.monitor])
            test = self.task.evaluate(self.network, "test", self.device)
            seconds = time.perf_counter() - started
            final: dict[str, float] = {"train/steps": STEPS, "train/seconds": round(seconds, 2)}
            final.update({f"val/{k}": v for k, v in val.items()})
            final.update({f"test/{k}": v for k, v in test.items()})
            write_metrics(self.run_dir / "metrics.json", final)
            logger.hparams(self.run_config, final)
            log.info("finished at step %d in %.1fs: %s", STEPS, seconds, format_metrics(final))
            return final
        finally:
            logger.close()

    def save(self, name: str, best: float) -> Path:
        payload = checkpoint_payload(run_config=self.run_config, model=self.network, task_state=self.task.state_dict(),
                                     step=STEPS, epoch=1, batch_in_epoch=0, best_metric=best)
        return save_checkpoint(payload, self.checkpoint_dir / name)
