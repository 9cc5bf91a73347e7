"""Jordan's network (Jordan 1986, "Serial Order: A Parallel Distributed Processing Approach",
ICS report 8604; Jordan 1987): the recurrence runs through the *output* units.

Where Elman's net feeds its hidden layer back, Jordan's feeds back what it emitted: state
units s hold a decaying trace of past outputs y and enter the hidden layer beside the input
(Jordan's "plan"). One time step, for input x(t):

    s(t) = μ s(t-1) + y(t-1)                    state units; μ = `state_decay`, s(0) = 0, y(-1) = 0
    h(t) = f(W^hx x(t) + W^hs s(t) + b)         hidden units
    y(t) = g(W^yh h(t) + c)                     output units, which feed back

f is relu or tanh (`nonlinearity`), g is identity, tanh or sigmoid (`output_nonlinearity`;
Jordan used logistic units throughout). A variant feeds the targets to the state units in place
of y while training (teacher forcing); here the state always sees the network's own y.

Output layer and task head: the module returns y(t), (B, T, output_size) per direction,
because y is what the recurrence reads; a model that returned h would no longer be Jordan's.
The task still puts its own linear head on top of y(t) (a softmax over symbols, a regression
unit...), so y is a learned `output_size`-wide bottleneck that the head reads and that the
network remembers, not the task's prediction itself.

There is no PyTorch twin, so every `impl` runs the equations in the Python loop of
`rnnzoo.nn.recurrent` (with W^hx x(t) + b for all steps hoisted out of it). Each step is
two matmuls that cannot merge while g is nonlinear: W^hs s(t) needs y(t-1), which needs
W^yh h(t-1). Each is one fused `addmm` with the term it is added to, and the state update is
one fused `add`. The state kept between steps (and returned) is s(t+1) = μ s(t) + y(t), what
the state units hold when the next input comes, so one tensor is the whole state:
(num_layers * num_directions, B, output_size), index layer * num_directions + direction.

Defaults (f = relu, g = identity, μ = 1, output_size 32 for 128 hidden units) come from the
measurements in docs/results_jordan.md. The former ones (f = g = tanh, μ = 0.5, 64 outputs) sat at
the copy baseline: within 250 Adam steps 77% of the outputs and 62% of the hidden units saturate
and the loop gain ρ(W^yh W^hs) grows from 0.25 to 8. Linear outputs cannot saturate; μ = 1 makes
the state units an integrator whose path back in time has gain 1 (the adding problem is a sum);
a narrow state (32) keeps Adam's per-entry steps on W^hs, whose fan-in is output_size, small
enough that the loop does not blow up at the synthetic tasks' lr of 5e-3 (with 64 or more
outputs it does, and the adding problem stays at its baseline).

Stacking: layer k > 0 reads the outputs y of layer k-1 (both directions concatenated). The
parameters of layer k, direction d are `weight_hx_l{k}`, `weight_hs_l{k}`, `bias_h_l{k}`,
`weight_yh_l{k}`, `bias_y_l{k}` (suffix `_reverse` for d = 1), all ~ U(-1/√H, 1/√H) as in
PyTorch's recurrent modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import RnnzooError
from ..nn.recurrent import CellState, RecurrentConfig, RecurrentEncoder
from ..registry import MODELS, help_field

HIDDEN_NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}
OUTPUT_NONLINEARITIES = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda v: v}


@dataclass
class JordanConfig(RecurrentConfig):
    hidden_size: int = help_field(128, "hidden units per layer and direction", ge=1)
    output_size: int = help_field(32, "output (and state) units per layer and direction: the features returned", ge=1)
    nonlinearity: str = help_field("relu", "f of the hidden units: relu or tanh")
    output_nonlinearity: str = help_field("identity", "g of the output units: identity, tanh or sigmoid")
    state_decay: float = help_field(1.0, "μ in s(t) = μ s(t-1) + y(t-1), in [0, 1]; 1 adds up all past outputs",
                                    ge=0, le=1)
    impl: str = help_field("auto", "auto or reference (no PyTorch twin: both run the equations in Python)")


@MODELS.register("jordan", config=JordanConfig)
class Jordan(RecurrentEncoder):
    """Jordan's network (Jordan 1986): output units fed back through decaying state units."""

    def __init__(self, config: JordanConfig) -> None:
        if config.impl == "torch":
            raise RnnzooError("jordan: impl=torch is not available (PyTorch has no Jordan network); "
                              "use impl=auto or impl=reference")
        if config.nonlinearity not in HIDDEN_NONLINEARITIES:
            raise RnnzooError(f"jordan: nonlinearity must be tanh or relu, got {config.nonlinearity!r}")
        if config.output_nonlinearity not in OUTPUT_NONLINEARITIES:
            raise RnnzooError("jordan: output_nonlinearity must be tanh, sigmoid or identity, "
                              f"got {config.output_nonlinearity!r}")
        super().__init__(config)
        self.f = HIDDEN_NONLINEARITIES[config.nonlinearity]
        self.g = OUTPUT_NONLINEARITIES[config.output_nonlinearity]
        self.state_decay = config.state_decay
        H, Y = config.hidden_size, config.output_size  # hidden and output (= state) units
        for layer in range(self.num_layers):
            fan_in = config.input_size if layer == 0 else self.num_directions * Y
            for direction in range(self.num_directions):
                suffix = f"l{layer}" + ("_reverse" if direction else "")
                self.register_parameter(f"weight_hx_{suffix}", nn.Parameter(torch.empty(H, fan_in)))
                self.register_parameter(f"weight_hs_{suffix}", nn.Parameter(torch.empty(H, Y)))
                self.register_parameter(f"bias_h_{suffix}", nn.Parameter(torch.empty(H)))
                self.register_parameter(f"weight_yh_{suffix}", nn.Parameter(torch.empty(Y, H)))
                self.register_parameter(f"bias_y_{suffix}", nn.Parameter(torch.empty(Y)))
        self.reset_parameters()

    @property
    def cell_size(self) -> int:
        return self.config.output_size  # a cell emits y and keeps s, both output_size wide

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def cell_weights(self, layer: int, direction: int) -> tuple[Tensor | None, ...]:
        """(W^hx, W^hs^T, b, None, W^yh^T, c): b goes into the hoisted projection with W^hx, and
        the step's matrices are transposed once here rather than at every step."""
        suffix = f"l{layer}" + ("_reverse" if direction else "")
        weight = lambda name: getattr(self, f"{name}_{suffix}")  # noqa: E731
        return (weight("weight_hx"), weight("weight_hs").t(), weight("bias_h"), None,
                weight("weight_yh").t(), weight("bias_y"))

    def cell_step(self, x_proj: Tensor, state: CellState, w_hs_t: Tensor, b_hs: None,
                  w_yh_t: Tensor, b_y: Tensor) -> tuple[Tensor, CellState]:
        (s,) = state  # (B, O): s(t)
        h = self.f(torch.addmm(x_proj, s, w_hs_t))  # (B, H): f(W^hx x(t) + b + W^hs s(t))
        y = self.g(torch.addmm(b_y, h, w_yh_t))  # (B, O): g(W^yh h(t) + c)
        s_next = torch.add(y, s, alpha=self.state_decay)  # (B, O): s(t+1) = μ s(t) + y(t)
        return y, (s_next,)
