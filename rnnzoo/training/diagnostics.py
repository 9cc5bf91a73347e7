"""Watching gradients vanish: the norm of dL/dh(t) for every step t of a fixed probe batch.

The lecture's "problems of RNNs" slide made visible. Every `trainer.grad_probe_every` steps
we run the task's loss on a fixed validation batch, keep the gradient of that loss with
respect to the model's output features h(t) (B, T, H), and record ||dL/dh(t)|| for each t:
an Elman net's curve falls off steeply as t moves away from where the loss is read, an
LSTM's stays up. The curve goes to TensorBoard as a figure (`grad_probe/dL_dh`), and the
raw numbers to `<run>/grad_probe.jsonl`, one line per probe.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import RnnzooError


class GradientProbe:
    """Measures ||dL/dh(t)|| on one fixed batch; see the module docstring."""

    def __init__(self, task: Any, batch: Any, run_dir: Path, network: nn.Module) -> None:
        if not hasattr(getattr(network, "body", None), "capture_hidden_states"):
            raise RnnzooError("trainer.grad_probe_every needs a recurrent model (elman, jordan, lstm, gru)")
        self.task, self.batch = task, batch
        self.path = Path(run_dir) / "grad_probe.jsonl"

    def norms(self, network: nn.Module) -> list[float]:
        """||dL/dh(t)||_2 over the batch and units, for t = 0..T-1; parameters' grads untouched."""
        saved = [p.grad for p in network.parameters()]
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        try:
            with torch.random.fork_rng(devices=devices), network.body.capture_hidden_states() as states:
                out = self.task.step(network, self.batch, None)  # dropout here must not shift training's RNG
                out.loss.backward()
        finally:
            for parameter, grad in zip(network.parameters(), saved):
                parameter.grad = grad
        return [gradient_norm(h.grad) for h in states]  # (T,)

    def record(self, network: nn.Module, step: int, writer: Any) -> list[float]:
        norms = self.norms(network)
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"step": step, "norms": norms}) + "\n")
        writer.add_figure("grad_probe/dL_dh", plot_norms(norms, step), step)
        return norms


def gradient_norm(grad: torch.Tensor | None) -> float:
    """||grad||_2, taken in float64: squaring float32 entries below about 1e-19 underflows to 0, and
    vanished gradients are what the probe is there to measure (0.0 for no gradient at all)."""
    return float(grad.double().norm()) if grad is not None else 0.0


def plot_norms(norms: list[float], step: int):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.semilogy(range(len(norms)), [max(n, 1e-30) for n in norms])
    axis.set_xlabel("time step t")
    axis.set_ylabel("||dL/dh(t)||")
    axis.set_title(f"gradient reaching each step (training step {step})")
    figure.tight_layout()
    return figure
