"""The copy task (Graves et al. 2014) in the copy-memory form of Arjovsky et al. 2016.

Input:  `length` random symbols from an alphabet of A, `delay - 1` blanks, a delimiter,
        then `length` blanks while the network answers.
Target: blanks for the first `length + delay` steps, then the `length` symbols again.

With length 10 and A = 8 (`task.length=10`, the paper's setting) every sequence has T + 20
steps for a delay T. A memoryless model can only output blanks and then guess: its loss is
length * ln A / (2 * length + delay), i.e. 10 ln 8 / (T + 20), the baseline printed beside
the loss. Remembering means beating it. Arjovsky et al. report LSTMs stuck at that baseline
for T = 100..500. The default here (5 symbols, delay 5) is short so that the README's demo
trains to 99.5% recall in about a minute on two CPU cores.

Token ids: 0 = blank, 1..A = symbols, A + 1 = delimiter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
from torch import nn

from ..errors import RnnzooError, excerpt
from ..nn.layers import OneHot
from ..registry import TASKS, help_field
from .base import StepOutput, TaskNetwork, masked_cross_entropy
from .synthetic import SequenceBatch, SyntheticConfig, SyntheticTask


@dataclass
class CopyConfig(SyntheticConfig):
    length: int = help_field(5, "symbols to remember (Arjovsky et al. use 10)", ge=1)
    delay: int = help_field(5, "steps from the last symbol to the delimiter (T in Arjovsky et al.)", ge=1)
    alphabet: int = help_field(8, "distinct symbols", ge=2)
    target: float | None = help_field(0.995, "stop when validation recall accuracy reaches this (null: never)",
                                      ge=0, le=1)


@TASKS.register("copy", config=CopyConfig)
class CopyTask(SyntheticTask):
    """Remember a sequence of symbols over a delay, then reproduce it (copy memory)."""

    monitor = "recall_accuracy"
    monitor_mode = "max"

    def __init__(self, config: CopyConfig, seed: int, dataset: dict | None = None) -> None:
        super().__init__(config, seed, dataset)
        self.blank, self.delimiter = 0, config.alphabet + 1
        self.vocab_size = config.alphabet + 2

    @property
    def input_size(self) -> int:
        return self.vocab_size

    @property
    def steps(self) -> int:
        return 2 * self.config.length + self.config.delay

    @property
    def baseline_loss(self) -> float:
        c = self.config
        return c.length * math.log(c.alphabet) / self.steps

    def generate(self, generator: torch.Generator, batch_size: int) -> SequenceBatch:
        c = self.config
        symbols = torch.randint(1, c.alphabet + 1, (batch_size, c.length), generator=generator)  # (B, L)
        inputs = torch.zeros(batch_size, self.steps, dtype=torch.long)  # (B, T) blanks
        inputs[:, :c.length] = symbols
        inputs[:, c.length + c.delay - 1] = self.delimiter
        targets = torch.zeros_like(inputs)
        targets[:, -c.length:] = symbols
        return SequenceBatch(inputs, targets, torch.ones_like(inputs, dtype=torch.bool))

    def build_network(self, body: nn.Module) -> TaskNetwork:
        return TaskNetwork(body, nn.Linear(body.output_size, self.vocab_size), OneHot(self.vocab_size))

    def step(self, network: nn.Module, batch: SequenceBatch, state=None) -> StepOutput:
        logits, state = network(batch.inputs, batch.lengths, state)  # (B, T, V)
        loss_sum, count = masked_cross_entropy(logits, batch.targets, batch.mask)
        stats = {"loss_sum": loss_sum.detach(), "count": count}
        if not network.training:  # accuracies are for evaluation: training logs the loss only
            recall = batch.targets != self.blank  # (B, T): the answer part
            correct = (logits.argmax(-1) == batch.targets) | ~recall  # (B, T)
            stats.update({"recall_correct": (correct & recall).sum(), "recall_count": recall.sum(),
                          "sequence_correct": correct.all(1).sum(), "sequences": torch.tensor(len(correct))})
        return StepOutput(loss_sum / count.clamp(min=1), count, stats, state)

    def predict(self, network: nn.Module, lines: Iterable[str], device: torch.device) -> Iterator[str]:
        """A line of `length` symbols (1..alphabet, space-separated) -> the symbols recalled."""
        c = self.config
        for number, line in enumerate(lines, 1):
            symbols = _parse_symbols(line, number, c.length, c.alphabet)
            inputs = torch.zeros(1, self.steps, dtype=torch.long)  # (1, T)
            inputs[0, :c.length] = torch.tensor(symbols)
            inputs[0, c.length + c.delay - 1] = self.delimiter
            logits, _ = network(inputs.to(device))  # (1, T, V)
            yield " ".join(str(int(i)) for i in logits[0, -c.length:].argmax(-1))

    def metrics(self, totals: dict[str, float]) -> dict[str, float]:
        metrics = {"loss": totals["loss_sum"] / max(totals["count"], 1), "baseline_loss": self.baseline_loss}
        if "recall_count" in totals:
            metrics["recall_accuracy"] = totals["recall_correct"] / max(totals["recall_count"], 1)
            metrics["sequence_accuracy"] = totals["sequence_correct"] / max(totals["sequences"], 1)
        return metrics


def _parse_symbols(line: str, number: int, length: int, alphabet: int) -> list[int]:
    try:
        symbols = [int(word) for word in line.split()]
    except ValueError:
        symbols = []
    if len(symbols) != length or not all(1 <= s <= alphabet for s in symbols):
        raise RnnzooError(f"input line {number}: expected {length} symbols from 1 to {alphabet}, got {excerpt(line)}")
    return symbols
