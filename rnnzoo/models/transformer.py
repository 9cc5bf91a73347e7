"""The Transformer: attention instead of recurrence (Vaswani et al. 2017, "Attention Is All You Need").

A recurrent net reads a sentence one step after another, so the path between two words grows
with their distance and the steps of one sequence cannot run in parallel. The Transformer
lets every position look at every other position directly, in one matrix product:

**Scaled dot-product attention** (eq. 1). Queries Q (T, d_k) score keys K (S, d_k); the
softmax of the scores weighs the values V (S, d_v):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

Dividing by sqrt(d_k) keeps the scores' variance near 1 however wide the heads are, so the
softmax does not saturate (its gradients would vanish). Masked scores (pads, the future) are
set to -inf before the softmax: they get exactly zero weight.

**Multi-head attention** (§3.2.2): h heads attend in parallel, each in its own learned
d_k = d_model / h dimensional projection, so different heads can follow different relations:

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,   head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

One module serves the three uses of the paper: self-attention (Q, K, V from the same
sequence), causal self-attention (a position may not look ahead; the decoder) and
cross-attention (queries from the decoder, keys and values from the encoder's output).

**Position-wise feed-forward network** (eq. 2), the same two layers at every position:

    FFN(x) = max(0, x W_1 + b_1) W_2 + b_2           (d_ff = 4 d_model; activation=gelu: GELU, as GPT/BERT)

**Positions** (§3.5). Attention itself ignores order (it is a weighted sum over a set), so a
position vector is added to each input embedding: the paper's fixed sinusoids

    PE(pos, 2i) = sin(pos / 10000^(2i / d_model)),   PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))

or a learned vector per position (`positions=learned`, GPT's choice; the paper found both
"nearly identical"). Either way at most `max_positions` positions exist.

**Residuals and layer normalization** (§3.1, §5.4). Each sub-layer (attention, FFN) is
wrapped in dropout (the paper's P_drop = 0.1), a residual connection and LayerNorm:

    post-LN (the paper):                 x = LayerNorm(x + Dropout(Sublayer(x)))
    pre-LN (Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture"):
                                         x = x + Dropout(Sublayer(LayerNorm(x))), and a final LayerNorm

Post-LN's gradients near the output are large at initialization, which is why the paper
needs a learning-rate warm-up (`trainer.schedule=noam`, eq. 3); pre-LN keeps the residual
path an identity, trains without warm-up and tolerates larger learning rates (GPT-2 onwards).

**Embeddings** (§3.4): token embeddings are multiplied by sqrt(d_model) and the output layer
shares the target embedding matrix (`tie_embeddings`, Press & Wolf 2017); `share_embeddings`
also shares it with the source side when both sides have one vocabulary.

Three shapes of one implementation (`shape`):

    encoder_decoder  the paper's model, for translation: N encoder layers (self-attention, FFN)
                     read the source; N decoder layers (causal self-attention, cross-attention
                     over the encoder's output, FFN) write the target. An `EncoderDecoder`.
    encoder          the encoder stack alone, as a sequence model (tagging, classification;
                     BERT's shape): every position sees the whole sequence.
    decoder          a decoder without cross-attention, causal (generation, copy; GPT's shape,
                     Radford et al. 2018).

The default is `encoder_decoder`, the paper's model; say `model.shape=decoder` for
generation and copy, `model.shape=encoder` for tagging and classification.

**Caching keys and values.** Decoding one token at a time, a causal model would recompute
the keys and values of every earlier position at every step; they never change, so they are
kept (the "KV cache") and each step computes only its own. A cache is a dict of batch-first
tensors (so beam search reorders it with `select_rows`), per decoder layer i:

    keys{i}, values{i}     (B, h, t, d_k)   self-attention keys/values of the t positions so far

The next position is t, the cache's length: there is no separate counter to fall out of step.
The encoder-decoder's `Memory.extras` holds each decoder layer's cross-attention keys and
values over the source, `cross_keys{i}`, `cross_values{i}` (B, h, S, d_k), computed once per
sentence in `encode`. The decoder shape's state adds `inputs` (B, t, d_model), its inputs
after the input projection: when t would pass `max_positions` (learned positions go no
further) the window slides, and the cache is rebuilt from the newest max_positions // 2
inputs, re-read from position 0, so sampling goes on indefinitely (as nanoGPT crops its
context, though nanoGPT recomputes its whole window every step). In training mode the
decoder returns no state: the windows of a batch are trained from scratch, and a cache kept
alive across batches would only hold on to memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import RnnzooError
from ..nn.encoder_decoder import Cache, EncoderDecoder, Memory
from ..registry import MODELS, help_field

NORMS = ("post", "pre")
POSITIONS = ("sinusoidal", "learned")
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}

KeyValues = tuple[Tensor, Tensor]  # one layer's attention keys and values, (B, h, S, d_k) each
State = dict[str, Tensor]  # the decoder shape's state: its KV cache and inputs (see the module docstring)


@dataclass
class TransformerConfig:
    """Options of all three shapes; those marked encoder_decoder apply to that shape alone."""

    shape: str = help_field("encoder_decoder", "encoder_decoder (translation, the paper's model), encoder "
                                               "(tagging, classification) or decoder (GPT-style: generation, copy)")
    input_size: int = help_field(32, "features per input step of the sequence shapes (the task sets it)", ge=1)
    source_vocab_size: int = help_field(0, "encoder_decoder: source vocabulary size (the task sets it)", ge=0)
    target_vocab_size: int = help_field(0, "encoder_decoder: target vocabulary size (the task sets it)", ge=0)
    d_model: int = help_field(128, "width of every layer's input and output (512 in the paper's base model)", ge=1)
    num_heads: int = help_field(4, "attention heads h, each d_model / h wide (8 in the paper)", ge=1)
    num_layers: int = help_field(4, "layers of the encoder, or of the decoder-only stack (6 in the paper)", ge=1)
    num_decoder_layers: int | None = help_field(None, "encoder_decoder: decoder layers (null: num_layers)", ge=1)
    d_ff: int | None = help_field(None, "hidden units of the feed-forward sub-layers (null: 4 * d_model)", ge=1)
    dropout: float = help_field(0.1, "residual dropout P_drop: after each sub-layer and on embeddings + positions",
                                ge=0, lt=1)
    attention_dropout: float = help_field(0.0, "dropout on the attention weights", ge=0, lt=1)
    positions: str = help_field("sinusoidal", "sinusoidal (the paper's fixed sinusoids) or learned (GPT's)")
    max_positions: int = help_field(1024, "longest sequence; the decoder shape slides its window past it", ge=2)
    position_std: float = help_field(1.0, "std of learned positions at init: 1.0 beside N(0, 1) token embeddings; "
                                          "0.02 beside GPT-2-style ones (task.embedding_std=0.02)", ge=0)
    norm: str = help_field("post", "post: LayerNorm(x + sublayer(x)), the paper's (needs lr warm-up); pre: "
                                   "x + sublayer(LayerNorm(x)) and a final LayerNorm (Xiong et al. 2020)")
    activation: str = help_field("relu", "feed-forward nonlinearity: relu (the paper's) or gelu")
    bias: bool = help_field(True, "biases in the linear layers and LayerNorms")
    tie_embeddings: bool = help_field(True, "encoder_decoder: the output layer reuses the target embedding "
                                            "matrix (paper §3.4)")
    share_embeddings: bool = help_field(False, "encoder_decoder: one embedding for source and target (needs "
                                               "one vocabulary: task.shared_vocab=true)")


def check_config(config: TransformerConfig) -> None:
    """Raise RnnzooError naming the first option out of its allowed values."""
    _check_choice("shape", config.shape, tuple(SHAPES))
    _check_choice("norm", config.norm, NORMS)
    _check_choice("positions", config.positions, POSITIONS)
    _check_choice("activation", config.activation, tuple(ACTIVATIONS))
    if config.num_heads < 1 or config.d_model % config.num_heads:
        raise RnnzooError(f"d_model={config.d_model} must be divisible by num_heads={config.num_heads}: "
                          "each head gets d_model / num_heads dimensions")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise RnnzooError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


# --- attention --------------------------------------------------------------------------
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
        if need_weights:
            mask = attention_mask(key_mask, T, S, causal, q.device)
            out, weights = self.attend_explicitly(q, keys, values, mask, dropout)
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
        averaged over the heads (B, T, S).
        """
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, T, S)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, h, T, S)
        return F.dropout(weights, dropout) @ v, weights.mean(1)


class FeedForward(nn.Module):
    """FFN(x) = act(x W_1 + b_1) W_2 + b_2 (eq. 2): the same two layers at every position."""

    def __init__(self, d_model: int, d_ff: int, activation: str, bias: bool = True) -> None:
        super().__init__()
        self.inner = nn.Linear(d_model, d_ff, bias=bias)  # W_1, b_1
        self.outer = nn.Linear(d_ff, d_model, bias=bias)  # W_2, b_2
        self.activation = ACTIVATIONS[activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.outer(self.activation(self.inner(x)))  # (..., d_model)


# --- layers -------------------------------------------------------------------------------
class TransformerLayer(nn.Module):
    """An encoder layer (self-attention, FFN) or, with `cross`, a decoder layer (self-attention,
    cross-attention over the encoder's output, FFN); every sub-layer inside dropout, a residual
    connection and a LayerNorm, post-LN or pre-LN (see the module docstring)."""

    def __init__(self, config: TransformerConfig, cross: bool = False) -> None:
        super().__init__()
        d, h, bias = config.d_model, config.num_heads, config.bias
        self.self_attention = MultiheadAttention(d, h, config.attention_dropout, bias)
        self.self_norm = nn.LayerNorm(d, bias=bias)
        self.cross_attention = MultiheadAttention(d, h, config.attention_dropout, bias) if cross else None
        self.cross_norm = nn.LayerNorm(d, bias=bias) if cross else None
        self.feed_forward = FeedForward(d, config.d_ff or 4 * d, config.activation, bias)
        self.feed_forward_norm = nn.LayerNorm(d, bias=bias)
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
    residual stream, a sum of every sub-layer's output, would reach the output unnormalized."""

    def __init__(self, config: TransformerConfig, num_layers: int, cross: bool = False) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(config, cross) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(config.d_model, bias=config.bias) if config.norm == "pre" else None
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


# --- the encoder-decoder (translation) ----------------------------------------------------
class TransformerEncoderDecoder(EncoderDecoder):
    """The paper's model: source and target embeddings (x sqrt(d_model)) plus positions, the
    encoder stack, the decoder stack with cross-attention, and the output layer."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        check_config(config)
        V_s, V_t, d = config.source_vocab_size, config.target_vocab_size, config.d_model
        if V_s < 1 or V_t < 1:
            raise RnnzooError("source_vocab_size and target_vocab_size must be set (the translation task sets them)")
        if config.share_embeddings and V_s != V_t:
            raise RnnzooError(f"share_embeddings needs one vocabulary, got source_vocab_size={V_s} and "
                              f"target_vocab_size={V_t}: set task.shared_vocab=true or share_embeddings=false")
        self.config = config
        self.source_vocab_size, self.target_vocab_size = V_s, V_t
        self.num_decoder_layers = config.num_decoder_layers or config.num_layers
        self.source_embed = token_embedding(V_s, d)
        self.target_embed = self.source_embed if config.share_embeddings else token_embedding(V_t, d)
        self.source_positions = Positions(config.positions, config.max_positions, d, config.position_std)
        self.target_positions = Positions(config.positions, config.max_positions, d, config.position_std)
        self.encoder = TransformerStack(config, config.num_layers)
        self.decoder = TransformerStack(config, self.num_decoder_layers, cross=True)
        self.output = nn.Linear(d, V_t, bias=config.bias)
        if config.tie_embeddings:
            self.output.weight = self.target_embed.weight  # (V, d): one matrix reads and writes tokens
        self.dropout = nn.Dropout(config.dropout)
        self.scale = math.sqrt(d)

    @classmethod
    def traits(cls, config: TransformerConfig) -> set[str]:
        return {"encoder_decoder"}

    def embed(self, ids: Tensor, embedding: nn.Embedding, positions: Positions, start: int = 0) -> Tensor:
        """Dropout(E x sqrt(d_model) + PE): ids (B, T) at positions start.. -> (B, T, d_model)."""
        return self.dropout(positions(embedding(ids) * self.scale, start))

    def encode(self, source: Tensor, source_lengths: Tensor) -> Memory:
        mask = length_mask(source_lengths, source.shape[1], source.device)  # (B, S)
        x = self.embed(source, self.source_embed, self.source_positions)  # (B, S, d)
        states, _, _ = self.encoder(x, key_mask=mask)
        states = zero_pads(states, mask)  # (B, S, d)
        return Memory(states, mask, pack_key_values(self.decoder.memory_key_values(states), "cross_"))

    def start(self, memory: Memory) -> Cache:
        """An empty cache: every layer's keys and values of no position yet, (B, h, 0, d_k)."""
        attention = self.decoder.layers[0].self_attention
        empty = memory.states.new_zeros(memory.states.shape[0], attention.num_heads, 0, attention.head_size)
        return pack_key_values([(empty, empty)] * self.num_decoder_layers)

    def decode_step(self, previous: Tensor, memory: Memory, cache: Cache) -> tuple[Tensor, Cache, Tensor]:
        """previous (B,) -> logits (B, V), the cache one position longer, and the last layer's
        cross-attention weights averaged over heads (B, S), which alignments print."""
        past = unpack_key_values(cache, self.num_decoder_layers)
        position = past[0][0].shape[2]  # the cache's length
        x = self.embed(previous[:, None], self.target_embed, self.target_positions, position)  # (B, 1, d)
        x, present, weights = self.decoder(x, causal=True, past=past, memory=self._memory_key_values(memory),
                                           memory_mask=memory.mask, need_weights=True)
        return self.output(x[:, 0]), pack_key_values(present), weights[:, 0]  # (B, V), .., (B, S)

    def forward(self, source: Tensor, source_lengths: Tensor, target_in: Tensor, need_weights: bool = False
                ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing, all target steps in one pass under a causal mask: logits (B, T, V),
        and with `need_weights` the last layer's cross-attention averaged over heads (B, T, S)
        (None otherwise: the fused attention kernels never form the weights)."""
        memory = self.encode(source, source_lengths)
        x = self.embed(target_in, self.target_embed, self.target_positions)  # (B, T, d)
        x, _, weights = self.decoder(x, causal=True, memory=self._memory_key_values(memory),
                                     memory_mask=memory.mask, need_weights=need_weights)
        return self.output(x), weights  # (B, T, V)

    def _memory_key_values(self, memory: Memory) -> list[KeyValues]:
        return unpack_key_values(memory.extras, self.num_decoder_layers, "cross_")


def token_embedding(vocab_size: int, d_model: int) -> nn.Embedding:
    """Embedding with pad id 0, drawn from N(0, 1/d_model): times sqrt(d_model) it has unit
    variance, and as the tied output layer it gives logits of unit scale."""
    embedding = nn.Embedding(vocab_size, d_model, padding_idx=0)
    nn.init.normal_(embedding.weight, std=d_model ** -0.5)
    with torch.no_grad():
        embedding.weight[0].zero_()
    return embedding


# --- the sequence shapes (tagging, classification, generation, copy) -----------------------
class SequenceTransformer(nn.Module):
    """A stack of self-attention layers as a sequence model: (B, T, input_size) -> (B, T, d_model).

    The task owns the embedding (it may be one-hot) and the head; a linear layer brings its
    input_size to d_model where they differ. No sqrt(d_model) scaling: the task's inputs are
    not the tied output matrix.
    """

    causal: ClassVar[bool] = False

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        check_config(config)
        self.config = config
        self.input_size, self.output_size = config.input_size, config.d_model
        same = config.input_size == config.d_model
        self.project = nn.Identity() if same else nn.Linear(config.input_size, config.d_model, bias=config.bias)
        self.positions = Positions(config.positions, config.max_positions, config.d_model, config.position_std)
        self.stack = TransformerStack(config, config.num_layers)
        self.dropout = nn.Dropout(config.dropout)

    @classmethod
    def traits(cls, config: TransformerConfig) -> set[str]:
        return {"sequence", "causal"} if cls.causal else {"sequence"}

    def run(self, inputs: Tensor, key_mask: Tensor | None = None, past: list[KeyValues] | None = None
            ) -> tuple[Tensor, list[KeyValues]]:
        """inputs (B, T, d_model), projected, after the `past` positions -> features (B, T, d_model)
        and every layer's keys and values."""
        start = past[0][0].shape[2] if past else 0
        x = self.dropout(self.positions(inputs, start))  # (B, T, d)
        features, present, _ = self.stack(x, key_mask=key_mask, causal=self.causal, past=past)
        return features, present


class TransformerEncoder(SequenceTransformer):
    """The encoder stack (BERT's shape): each position sees the whole sequence, pads excepted."""

    def forward(self, x: Tensor, lengths: Tensor | None = None, state: State | None = None) -> tuple[Tensor, None]:
        """x (B, T, input_size), lengths (B,) -> features (B, T, d_model), 0 at pads; no state."""
        if state is not None:
            raise RnnzooError("the transformer encoder reads whole sequences: it takes no state")
        mask = length_mask(lengths, x.shape[1], x.device)  # (B, T)
        features, _ = self.run(self.project(x), key_mask=mask)
        return zero_pads(features, mask), None


class TransformerDecoder(SequenceTransformer):
    """Decoder-only (GPT's shape, Radford et al. 2018): causal self-attention and FFN layers,
    with a KV cache for generating one token at a time (see the module docstring)."""

    causal: ClassVar[bool] = True

    def forward(self, x: Tensor, lengths: Tensor | None = None, state: State | None = None
                ) -> tuple[Tensor, State | None]:
        """x (B, T, input_size), continuing `state` if given -> features (B, T, d_model), and in
        eval mode the state (cache) of every position so far; None in training mode, and None
        for a padded batch (its rows end at different steps, so none continues as one).

        Right padding needs no key mask: under the causal mask a real position never sees the
        pads after it. Their features are junk and set to 0.
        """
        inputs = self.project(x)  # (B, T, d)
        past = None if state is None else unpack_key_values(state, len(self.stack.layers))
        seen = None if state is None else state["inputs"]  # (B, P, d)
        P = 0 if seen is None else seen.shape[1]
        if self.training and P + x.shape[1] > self.config.max_positions:
            raise RnnzooError(f"a training window reaches past max_positions={self.config.max_positions}: raise "
                              "model.max_positions or shorten the windows (task.bptt)")
        features, seen, past = self.extend(inputs, seen, past)
        features = zero_pads(features, length_mask(lengths, x.shape[1], x.device))
        if self.training or lengths is not None:
            return features, None
        return features, {"inputs": seen, **pack_key_values(past)}

    def extend(self, inputs: Tensor, seen: Tensor | None, past: list[KeyValues] | None
               ) -> tuple[Tensor, Tensor, list[KeyValues]]:
        """Run `inputs` (B, T, d) after the `seen` ones (B, P, d) whose keys and values are `past`:
        in chunks that fit max_positions, and whenever the window is full, rebuilt from its newest
        max_positions // 2 inputs read from position 0. Returns features (B, T, d), the inputs
        now in the window, and their keys and values."""
        window, outputs = self.config.max_positions, []
        while inputs.shape[1] > 0:
            room = window - (seen.shape[1] if seen is not None else 0)
            if room == 0:  # the window is full: slide it
                seen = seen[:, -(window // 2):]  # (B, window // 2, d)
                _, past = self.run(seen)
                continue
            chunk, inputs = inputs[:, :room], inputs[:, room:]
            out, past = self.run(chunk, past=past)
            seen = chunk if seen is None else torch.cat([seen, chunk], 1)  # (B, P + chunk, d)
            outputs.append(out)
        return torch.cat(outputs, 1), seen, past


# --- registration -----------------------------------------------------------------------------
SHAPES: dict[str, type[nn.Module]] = {"encoder_decoder": TransformerEncoderDecoder, "encoder": TransformerEncoder,
                                      "decoder": TransformerDecoder}


def shape_class(shape: str) -> type[nn.Module]:
    """The class that builds `shape`; RnnzooError naming the shapes for any other value."""
    _check_choice("shape", shape, tuple(SHAPES))
    return SHAPES[shape]


@MODELS.register("transformer", config=TransformerConfig,
                 summary="Transformer (Vaswani et al. 2017): shape=encoder_decoder (translation), encoder "
                         "(tagging, classification) or decoder (GPT-style: generation, copy)")
def transformer(config: TransformerConfig) -> nn.Module:
    """The Transformer in the shape `config.shape` names: one registered name, three classes.

    The registry calls a model's entry with its config and asks it for `traits(config)`; a
    function with a `traits` attribute answers both, so the traits follow the shape.
    """
    return shape_class(config.shape)(config)


def _traits(config: TransformerConfig) -> set[str]:
    return shape_class(config.shape).traits(config)


transformer.traits = _traits  # type: ignore[attr-defined]
#: each shape serves other tasks (rnnzoo.models.traits.find_fit picks the one a task needs)
transformer.variants = tuple({"shape": shape} for shape in SHAPES)  # type: ignore[attr-defined]
