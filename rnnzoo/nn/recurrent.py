"""The recurrent layer machinery every recurrent family shares.

A family (elman, lstm, gru, jordan) writes only its cell: the equations of one time step.
This module turns a cell into a layer (the time loop), stacks layers with dropout between
them, runs a second, reversed direction for bidirectional nets (Schuster & Paliwal 1997),
and handles padding so that a padded batch gives each sequence the outputs it would get
alone.

Two ways to run the same parameters:

* ``impl="torch"``: where PyTorch has the same network (``nn.RNN``, ``nn.LSTM``,
  ``nn.GRU``), its fused kernel runs, on packed sequences when lengths are given. The
  parameters live in that module, with its names (``weight_ih_l0``, ``bias_hh_l1_reverse``...).
  A family without such a twin (jordan) refuses ``impl="torch"`` with a one-line error rather
  than run the Python loop in its place: torch is a request for PyTorch's kernel.
* ``impl="auto"`` (the default): PyTorch's kernel where the family has a twin, else the loop.
* ``impl="reference"``: the cell's equations, written out as in the papers, in a Python time
  loop. The input projection ``W_ih x(t) + b_ih`` of all steps is one matmul before the loop,
  and the loop walks ``unbind`` views rather than indexing (both as in PyTorch's
  ``benchmarks/fastrnns``), so the loop body is one matmul plus elementwise ops.

Inside a recording (rnnzoo.nn.inside) a family with an ``inside_name`` runs the loop under
every impl, since the kernels never form the gates (its outputs equal the kernel's to float
rounding): what its cell records at each step (``input_gate``, (B, H)) becomes
``<inside_name>.layer<k>.<forward|backward>.input_gate`` (B, T, H). Outside one, nothing changes.

State layout (PyTorch's): one tensor ``(num_layers * num_directions, B, H)`` per state
component, index ``layer * num_directions + direction``; an LSTM's state is the pair
``(h, c)``, elman's and gru's a single tensor ``h``, jordan's a single tensor ``s`` of its
output units' width (``cell_size``, which is ``hidden_size`` for the others). Passing the returned
state back in continues the sequence: two chunks with the state carried over equal one whole run.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence, Union

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..errors import RnnzooError
from ..registry import help_field
from .inside import Inside, gathering, record, recording_now

State = Union[Tensor, tuple[Tensor, ...]]
CellState = tuple[Tensor, ...]  # one cell's state: (h,) or (h, c), each (B, H)


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence within its own length; padding stays at the end.

    x: (B, T, F). The backward direction of a bidirectional net reads this, so that it
    starts at each sequence's real last token rather than at a pad.
    """
    if lengths is None:
        return x.flip(1)
    B, T = x.shape[:2]
    steps = torch.arange(T, device=x.device).expand(B, T)  # (B, T)
    lengths = lengths.to(x.device).unsqueeze(1)  # (B, 1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (B, T)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


@dataclass
class RecurrentConfig:
    """The options every recurrent family shares; a family's config adds its own."""

    input_size: int = help_field(32, "features per input step (the task sets it from its data)", ge=1)
    hidden_size: int = help_field(128, "units per layer and direction", ge=1)
    num_layers: int = help_field(1, "stacked layers", ge=1)
    dropout: float = help_field(0.0, "dropout on the outputs of every layer but the last", ge=0, lt=1)
    bidirectional: bool = help_field(False, "add a right-to-left direction (Schuster & Paliwal 1997)")
    impl: str = help_field("auto", "auto: PyTorch's fused kernel where it has the layer, else the equations; "
                                   "torch: the kernel, an error where there is none; reference: the equations")


class RecurrentEncoder(nn.Module):
    """A stack of recurrent layers: (B, T, input_size) -> (B, T, num_directions * hidden_size).

    Subclasses set `state_arity` (1 for h, 2 for (h, c)) and write `cell_step`; those with a
    PyTorch twin also set `self.rnn` to it and let `impl="torch"` use its kernel. A family
    without a twin (jordan) also writes `cell_weights`, and overrides `cell_size` when what a
    cell emits per step and keeps as state is not `hidden_size` wide.
    """

    state_arity: int = 1
    #: what a recording (rnnzoo.nn.inside) calls this model's cells: `<inside_name>.layer0.forward.<quantity>`;
    #: None records nothing (and keeps the fused kernel while recording)
    inside_name: str | None = None

    def __init__(self, config: RecurrentConfig) -> None:
        super().__init__()
        if config.impl not in ("auto", "torch", "reference"):
            raise RnnzooError(f"impl must be auto, torch or reference, got {config.impl!r}")
        self.config = config
        self.input_size = config.input_size
        self.hidden_size = config.hidden_size
        self.num_layers = config.num_layers
        self.num_directions = 2 if config.bidirectional else 1
        self.dropout = config.dropout
        self.impl = config.impl
        self.rnn: nn.RNNBase | None = None  # the PyTorch twin, where there is one
        self._captured: list[Tensor] | None = None  # see capture_hidden_states

    @classmethod
    def traits(cls, config: RecurrentConfig) -> set[str]:
        """A bidirectional net reads the future: it is neither causal nor able to stream."""
        return {"sequence", "bidirectional"} if config.bidirectional else {"sequence", "causal", "stateful"}

    @property
    def cell_size(self) -> int:
        """Width of what one cell emits per step, and of each of its state tensors."""
        return self.hidden_size

    @property
    def output_size(self) -> int:
        return self.num_directions * self.cell_size

    @property
    def bidirectional(self) -> bool:
        return self.num_directions == 2

    # --- what a family writes -------------------------------------------------------
    def cell_weights(self, layer: int, direction: int) -> tuple[Tensor | None, ...]:
        """(W_ih, W_hh, b_ih, b_hh, *extra) of one cell; by default read from the PyTorch twin.

        W_ih and b_ih make the input projection hoisted out of the time loop; the rest are
        handed to every `cell_step` (a family may append more, as jordan its output layer).
        """
        suffix = f"l{layer}" + ("_reverse" if direction else "")
        rnn = self.rnn
        return (getattr(rnn, f"weight_ih_{suffix}"), getattr(rnn, f"weight_hh_{suffix}"),
                getattr(rnn, f"bias_ih_{suffix}"), getattr(rnn, f"bias_hh_{suffix}"))

    def cell_step(self, x_proj: Tensor, state: CellState, w_hh: Tensor, b_hh: Tensor | None,
                  *extra: Tensor) -> tuple[Tensor, CellState]:
        """One time step. x_proj = W_ih x(t) + b_ih, (B, G*H). Returns (h(t), new state)."""
        raise NotImplementedError

    # --- forward --------------------------------------------------------------------
    def forward(self, x: Tensor, lengths: Tensor | None = None, state: State | None = None
                ) -> tuple[Tensor, State]:
        """Run the stack over a batch.

        Args:
            x: (B, T, input_size) inputs, batch first.
            lengths: (B,) real lengths when the batch is right-padded; outputs at pads are 0
                and the returned state is each sequence's state at its last real step.
            state: the state a previous call returned (see the module docstring), or None
                for zeros.
        Returns:
            outputs (B, T, output_size) and the final state.
        """
        recorded = recording_now() and self.inside_name is not None  # the kernel forms no gates: the loop does
        if self.rnn is not None and self.impl in ("auto", "torch") and not recorded:
            return self._forward_torch(x, lengths, state)
        if self.impl == "torch" and self.rnn is None:  # a family without a twin that did not refuse it when built
            raise RnnzooError(f"{type(self).__name__}: impl=torch, but PyTorch has no such layer; use impl=auto "
                              "or impl=reference (both run the equations in Python)")
        return self._forward_reference(x, lengths, state, recorded)

    def _forward_torch(self, x: Tensor, lengths: Tensor | None, state: State | None
                       ) -> tuple[Tensor, State]:
        if lengths is None:
            return self.rnn(x, state)
        T = x.shape[1]
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed, state)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, D*H)
        return out, state

    def _forward_reference(self, x: Tensor, lengths: Tensor | None, state: State | None, recorded: bool = False
                           ) -> tuple[Tensor, State]:
        B, T, _ = x.shape
        cells_in = self._split_state(state, B, x)
        mask = None
        if lengths is not None:
            lengths = lengths.to(x.device)
            mask = (torch.arange(T, device=x.device) < lengths.unsqueeze(1)).unsqueeze(-1)  # (B, T, 1)
        layer_input, finals = x, []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                seq = reverse_padded(layer_input, lengths) if direction else layer_input
                if recorded:
                    out, final = self._run_recorded(layer, direction, seq, mask, cells_in[index], lengths)
                else:
                    out, final = self._run_cell(layer, direction, seq, mask, cells_in[index])
                outputs.append(reverse_padded(out, lengths) if direction else out)
                finals.append(final)
            layer_input = torch.cat(outputs, dim=-1)  # (B, T, D*cell_size)
            if layer < self.num_layers - 1 and self.dropout > 0:
                layer_input = nn.functional.dropout(layer_input, self.dropout, self.training)
        return layer_input, self._merge_state(finals)

    def _run_cell(self, layer: int, direction: int, seq: Tensor, mask: Tensor | None,
                  state: CellState) -> tuple[Tensor, CellState]:
        w_ih, w_hh, b_ih, b_hh, *extra = self.cell_weights(layer, direction)
        x_proj = nn.functional.linear(seq, w_ih, b_ih)  # (B, T, G*H): all steps in one matmul
        steps_mask = mask.unbind(1) if mask is not None else None
        outputs = []
        for t, x_t in enumerate(x_proj.unbind(1)):
            h, new_state = self.cell_step(x_t, state, w_hh, b_hh, *extra)
            if steps_mask is not None:  # past a sequence's end: keep its state, output 0
                keep = steps_mask[t]  # (B, 1)
                new_state = tuple(torch.where(keep, n, o) for n, o in zip(new_state, state))
                h = h * keep
            state = new_state
            outputs.append(h)
            if self._captured is not None and layer == self.num_layers - 1 and direction == 0:
                h.retain_grad()  # h(t) feeds step t+1, so its grad is the total dL/dh(t)
                self._captured.append(h)
        return torch.stack(outputs, dim=1), state  # (B, T, cell_size)

    def _run_recorded(self, layer: int, direction: int, seq: Tensor, mask: Tensor | None, state: CellState,
                      lengths: Tensor | None) -> tuple[Tensor, CellState]:
        """`_run_cell` inside a recording: what the cell records at each step (`input_gate`, (B, H))
        becomes `<inside_name>.layer<k>.<forward|backward>.input_gate` (B, T, H), in token order
        (the backward direction's steps turned around) and 0 past each sequence's length."""
        with gathering() as steps:
            out, state = self._run_cell(layer, direction, seq, mask, state)
        self._record_steps(steps, f"{self.inside_name}.layer{layer}.{('forward', 'backward')[direction]}", lengths,
                           backward=direction == 1)
        return out, state

    @staticmethod
    def _record_steps(steps: Inside, prefix: str, lengths: Tensor | None, backward: bool) -> None:
        lengths = None if lengths is None else lengths.cpu()
        for quantity, value in steps.items():  # (B, T, ...) in the order the cell read the steps
            flat = value.reshape(*value.shape[:2], -1)  # (B, T, F)
            if backward:
                flat = reverse_padded(flat, lengths)
            if lengths is not None:
                flat = flat * (torch.arange(flat.shape[1]) < lengths[:, None])[..., None]  # (B, T, F)
            record(f"{prefix}.{quantity}", flat.view_as(value), along=1)  # a decoder's steps join up

    @contextmanager
    def capture_hidden_states(self) -> Iterator[list[Tensor]]:
        """Run the reference loop and collect the top layer's h(t), (B, H) each, with grads kept.

        After a backward pass, `h.grad` of the t-th tensor is dL/dh(t) through every path,
        the recurrence included, which the fused kernels cannot expose.
        """
        impl, self.impl, self._captured = self.impl, "reference", []
        try:
            yield self._captured
        finally:
            self.impl, self._captured = impl, None

    # --- state layout ---------------------------------------------------------------
    def _split_state(self, state: State | None, batch: int, like: Tensor) -> list[CellState]:
        cells = self.num_layers * self.num_directions
        if state is None:
            zeros = like.new_zeros(batch, self.cell_size)
            return [(zeros,) * self.state_arity for _ in range(cells)]
        parts: Sequence[Tensor] = (state,) if isinstance(state, Tensor) else state
        return [tuple(p[i] for p in parts) for i in range(cells)]

    def _merge_state(self, cells: list[CellState]) -> State:
        parts = tuple(torch.stack([c[k] for c in cells]) for k in range(self.state_arity))
        return parts[0] if self.state_arity == 1 else parts

    @staticmethod
    def detach_state(state: State | None) -> State | None:
        """Cut the graph at a truncated-BPTT boundary, keeping the values."""
        if state is None:
            return None
        return state.detach() if isinstance(state, Tensor) else tuple(s.detach() for s in state)
