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

There is no PyTorch twin. `impl="reference"` runs `Jordan.cell_step` below in the Python loop
of `rnnzoo.nn.recurrent`, under autograd. `impl="auto"` runs the same equations in `JordanLoop`,
an autograd function that walks the steps forward and then backward (BPTT written out):

    forward, t = 0..T-1:  a(t) = u(t) + W^hs s(t)          u(t) = W^hx x(t) + b, all t in one matmul
                          h(t) = f(a(t)),  y(t) = g(W^yh h(t) + c),  s(t+1) = μ s(t) + y(t)
    backward, t = T-1..0: δy(t) = ∂L/∂y(t) + δs(t+1)       y(t) feeds the head and the state units
                          δo(t) = δy(t) g'(t),  δa(t) = (W^yh^T δo(t)) f'(t)
                          δs(t) = μ δs(t+1) + W^hs^T δa(t)  δs(T) = ∂L/∂s(T), the returned state's

and the weight gradients as one matmul each over all steps: ∂L/∂W^yh = Σ δo(t) h(t)^T,
∂L/∂W^hs = Σ δa(t) s(t)^T (δa(t) is ∂L/∂u(t), which autograd takes on to W^hx and b). A step is
then two matmuls and two elementwise ops each way, with nothing recorded per step, where autograd
records four nodes and takes every weight gradient as T small matmuls; the two paths agree up
to float rounding (tested). Padded batches (lengths given), `capture_hidden_states` (the
gradient probe) and autocast (bf16, fp16) take the reference loop. The two matmuls do not merge
into one: with g = identity they would, as (W^hs W^yh) h(t), but that H x H matrix costs H^2
per row where W^hs and W^yh cost 2 H O, and y(t) would still need W^yh h(t); at the benchmark's
O = H/2 that was slower (docs/bench_cells.md).

The state kept between steps (and returned) is s(t+1) = μ s(t) + y(t), what the state units
hold when the next input comes, so one tensor is the whole state:
(num_layers * num_directions, B, output_size), index layer * num_directions + direction.

Recorded (`rnnzoo.nn.inside`), for the top layer's left-to-right direction:
`jordan.hidden` h(t), (B, T, hidden_size), and `jordan.state` s(t), the fed-back outputs the
hidden layer reads at step t, (B, T, output_size); computed only while a recording is open.

Defaults (f = relu, g = identity, μ = 1, 256 hidden units, output_size 64, loop_scale α = 0.4)
come from the measurements in docs/results_jordan.md. The former ones (f = g = tanh, μ = 0.5, 64
outputs) sat at the copy baseline: within 250 Adam steps 77% of the outputs and 62% of the hidden
units saturate and the loop gain ρ(W^yh W^hs) grows from 0.25 to 8. Linear outputs cannot
saturate; μ = 1 makes the state units an integrator whose path back in time has gain 1 (the adding
problem is a sum). What was left is the loop's speed under Adam, which moves every entry of W^hs
and W^yh by about lr per step whatever their gradient: with μ = 1 the state is large, a coherent
step on W^hs shifts each hidden unit by about lr · O · |s|, and the loop blew up (64 outputs: the
adding problem stayed at its baseline) or learned slowly (32 outputs: 85% copy recall). Storing
the two factors as V = W / α (α = `loop_scale`) makes Adam's steps on them α times smaller, as a
per-parameter learning rate would, without changing the network or its initial function; with it
64 outputs learn both tasks (3 seeds, 128 hidden units: copy 97.8% recall, adding T = 50 MSE
0.0012), and 256 hidden units (a step then costs 2 x 256 x 64 multiply-adds per sequence, twice
Elman's 128 x 128) reach copy's 99% within the trainer's 5,000 steps.

Stacking: layer k > 0 reads the outputs y of layer k-1 (both directions concatenated). The
parameters of layer k, direction d are `weight_hx_l{k}`, `weight_hs_l{k}`, `bias_h_l{k}`,
`weight_yh_l{k}`, `bias_y_l{k}` (suffix `_reverse` for d = 1), all ~ U(-1/√H, 1/√H) as in
PyTorch's recurrent modules; `weight_hs_l{k}` and `weight_yh_l{k}` hold V = W / α, so W^hs is
`loop_scale * weight_hs_l{k}` (`Jordan.layer_weights` gives the W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from ..errors import RnnzooError
from ..nn.inside import record, recording_now
from ..nn.recurrent import CellState, RecurrentConfig, RecurrentEncoder
from ..registry import MODELS, help_field

HIDDEN_NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}
OUTPUT_NONLINEARITIES = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda v: v}


@dataclass
class JordanConfig(RecurrentConfig):
    hidden_size: int = help_field(256, "hidden units per layer and direction", ge=1)
    output_size: int = help_field(64, "output (and state) units per layer and direction: the features returned", ge=1)
    nonlinearity: str = help_field("relu", "f of the hidden units: relu or tanh")
    output_nonlinearity: str = help_field("identity", "g of the output units: identity, tanh or sigmoid")
    state_decay: float = help_field(1.0, "μ in s(t) = μ s(t-1) + y(t-1), in [0, 1]; 1 adds up all past outputs",
                                    ge=0, le=1)
    loop_scale: float = help_field(0.4, "α: W^hs and W^yh are stored as V = W / α, so that an optimiser step on V "
                                        "moves the loop's two factors α times as far (1: stored as they are)",
                                   gt=0, le=1)
    impl: str = help_field("auto", "auto: the equations with BPTT written out (JordanLoop); reference: the same "
                                   "equations under autograd (no PyTorch twin)")


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
        """Every W and b ~ U(-1/√H, 1/√H); the stored V = W / α of the loop's factors accordingly."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name, p in self.named_parameters():
            alpha = self.config.loop_scale if name.startswith(("weight_hs", "weight_yh")) else 1.0
            nn.init.uniform_(p, -bound / alpha, bound / alpha)

    def cell_weights(self, layer: int, direction: int) -> tuple[Tensor | None, ...]:
        """(W^hx, W^hs^T, b, None, W^yh^T, c): b goes into the hoisted projection with W^hx, and
        the step's matrices are transposed once here rather than at every step."""
        w_hx, w_hs, b, w_yh, c = self.layer_weights(layer, direction)
        return w_hx, w_hs.t(), b, None, w_yh.t(), c

    def cell_step(self, x_proj: Tensor, state: CellState, w_hs_t: Tensor, b_hs: None,
                  w_yh_t: Tensor, b_y: Tensor) -> tuple[Tensor, CellState]:
        (s,) = state  # (B, O): s(t)
        h = self.f(torch.addmm(x_proj, s, w_hs_t))  # (B, H): f(W^hx x(t) + b + W^hs s(t))
        y = self.g(torch.addmm(b_y, h, w_yh_t))  # (B, O): g(W^yh h(t) + c)
        s_next = torch.add(y, s, alpha=self.state_decay)  # (B, O): s(t+1) = μ s(t) + y(t)
        return y, (s_next,)

    # --- the fast path, see the module docstring -------------------------------------
    def _run_cell(self, layer: int, direction: int, seq: Tensor, mask: Tensor | None,
                  state: CellState) -> tuple[Tensor, CellState]:
        (s0,) = state  # (B, O): s(0)
        if (self.impl == "reference" or mask is not None or self._captured is not None
                or torch.is_autocast_enabled(seq.device.type)):  # JordanLoop's ops do not autocast
            y, (s_last,) = super()._run_cell(layer, direction, seq, mask, state)
            h = states = None
        else:
            w_hx, w_hs, b, w_yh, c = self.layer_weights(layer, direction)
            u = nn.functional.linear(seq, w_hx, b)  # (B, T, H): W^hx x(t) + b, all steps
            y, s_last, h, states = JordanLoop.apply(u, s0, w_hs, w_yh, c, self.state_decay,
                                                    self.config.nonlinearity, self.config.output_nonlinearity)
            y, h, states = y.transpose(0, 1), h.transpose(0, 1), states[:-1].transpose(0, 1)  # (B, T, ...)
        if recording_now() and layer == self.num_layers - 1 and direction == 0:
            self._record(layer, seq, y, s0, h, states)
        return y, (s_last,)

    def layer_weights(self, layer: int, direction: int) -> tuple[Tensor, ...]:
        """(W^hx, W^hs, b, W^yh, c) of one cell; W^hs = α V^hs and W^yh = α V^yh (`loop_scale`)."""
        suffix = f"l{layer}" + ("_reverse" if direction else "")
        w_hx, v_hs, b, v_yh, c = (getattr(self, f"{name}_{suffix}")
                                  for name in ("weight_hx", "weight_hs", "bias_h", "weight_yh", "bias_y"))
        alpha = self.config.loop_scale
        return (w_hx, v_hs, b, v_yh, c) if alpha == 1 else (w_hx, alpha * v_hs, b, alpha * v_yh, c)

    def _record(self, layer: int, seq: Tensor, y: Tensor, s0: Tensor, h: Tensor | None,
                states: Tensor | None) -> None:
        """Report h(t) and s(t) (see the module docstring); the reference loop keeps neither,
        so there they are rebuilt from y: s(t) = μ s(t-1) + y(t-1), then h(t) from s(t)."""
        if states is None:
            kept = [s0]  # s(0), then s(t) = μ s(t-1) + y(t-1)
            for y_t in y.unbind(1)[:-1]:
                kept.append(self.state_decay * kept[-1] + y_t)
            states = torch.stack(kept, dim=1)  # (B, T, O)
            w_hx, w_hs, b, _, _ = self.layer_weights(layer, 0)
            h = self.f(nn.functional.linear(seq, w_hx, b) + states @ w_hs.t())  # (B, T, H)
        record("jordan.hidden", h)
        record("jordan.state", states)


class JordanLoop(torch.autograd.Function):
    """Jordan's equations over all steps, forward then backward by hand (see the module docstring).

    Reads u (B, T, H) = W^hx x(t) + b, s0 (B, O) and the weights as stored; returns, time-major
    (each step's rows contiguous), y (T, B, O), s(T) (B, O) and, for recording only (no
    gradient), h (T, B, H) and s(0..T) (T + 1, B, O).
    """

    @staticmethod
    def forward(ctx, u: Tensor, s0: Tensor, w_hs: Tensor, w_yh: Tensor, c: Tensor, mu: float,
                nonlinearity: str, output_nonlinearity: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        B, T, H = u.shape
        h = u.new_empty(T, B, H)
        y = u.new_empty(T, B, c.shape[0])  # (T, B, O)
        s = u.new_empty(T + 1, B, c.shape[0])  # (T + 1, B, O): s(0..T)
        s[0] = s0
        f_, g_ = IN_PLACE[nonlinearity], IN_PLACE[output_nonlinearity]
        w_hs_t, w_yh_t = w_hs.t(), w_yh.t()
        for u_t, h_t, y_t, s_t, s_next in zip(u.unbind(1), h.unbind(0), y.unbind(0), s.unbind(0), s[1:].unbind(0)):
            f_(torch.addmm(u_t, s_t, w_hs_t, out=h_t))  # h(t) = f(W^hx x(t) + b + W^hs s(t))
            g_(torch.addmm(c, h_t, w_yh_t, out=y_t))  # y(t) = g(W^yh h(t) + c)
            torch.add(y_t, s_t, alpha=mu, out=s_next)  # s(t+1) = μ s(t) + y(t)
        ctx.save_for_backward(w_hs, w_yh, h, y, s)
        ctx.mu, ctx.nonlinearity, ctx.output_nonlinearity = mu, nonlinearity, output_nonlinearity
        ctx.mark_non_differentiable(h, s)
        ctx.set_materialize_grads(False)  # no zero-filled (T, B, H) gradients for h and s, which have none
        return y, s[-1].clone(), h, s

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: Tensor | None, grad_last: Tensor | None, _h: None, _s: None) -> tuple:
        w_hs, w_yh, h, y, s = ctx.saved_tensors
        T, B, H = h.shape
        Y = y.shape[-1]  # output units
        grad_y = torch.zeros_like(y) if grad_y is None else grad_y  # (T, B, O): ∂L/∂y(t)
        after = torch.zeros_like(s[0]) if grad_last is None else grad_last.clone()  # (B, O): δs(t+1)
        f_slope = SLOPE[ctx.nonlinearity](h)  # (T, B, H): f'(t)
        g_slope = SLOPE[ctx.output_nonlinearity](y)  # (T, B, O) or None (identity)
        delta_o = torch.empty_like(y)  # (T, B, O): δo(t)
        delta_a = h.new_empty(B, T, H)  # δa(t) = ∂L/∂u(t), batch first as u
        steps = list(zip(grad_y.unbind(0), delta_o.unbind(0), delta_a.unbind(1), f_slope.unbind(0),
                         g_slope.unbind(0) if g_slope is not None else [None] * T))
        for grad_y_t, delta_o_t, delta_a_t, f_slope_t, g_slope_t in reversed(steps):
            torch.add(grad_y_t, after, out=delta_o_t)  # δy(t) = ∂L/∂y(t) + δs(t+1)
            if g_slope_t is not None:
                delta_o_t.mul_(g_slope_t)  # δo(t) = δy(t) g'(t)
            torch.mul(delta_o_t @ w_yh, f_slope_t, out=delta_a_t)  # δa(t) = (W^yh^T δo(t)) f'(t)
            after = torch.addmm(after, delta_a_t, w_hs, beta=ctx.mu)  # δs(t) = μ δs(t+1) + W^hs^T δa(t)
        delta_o_flat = delta_o.view(T * B, Y)
        grad_w_yh = delta_o_flat.t() @ h.view(T * B, H)  # (O, H): Σ_t δo(t) h(t)^T
        delta_a_flat = delta_a.transpose(0, 1).reshape(T * B, H)  # time-major as s
        grad_w_hs = delta_a_flat.t() @ s[:-1].reshape(T * B, Y)  # (H, O): Σ_t δa(t) s(t)^T
        return delta_a, after, grad_w_hs, grad_w_yh, delta_o_flat.sum(0), None, None, None


IN_PLACE = {"relu": torch.relu_, "tanh": torch.tanh_, "sigmoid": torch.sigmoid_, "identity": lambda v: v}
SLOPE = {  # f'(pre-activation) from the unit's output v = f(pre-activation); None: 1 everywhere
    "relu": lambda v: (v > 0).to(v.dtype),
    "tanh": lambda v: 1 - v * v,
    "sigmoid": lambda v: v * (1 - v),
    "identity": lambda v: None,
}
