"""Gated Recurrent Unit (Cho et al. 2014, "Learning Phrase Representations using RNN
Encoder-Decoder for Statistical Machine Translation").

One time step, for input x(t) and the previous state h(t-1), in the form PyTorch computes:

    r    = σ(W_ir x(t) + b_ir + W_hr h(t-1) + b_hr)          reset gate
    z    = σ(W_iz x(t) + b_iz + W_hz h(t-1) + b_hz)          update gate
    n    = tanh(W_in x(t) + b_in + r ⊙ (W_hn h(t-1) + b_hn))  candidate state
    h(t) = (1 - z) ⊙ n + z ⊙ h(t-1)

Where the reset gate acts: here (and in `nn.GRU`, cuDNN, Keras's `reset_after=True`) it
scales the recurrent term *after* the matmul, r ⊙ (W_hn h + b_hn). Cho et al. apply it
before, W_hn (r ⊙ h): a slightly different network with the same parameter shapes. The
"after" form lets the three recurrent matmuls run as one (B, H) x (H, 3H) matmul per step,
before r is known; in Cho's form W_hn must wait for r.

This is the network `nn.GRU` computes, so `impl="auto"` runs PyTorch's fused kernel, and
`impl="reference"` runs `GRU.cell_step` below on the same parameters (the tests check the two
agree). The stacked input matrices are `weight_ih_l{k}`, rows in PyTorch's gate order
(r, z, n); the recurrent ones `weight_hh_l{k}`; each gate has two biases (b_i* and b_h*),
which matter separately only for n.

Inside a recording (rnnzoo.nn.inside, docs/inside.md) the loop runs instead of the kernel and
records, per layer k and direction (forward, backward), in token order, 0 past a sequence's end:
`gru.layer{k}.{direction}.update_gate` (z) and `.reset_gate` (r), (B, T, H), values in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..nn.inside import record
from ..nn.recurrent import CellState, RecurrentConfig, RecurrentEncoder
from ..registry import MODELS


@dataclass
class GRUConfig(RecurrentConfig):
    """The shared recurrent options: a GRU has no others."""


@MODELS.register("gru", config=GRUConfig)
class GRU(RecurrentEncoder):
    """GRU sequence encoder (Cho et al. 2014) with PyTorch's kernel as fast path."""

    inside_name = "gru"

    def __init__(self, config: GRUConfig) -> None:
        super().__init__(config)
        self.rnn = nn.GRU(config.input_size, config.hidden_size, config.num_layers,
                          batch_first=True, dropout=config.dropout if config.num_layers > 1 else 0.0,
                          bidirectional=config.bidirectional)

    def cell_weights(self, layer: int, direction: int) -> tuple[Tensor | None, ...]:
        """The twin's weights, W_hh transposed once here rather than at every step."""
        w_ih, w_hh, b_ih, b_hh = super().cell_weights(layer, direction)
        return w_ih, w_hh.t(), b_ih, b_hh

    def cell_step(self, x_proj: Tensor, state: CellState, w_hh_t: Tensor, b_hh: Tensor
                  ) -> tuple[Tensor, CellState]:
        (h_prev,) = state  # (B, H)
        x_r, x_z, x_n = x_proj.chunk(3, dim=1)  # W_i* x(t) + b_i*, (B, H) each
        h_r, h_z, h_n = torch.addmm(b_hh, h_prev, w_hh_t).chunk(3, dim=1)  # W_h* h(t-1) + b_h*
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        record("reset_gate", r, step=True)
        record("update_gate", z, step=True)
        n = torch.tanh(x_n + r * h_n)
        h = torch.lerp(n, h_prev, z)  # (B, H): (1 - z) ⊙ n + z ⊙ h(t-1), in one op
        return h, (h,)
