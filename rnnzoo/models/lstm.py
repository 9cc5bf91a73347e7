"""Long Short-Term Memory (Hochreiter & Schmidhuber 1997; forget gate: Gers et al. 2000).

The lecture's equations, one time step, for input x_t and the previous state (h_{t-1}, s_{t-1}):

    g   = tanh(b^g + x_t U^g + h_{t-1} V^g)       candidate cell input
    i   = σ(b^i + x_t U^i + h_{t-1} V^i)          input gate
    f   = σ(b^f + x_t U^f + h_{t-1} V^f)          forget gate
    s_t = s_{t-1} ⊙ f + g ⊙ i                     cell state (PyTorch calls it c)
    o   = σ(b^o + x_t U^o + h_{t-1} V^o)          output gate
    h_t = tanh(s_t) ⊙ o

No peepholes: this is the network `nn.LSTM` computes, so `impl="auto"` runs PyTorch's fused
kernel, and `impl="reference"` runs `LSTM.cell_step` below on the same parameters (the tests
check the two agree). The stacked U matrices are `weight_ih_l{k}`, rows in PyTorch's gate
order (i, f, g, o); the V matrices `weight_hh_l{k}`; each gate has two biases (b_ih + b_hh).

Initialisation, for long time lags:
* `forget_bias` (default 1.0): the forget gate starts open, so the cell remembers by default
  (Gers et al. 2000; Jozefowicz et al. 2015).
* `init="chrono"` (Tallec & Ollivier 2018): b^f ~ log U(1, T_max - 1) and b^i = -b^f, so the
  cells' characteristic forgetting times spread over [1, T_max]; set `chrono_max_lag` to the
  longest dependency you expect.

Inside a recording (rnnzoo.nn.inside, docs/inside.md) the loop runs instead of the kernel and
records, per layer k and direction (forward, backward), in token order, 0 past a sequence's end:
`lstm.layer{k}.{direction}.input_gate`, `.forget_gate`, `.output_gate` (B, T, H), values in [0, 1],
and `.cell_norm` (B, T), the Euclidean norm of s_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import RnnzooError
from ..nn.inside import record, recording_now
from ..nn.recurrent import CellState, RecurrentConfig, RecurrentEncoder
from ..registry import MODELS, help_field


@dataclass
class LSTMConfig(RecurrentConfig):
    forget_bias: float = help_field(1.0, "initial forget-gate bias (1.0 keeps cells open at first)", unbounded=True)
    init: str = help_field("default", "bias initialisation: default or chrono (Tallec & Ollivier 2018)")
    chrono_max_lag: int = help_field(100, "T_max of the chrono initialisation", ge=2)


@MODELS.register("lstm", config=LSTMConfig)
class LSTM(RecurrentEncoder):
    """LSTM sequence encoder (Hochreiter & Schmidhuber 1997) with PyTorch's kernel as fast path."""

    state_arity = 2  # (h, s): PyTorch's (h_n, c_n)
    inside_name = "lstm"

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__(config)
        if config.init not in ("default", "chrono"):
            raise RnnzooError(f"init must be default or chrono, got {config.init!r}")
        self.rnn = nn.LSTM(config.input_size, config.hidden_size, config.num_layers,
                           batch_first=True, dropout=config.dropout if config.num_layers > 1 else 0.0,
                           bidirectional=config.bidirectional)
        self.reset_gate_biases()

    def reset_gate_biases(self) -> None:
        """Forget-gate (and, for chrono, input-gate) biases; PyTorch's gate order is i, f, g, o."""
        H = self.hidden_size
        with torch.no_grad():
            for name, bias in self.rnn.named_parameters():
                if not name.startswith("bias"):
                    continue
                input_gate, forget_gate = bias[0:H], bias[H:2 * H]
                if name.startswith("bias_hh"):  # the gate bias is b_ih + b_hh: set it through b_ih
                    input_gate.zero_() if self.config.init == "chrono" else None
                    forget_gate.zero_()
                elif self.config.init == "chrono":
                    lags = torch.empty(H).uniform_(1, max(self.config.chrono_max_lag - 1, 1 + 1e-3))
                    forget_gate.copy_(torch.log(lags))
                    input_gate.copy_(-torch.log(lags))
                else:
                    forget_gate.fill_(self.config.forget_bias)

    def cell_step(self, x_proj: Tensor, state: CellState, w_hh: Tensor, b_hh: Tensor
                  ) -> tuple[Tensor, CellState]:
        h_prev, s_prev = state  # (B, H) each
        gates = x_proj + nn.functional.linear(h_prev, w_hh, b_hh)  # (B, 4H): b + x U + h V
        i, f, g, o = gates.chunk(4, dim=1)  # PyTorch's row order of the stacked matrices
        g = torch.tanh(g)
        i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
        record("input_gate", i, step=True)
        record("forget_gate", f, step=True)
        record("output_gate", o, step=True)
        s = s_prev * f + g * i
        if recording_now():  # the norm is work only a recording wants
            record("cell_norm", torch.linalg.vector_norm(s, dim=-1), step=True)  # (B,) ‖s_t‖
        h = torch.tanh(s) * o
        return h, (h, s)
