"""Attention, the layers every attention model shares (rnnzoo.models.transformer, bert, bahdanau).

**Scaled dot-product attention** (Vaswani et al. 2017, eq. 1): queries Q (T, d_k) score keys
K (S, d_k); the softmax of the scores weighs the values V (S, d_v):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

Masked scores (pads, the future) are set to -inf before the softmax: they get exactly zero weight.

**Multi-head attention** (§3.2.2): h heads, each in its own d_k = d_model / h projection:

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,   head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

**Additive attention** (Bahdanau, Cho & Bengio 2015) and Luong et al. (2015)'s scores, one
query s(t-1) against every source state h_j:

    additive  e(t, j) = v_a^T tanh(W_a s(t-1) + U_a h_j)
    dot       e(t, j) = s(t-1)^T h_j
    general   e(t, j) = s(t-1)^T W_a h_j
    α(t, j) = softmax_j e(t, j) (pads get 0),   c(t) = Σ_j α(t, j) h_j

Inside a recording (rnnzoo.nn.inside) a `MultiheadAttention` with an `inside_name` forms its
weights explicitly (the fused kernels never do) and records them per head, (B, h, T, S); a
cached decoder's one-query steps join along T, into the (B, h, T, S) teacher forcing forms.

The modern Hopfield update, which is attention too, lives with its layers in rnnzoo.nn.hopfield.
See docs/transformer.md for why each piece is there.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import RnnzooError
from .encoder_decoder import Memory
from .inside import record, recording_now

KeyValues = tuple[Tensor, Tensor]  # one layer's attention keys and values, (B, h, S, d_k) each
SCORES = ("additive", "dot", "general")


# --- scaled dot-product and multi-head attention ------------------------------------------
def attention_mask(key_mask: Tensor | None, queries: int, keys: int, causal: bool, device: torch.device
                   ) -> Tensor | None:
    """Where each query may look: (B or 1, 1, T, S) bool, True = allowed; None if anywhere.

    key_mask (B, S): True at real keys. causal: query i is the newest T of S positions (the
    cache holds the S - T before it), so it sees keys j <= S - T + i.
    """
    allowed = None
    if causal:
        allowed = torch.ones(queries, keys, dtype=torch.bool, device=device).tril(keys - queries)  # (T, S)
    if key_mask is not None:
        real = key_mask[:, None, None, :]  # (B, 1, 1, S)
        allowed = real if allowed is None else allowed & real  # (B, 1, T, S)
    if allowed is not None:
        # a query with no key to see (an empty sequence) would take a softmax over nothing: NaN.
        # It may see every key instead; its output is junk that the caller zeroes.
        allowed = allowed | ~allowed.any(-1, keepdim=True)
    return allowed


class MultiheadAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1 .. head_h) W^O; self-, causal or cross-attention alike.

    Keys and values come in already projected (`key_values`), so a caller can cache them
    (the decoder's earlier positions) or compute them once (the encoder's output).
    """

    inside_name: str | None = None  # what a recording calls its weights (set by its stack); None: not recorded

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        self.num_heads, self.head_size = num_heads, d_model // num_heads
        self.dropout = dropout
        # [W^Q; W^K; W^V], each the h heads' W_i side by side: one matrix, so that self-attention
        # projects its input once (one matmul instead of three: 3% of a small decoder's step)
        self.projection = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.output = nn.Linear(d_model, d_model, bias=bias)  # W^O

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, d_model) -> (B, h, T, d_k)."""
        return x.unflatten(-1, (self.num_heads, self.head_size)).transpose(1, 2)

    def projections(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Self-attention's queries x W^Q, keys x W^K and values x W^V of x (B, T, d_model), each (B, h, T, d_k)."""
        q, k, v = self.projection(x).chunk(3, dim=-1)  # 3 x (B, T, d_model)
        return self.split_heads(q), self.split_heads(k), self.split_heads(v)

    def queries(self, x: Tensor) -> Tensor:
        """Cross-attention's queries x W^Q (B, h, T, d_k) of x (B, T, d_model)."""
        return self.split_heads(self._project(x, 0, 1))

    def key_values(self, source: Tensor) -> KeyValues:
        """Cross-attention's keys K W^K and values V W^V of `source` (B, S, d_model), each (B, h, S, d_k)."""
        k, v = self._project(source, 1, 3).chunk(2, dim=-1)  # 2 x (B, S, d_model)
        return self.split_heads(k), self.split_heads(v)

    def _project(self, x: Tensor, first: int, end: int) -> Tensor:
        """x times the blocks first..end-1 of [W^Q; W^K; W^V] (views of the one weight, no copy)."""
        d = self.projection.in_features
        bias = self.projection.bias
        return F.linear(x, self.projection.weight[first * d:end * d],
                        None if bias is None else bias[first * d:end * d])

    def forward(self, q: Tensor, keys: Tensor, values: Tensor, key_mask: Tensor | None = None,
                causal: bool = False, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """Attend from projected queries `q` (B, h, T, d_k) to projected `keys`, `values` (B, h, S, d_k).

        key_mask (B, S): True at real keys. causal: the T queries are the last T of the S
        positions and see no later one. Returns (B, T, d_model) and, with `need_weights`, the
        attention weights averaged over the heads (B, T, S), else None.
        """
        T, S = q.shape[2], keys.shape[2]
        causal = causal and T > 1  # a single newest query may see every key anyway
        dropout = self.dropout if self.training else 0.0
        weights = None
        recorded = recording_now() and self.inside_name is not None
        if need_weights or recorded:
            mask = attention_mask(key_mask, T, S, causal, q.device)
            out, heads = self.attend_explicitly(q, keys, values, mask, dropout)  # heads: (B, h, T, S)
            weights = heads.mean(1) if need_weights else None
            if recorded:
                record(self.inside_name, heads, along=2)  # a cached decoder's steps join along T
        elif key_mask is None and (not causal or T == S):
            # PyTorch's fused kernels (flash / memory-efficient attention on GPUs); is_causal
            # aligns the mask top-left, right only when queries and keys are the same positions
            out = F.scaled_dot_product_attention(q, keys, values, dropout_p=dropout, is_causal=causal)
        else:
            mask = attention_mask(key_mask, T, S, causal, q.device)
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, dropout_p=dropout)
        return self.output(out.transpose(1, 2).flatten(2)), weights  # (B, T, d_model)

    @staticmethod
    def attend_explicitly(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout: float
                          ) -> tuple[Tensor, Tensor]:
        """Eq. 1 written out, for when the weights are wanted (the fused kernels never form them).

        Returns softmax(q k^T / sqrt(d_k)) v (B, h, T, d_k) and the weights before dropout,
        per head (B, h, T, S).
        """
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, T, S)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, h, T, S)
        return F.dropout(weights, dropout) @ v, weights


# --- additive attention (Bahdanau) and Luong's scores --------------------------------------
class AdditiveAttention(nn.Module):
    """Bahdanau's attention (and Luong's scores): scores, masked softmax, the weighted sum.

    query (B, Hd), memory (its states (B, S, He), mask (B, S), and `extras["keys"]` = `keys(states)`)
    -> context c (B, He), weights α (B, S).
    """

    def __init__(self, score: str, query_size: int, key_size: int, attention_size: int) -> None:
        super().__init__()
        if score not in SCORES:
            raise RnnzooError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
        if score == "dot" and query_size != key_size:
            raise RnnzooError(f"score=dot needs the decoder state ({query_size}) as wide as the encoder states "
                              f"({key_size}); use score=general or additive")
        self.score = score
        if score == "additive":
            self.key_layer = nn.Linear(key_size, attention_size, bias=False)  # U_a
            self.query_layer = nn.Linear(query_size, attention_size)  # W_a (its bias is the layer's)
            self.v = nn.Linear(attention_size, 1, bias=False)  # v_a
        elif score == "general":
            self.key_layer = nn.Linear(key_size, query_size, bias=False)  # W_a h_j

    def keys(self, states: Tensor) -> Tensor:
        """The part of the score that depends on h_j alone, once per sentence: (B, S, A)."""
        return states if self.score == "dot" else self.key_layer(states)

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        keys = memory.extras["keys"]  # (B, S, A)
        if self.score == "additive":
            energy = self.v(torch.tanh(keys + self.query_layer(query)[:, None])).squeeze(-1)  # (B, S)
        else:
            energy = torch.bmm(keys, query[:, :, None]).squeeze(-1)  # (B, S): s^T h_j or s^T W_a h_j
        energy = energy.masked_fill(~memory.mask, float("-inf"))  # pads get exactly zero weight
        weights = torch.softmax(energy, dim=-1)  # (B, S)
        context = torch.bmm(weights[:, None], memory.states).squeeze(1)  # (B, He)
        return context, weights
