"""The Transformer's layers (Vaswani et al. 2017), shared by rnnzoo.models.transformer and bert.

    FFN(x) = act(x W_1 + b_1) W_2 + b_2                           position-wise feed-forward (eq. 2)
    post-LN: x = LayerNorm(x + Dropout(Sublayer(x)))              the paper's
    pre-LN:  x = x + Dropout(Sublayer(LayerNorm(x))), final LayerNorm   (Xiong et al. 2020)
    PE(pos, 2i) = sin(pos / 10000^(2i / d_model)),  PE(pos, 2i+1) = cos(...)   or learned positions

A layer reads its options from a `TransformerConfig` (rnnzoo.models.transformer): d_model,
num_heads, d_ff, dropout, attention_dropout, activation, norm, bias. See docs/transformer.md.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import RnnzooError
from .attention import KeyValues, MultiheadAttention

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}


class FeedForward(nn.Module):
    """FFN(x) = act(x W_1 + b_1) W_2 + b_2 (eq. 2): the same two layers at every position."""

    def __init__(self, d_model: int, d_ff: int, activation: str, bias: bool = True) -> None:
        super().__init__()
        self.inner = nn.Linear(d_model, d_ff, bias=bias)  # W_1, b_1
        self.outer = nn.Linear(d_ff, d_model, bias=bias)  # W_2, b_2
        self.activation = ACTIVATIONS[activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.outer(self.activation(self.inner(x)))  # (..., d_model)


class TransformerLayer(nn.Module):
    """An encoder layer (self-attention, FFN) or, with `cross`, a decoder layer (self-attention,
    cross-attention over the encoder's output, FFN); every sub-layer inside dropout, a residual
    connection and a LayerNorm, post-LN or pre-LN (see the module docstring)."""

    def __init__(self, config: Any, cross: bool = False, eps: float = 1e-5) -> None:
        super().__init__()
        d, h, bias = config.d_model, config.num_heads, config.bias
        self.self_attention = MultiheadAttention(d, h, config.attention_dropout, bias)
        self.self_norm = nn.LayerNorm(d, eps=eps, bias=bias)
        self.cross_attention = MultiheadAttention(d, h, config.attention_dropout, bias) if cross else None
        self.cross_norm = nn.LayerNorm(d, eps=eps, bias=bias) if cross else None
        self.feed_forward = FeedForward(d, config.d_ff or 4 * d, config.activation, bias)
        self.feed_forward_norm = nn.LayerNorm(d, eps=eps, bias=bias)
        self.dropout = nn.Dropout(config.dropout)
        self.pre_norm = config.norm == "pre"

    def forward(self, x: Tensor, key_mask: Tensor | None = None, causal: bool = False,
                past: KeyValues | None = None, memory: KeyValues | None = None,
                memory_mask: Tensor | None = None, need_weights: bool = False
                ) -> tuple[Tensor, KeyValues, Tensor | None]:
        """x (B, T, d_model) -> (B, T, d_model), this layer's self-attention keys and values
        (B, h, P + T, d_k) including the P `past` ones, and with `need_weights` the weights of
        its last attention (over the memory in a decoder layer), averaged over heads (B, T, S).

        key_mask (B, P + T): True at real positions; memory: the cross-attention's keys and
        values over the encoder output (`memory_key_values`), memory_mask (B, S) its real ones.
        """
        h = self._sublayer_input(x, self.self_norm)
        q, keys, values = self.self_attention.projections(h)  # (B, h, T, d_k) each
        if past is not None:
            keys, values = torch.cat([past[0], keys], 2), torch.cat([past[1], values], 2)  # (B, h, P + T, d_k)
        attended, weights = self.self_attention(q, keys, values, key_mask, causal,
                                                need_weights and self.cross_attention is None)
        x = self._residual(x, attended, self.self_norm)
        if self.cross_attention is not None:
            if memory is None:
                raise ValueError("a decoder layer needs the encoder's keys and values (memory)")
            h = self._sublayer_input(x, self.cross_norm)
            attended, weights = self.cross_attention(self.cross_attention.queries(h), *memory, memory_mask,
                                                     need_weights=need_weights)
            x = self._residual(x, attended, self.cross_norm)
        x = self._residual(x, self.feed_forward(self._sublayer_input(x, self.feed_forward_norm)),
                           self.feed_forward_norm)
        return x, (keys, values), weights

    def memory_key_values(self, states: Tensor) -> KeyValues:
        """The cross-attention's keys and values over encoder states (B, S, d_model): (B, h, S, d_k)."""
        return self.cross_attention.key_values(states)

    def _sublayer_input(self, x: Tensor, norm: nn.LayerNorm) -> Tensor:
        return norm(x) if self.pre_norm else x

    def _residual(self, x: Tensor, sublayer_output: Tensor, norm: nn.LayerNorm) -> Tensor:
        y = x + self.dropout(sublayer_output)
        return y if self.pre_norm else norm(y)


class TransformerStack(nn.Module):
    """N layers one after the other, and with pre-LN a final LayerNorm: without it the
    residual stream, a sum of every sub-layer's output, would reach the output unnormalized.
    eps: every LayerNorm's epsilon (PyTorch's 1e-5; BERT's checkpoints use 1e-12).
    inside_name: what a recording (rnnzoo.nn.inside) calls it: layer i's weights are recorded as
    `<inside_name>.layer<i>.self_attention` (and `.cross_attention`), (B, h, T, S)."""

    def __init__(self, config: Any, num_layers: int, cross: bool = False, eps: float = 1e-5,
                 inside_name: str | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(config, cross, eps) for _ in range(num_layers))
        for i, layer in enumerate(self.layers if inside_name else []):
            layer.self_attention.inside_name = f"{inside_name}.layer{i}.self_attention"
            if cross:
                layer.cross_attention.inside_name = f"{inside_name}.layer{i}.cross_attention"
        self.final_norm = nn.LayerNorm(config.d_model, eps=eps, bias=config.bias) if config.norm == "pre" else None
        for name, p in self.named_parameters():  # Glorot-uniform weight matrices, as the Annotated Transformer
            # each of W^Q, W^K, W^V on its own (d_model x d_model) scale, as three separate Linears
            for block in (p.chunk(3) if name.endswith("projection.weight") else [p] if p.dim() > 1 else []):
                nn.init.xavier_uniform_(block)

    def forward(self, x: Tensor, key_mask: Tensor | None = None, causal: bool = False,
                past: list[KeyValues] | None = None, memory: list[KeyValues] | None = None,
                memory_mask: Tensor | None = None, need_weights: bool = False
                ) -> tuple[Tensor, list[KeyValues], Tensor | None]:
        """x (B, T, d_model) -> (B, T, d_model), every layer's keys and values (the new cache),
        and with `need_weights` the last layer's attention weights (B, T, S); see TransformerLayer."""
        present, weights = [], None
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x, key_values, weights = layer(x, key_mask, causal, past[i] if past else None,
                                           memory[i] if memory else None, memory_mask, need_weights and i == last)
            present.append(key_values)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x, present, weights

    def memory_key_values(self, states: Tensor) -> list[KeyValues]:
        """Every decoder layer's cross-attention keys and values over encoder states (B, S, d_model)."""
        return [layer.memory_key_values(states) for layer in self.layers]


def sinusoids(num_positions: int, d_model: int) -> Tensor:
    """PE (num_positions, d_model): sin(pos / 10000^(2i/d_model)) at 2i, cos at 2i + 1 (§3.5).

    The wavelengths form a geometric progression from 2π to 10000·2π, so PE(pos + k) is a
    linear function of PE(pos) for any fixed offset k: relative positions are easy to attend by.
    """
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (N, 1)
    even = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(d/2),): the 2i
    angle = position / 10000 ** (even / d_model)  # (N, ceil(d/2))
    table = torch.zeros(num_positions, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle)[:, :d_model // 2]  # an odd d_model has one cosine fewer
    return table.float()


class Positions(nn.Module):
    """Adds a position vector to each step: the fixed sinusoids or one learned per position."""

    def __init__(self, kind: str, max_positions: int, d_model: int, std: float = 1.0) -> None:
        super().__init__()
        self.max_positions = max_positions
        # learned positions must start at the scale of what they are added to: N(0, 1) beside a
        # task's default N(0, 1) embeddings or the encoder-decoder's sqrt(d)-scaled ones; 0.02
        # beside GPT-2-style 0.02 embeddings. At 0.02 beside unit-scale tokens they were invisible
        # (tinyshakespeare: val loss 2.41 instead of 2.19 at step 750).
        self.learned = nn.Embedding(max_positions, d_model) if kind == "learned" else None
        if self.learned is not None:
            nn.init.normal_(self.learned.weight, std=std)
        else:  # not saved in checkpoints: it is a function of the config
            self.register_buffer("table", sinusoids(max_positions, d_model), persistent=False)

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        """x (B, T, d_model) at positions start .. start + T - 1 -> x + PE, (B, T, d_model)."""
        end = start + x.shape[1]
        if end > self.max_positions:
            raise RnnzooError(f"a sequence reaches position {end}, past max_positions={self.max_positions}: "
                              "raise model.max_positions or use shorter sequences")
        table = self.learned.weight if self.learned is not None else self.table
        return x + table[start:end]


def pack_key_values(key_values: list[KeyValues], prefix: str = "") -> dict[str, Tensor]:
    """[(k, v) per layer] -> {prefix + "keys{i}": k, prefix + "values{i}": v}: flat and batch-first,
    as `Memory.select` and `select_rows` need."""
    packed = {}
    for i, (keys, values) in enumerate(key_values):
        packed[f"{prefix}keys{i}"], packed[f"{prefix}values{i}"] = keys, values
    return packed


def unpack_key_values(packed: dict[str, Tensor], num_layers: int, prefix: str = "") -> list[KeyValues]:
    """The inverse of `pack_key_values`."""
    return [(packed[f"{prefix}keys{i}"], packed[f"{prefix}values{i}"]) for i in range(num_layers)]


def zero_pads(x: Tensor, mask: Tensor | None) -> Tensor:
    """x (B, T, F) with the steps where mask (B, T) is False set to 0 (the sequence-model contract)."""
    return x if mask is None else x * mask[..., None]


def length_mask(lengths: Tensor | None, steps: int, device: torch.device) -> Tensor | None:
    """(B, T) bool, True at the real steps of right-padded sequences; None without lengths."""
    if lengths is None:
        return None
    return torch.arange(steps, device=device) < lengths.to(device)[:, None]
