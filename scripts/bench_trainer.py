"""Training-step rate of rnnzoo's trainer against a bare PyTorch loop, measured in one run.

Both loops train the same network (same initial weights) on the same batches, drawn from
the same task generator, with the same optimizer and gradient clipping. The bare loop is
what one would write by hand: forward, cross-entropy, backward, clip, step. rnnzoo's loop
is `Trainer._train_batch`, the code `rnnzoo train` runs per batch (task.step, statistics,
state handling, gradient-norm logging, scheduler, TensorBoard scalars every log_every).
The two alternate batch by batch, so machine noise hits both; we report medians of rounds.

    python scripts/bench_trainer.py [--steps 200] [--rounds 5] [overrides...]

Target (issue 2): ratio rnnzoo / bare >= 0.95.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
from itertools import islice
from pathlib import Path

import torch
from torch import nn

from rnnzoo.api import build, plain
from rnnzoo.config import compose_train
from rnnzoo.timing import interleaved_rates
from rnnzoo.training.logger import RunLogger
from rnnzoo.training.trainer import Trainer


class BareLoop:
    """What one writes by hand: forward, cross-entropy, backward, clip, step."""

    def __init__(self, network: nn.Module, lr: float, clip: float) -> None:
        self.network, self.clip = network, clip
        self.optimizer = torch.optim.Adam(network.parameters(), lr=lr)

    def train_batch(self, batch) -> None:
        logits, _ = self.network(batch.inputs)  # (B, T, V)
        loss = nn.functional.cross_entropy(logits.transpose(1, 2), batch.targets)
        loss.backward()
        nn.utils.clip_grad_norm_(self.network.parameters(), self.clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("overrides", nargs="*", default=[])
    args = parser.parse_args()
    config = plain(compose_train(["task=copy", "trainer.progress=false", *args.overrides]))
    torch.manual_seed(0)
    task, network, trainer_config = build(config)
    bare_network = copy.deepcopy(network)
    config["task"]["batches_per_epoch"] = args.steps
    task.config.batches_per_epoch = args.steps
    batches = list(islice(task.train_batches(0), args.steps))
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(task, network, trainer_config, Path(run_dir), config)
        trainer.logger = RunLogger(Path(run_dir), config)
        bare = BareLoop(bare_network, trainer_config.lr, trainer_config.grad_clip or 1e9)
        interleaved_rates(trainer._train_batch, bare.train_batch, batches[:10])  # warm-up
        rounds = [interleaved_rates(trainer._train_batch, bare.train_batch, batches) for _ in range(args.rounds)]
        trainer.logger.close()
    for index, (o, b) in enumerate(rounds):
        print(f"round {index}: rnnzoo {o:12,.0f}  bare {b:12,.0f}  ratio {o / b:.3f}")
    ratio = statistics.median(o / b for o, b in rounds)
    ours, bare_rates = [o for o, _ in rounds], [b for _, b in rounds]
    print(f"model={config['model']['name']} task={config['task']['name']} batch={task.config.batch_size} "
          f"threads={torch.get_num_threads()} steps={args.steps} rounds={args.rounds}")
    print(f"rnnzoo trainer : {statistics.median(ours):12,.0f} tokens/s")
    print(f"bare PyTorch   : {statistics.median(bare_rates):12,.0f} tokens/s")
    print(f"ratio rnnzoo/bare (median of rounds): {ratio:.3f}   target >= 0.95")


if __name__ == "__main__":
    main()
