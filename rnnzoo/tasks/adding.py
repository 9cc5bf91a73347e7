"""The adding problem (Hochreiter & Schmidhuber 1997), in the form of Le et al. 2015.

Each step carries two numbers: a value drawn from U[0, 1] and a marker (0 or 1). Exactly
two steps are marked, one in each half of the sequence; the target, read after the last
step, is the sum of the two marked values. Predicting the mean sum 1 ignores the input and
scores the variance of that sum, 2 * (1/12) = 1/6: the baseline MSE beside ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
from torch import nn

from ..errors import RnnzooError, excerpt
from ..nn.layers import ScalarHead
from ..registry import TASKS, help_field
from .base import StepOutput, TaskNetwork
from .synthetic import SequenceBatch, SyntheticConfig, SyntheticTask

BASELINE_MSE = 1 / 6


@dataclass
class AddingConfig(SyntheticConfig):
    length: int = help_field(50, "time steps T", ge=2)
    target: float | None = help_field(0.005, "stop when validation MSE falls to this (null: never)", ge=0)


@TASKS.register("adding", config=AddingConfig)
class AddingTask(SyntheticTask):
    """Add the two marked numbers of a long sequence; MSE against the 1/6 baseline."""

    monitor = "mse"
    monitor_mode = "min"

    def __init__(self, config: AddingConfig, seed: int, dataset: dict | None = None) -> None:
        super().__init__(config, seed, dataset)

    @property
    def input_size(self) -> int:
        return 2

    def generate(self, generator: torch.Generator, batch_size: int) -> SequenceBatch:
        T, half = self.config.length, self.config.length // 2
        values = torch.rand(batch_size, T, generator=generator)  # (B, T)
        first = torch.randint(0, half, (batch_size,), generator=generator)
        second = torch.randint(half, T, (batch_size,), generator=generator)
        markers = torch.zeros(batch_size, T)
        rows = torch.arange(batch_size)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        inputs = torch.stack([values, markers], dim=-1)  # (B, T, 2)
        targets = torch.zeros(batch_size, T)
        targets[:, -1] = values[rows, first] + values[rows, second]  # read at the last step only
        mask = torch.zeros(batch_size, T, dtype=torch.bool)
        mask[:, -1] = True
        return SequenceBatch(inputs, targets, mask)

    def build_network(self, body: nn.Module) -> TaskNetwork:
        return TaskNetwork(body, ScalarHead(body.output_size))

    def step(self, network: nn.Module, batch: SequenceBatch, state=None) -> StepOutput:
        predictions, state = network(batch.inputs, batch.lengths, state)  # (B, T)
        mask = batch.mask.float()
        squared = ((predictions - batch.targets) ** 2 * mask).sum()
        count = mask.sum()
        stats = {"squared_error": squared.detach(), "count": count}
        return StepOutput(squared / count.clamp(min=1), count, stats, state)

    def predict(self, network: nn.Module, lines: Iterable[str], device: torch.device) -> Iterator[str]:
        """A line of numbers, the two to add marked with '*' (`0.2 0.7* 0.1 0.4*`) -> their sum."""
        for number, line in enumerate(lines, 1):
            inputs = _parse_marked(line, number)  # (1, T, 2)
            predictions, _ = network(inputs.to(device))  # (1, T)
            yield f"{float(predictions[0, -1]):.4f}"

    def metrics(self, totals: dict[str, float]) -> dict[str, float]:
        mse = totals["squared_error"] / max(totals["count"], 1)
        return {"mse": mse, "baseline_mse": BASELINE_MSE, "baseline_ratio": BASELINE_MSE / max(mse, 1e-12)}


def _parse_marked(line: str, number: int) -> torch.Tensor:
    words = line.split()
    try:
        values = [float(word.rstrip("*")) for word in words]
    except ValueError:
        values = []
    markers = [1.0 if word.endswith("*") else 0.0 for word in words]
    if not values or sum(markers) != 2:
        raise RnnzooError(f"input line {number}: expected numbers with exactly two marked by '*', got {excerpt(line)}")
    return torch.tensor([values, markers]).T.unsqueeze(0)  # (1, T, 2)
