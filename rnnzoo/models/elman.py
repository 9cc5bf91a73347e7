"""Simple recurrent network (Elman 1990, "Finding Structure in Time", Cognitive Science 14).

The lecture's forward pass, one time step, for input x(t) and the previous hidden state h(t-1):

    h(t) = f(W^hx x(t) + W^hh h(t-1) + b)

f is tanh (Elman used the logistic function; tanh is the modern default) or relu. The
hidden layer is copied into the context units, which feed it back at the next step: the
context units *are* h(t-1). The lecture's output layer ŷ(t) = softmax(W^yh h(t) + c) is the
task's head, not part of this module, which returns the features h(t).

This is the network `nn.RNN` computes, so `impl="auto"` runs PyTorch's fused kernel, and
`impl="reference"` runs `Elman.cell_step` below on the same parameters (the tests check the
two agree). W^hx is `weight_ih_l{k}`, W^hh `weight_hh_l{k}`, and b is split in two,
b = b_ih + b_hh, as PyTorch stores it.

Initialisation:
* `init="default"`: PyTorch's, every weight and bias ~ U(-1/√H, 1/√H).
* `init="identity"`: the IRNN of Le, Jaitly & Hinton 2015 ("A Simple Way to Initialize
  Recurrent Networks of Rectified Linear Units"): W^hh = I (times `identity_scale`), biases
  0, input weights ~ N(0, 0.001²). Use it with `nonlinearity="relu"`: at first the network
  then copies its state forward unchanged, so gradients neither vanish nor explode over long
  lags (the adding problem is their showcase).

Inside a recording (rnnzoo.nn.inside, docs/inside.md) the loop runs instead of the kernel and
records the hidden state per layer k and direction (forward, backward), in token order, 0 past
a sequence's end: `elman.layer{k}.{direction}.hidden` (B, T, H), h(t).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import RnnzooError
from ..nn.inside import record
from ..nn.recurrent import CellState, RecurrentConfig, RecurrentEncoder
from ..registry import MODELS, help_field

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


@dataclass
class ElmanConfig(RecurrentConfig):
    nonlinearity: str = help_field("tanh", "f of the hidden layer: tanh or relu")
    init: str = help_field("default", "default (PyTorch's uniform) or identity (IRNN, Le et al. 2015)")
    identity_scale: float = help_field(1.0, "W_hh = identity_scale * I under init=identity", unbounded=True)


@MODELS.register("elman", config=ElmanConfig)
class Elman(RecurrentEncoder):
    """Elman's simple recurrent network (Elman 1990), IRNN init optional, PyTorch's kernel as fast path."""

    inside_name = "elman"

    def __init__(self, config: ElmanConfig) -> None:
        super().__init__(config)
        if config.nonlinearity not in NONLINEARITIES:
            raise RnnzooError(f"elman: nonlinearity must be tanh or relu, got {config.nonlinearity!r}")
        if config.init not in ("default", "identity"):
            raise RnnzooError(f"elman: init must be default or identity, got {config.init!r}")
        self.f = NONLINEARITIES[config.nonlinearity]
        self.rnn = nn.RNN(config.input_size, config.hidden_size, config.num_layers,
                          nonlinearity=config.nonlinearity, batch_first=True,
                          dropout=config.dropout if config.num_layers > 1 else 0.0,
                          bidirectional=config.bidirectional)
        if config.init == "identity":
            self.reset_identity()

    def reset_identity(self) -> None:
        """IRNN (Le et al. 2015): W_hh = scale * I, biases 0, W_ih ~ N(0, 0.001²)."""
        with torch.no_grad():
            for name, p in self.rnn.named_parameters():
                if name.startswith("weight_hh"):
                    p.copy_(self.config.identity_scale * torch.eye(self.hidden_size))
                elif name.startswith("weight_ih"):
                    p.normal_(0.0, 0.001)
                else:
                    p.zero_()

    def cell_weights(self, layer: int, direction: int) -> tuple[Tensor | None, ...]:
        """The twin's weights arranged for the loop: b = b_ih + b_hh all goes into the hoisted
        projection, and W^hh is transposed once here rather than at every step."""
        w_ih, w_hh, b_ih, b_hh = super().cell_weights(layer, direction)
        return w_ih, w_hh.t(), b_ih + b_hh, None

    def cell_step(self, x_proj: Tensor, state: CellState, w_hh_t: Tensor, b_hh: None
                  ) -> tuple[Tensor, CellState]:
        (h_prev,) = state  # (B, H)
        h = self.f(torch.addmm(x_proj, h_prev, w_hh_t))  # (B, H): f(W^hx x(t) + b + W^hh h(t-1))
        record("hidden", h, step=True)
        return h, (h,)
