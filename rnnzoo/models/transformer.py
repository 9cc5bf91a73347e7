"""The Transformer: attention instead of recurrence (Vaswani et al. 2017, "Attention Is All You Need").

docs/transformer.md explains each piece (why the sqrt(d_k), post-LN or pre-LN, the KV cache);
the layers live in rnnzoo.nn.attention and rnnzoo.nn.transformer_layers. The equations:

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V                                     (eq. 1)
    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,  head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)
    FFN(x) = max(0, x W_1 + b_1) W_2 + b_2       (eq. 2; d_ff = 4 d_model; activation=gelu: GELU)
    PE(pos, 2i) = sin(pos / 10000^(2i / d_model)),  PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))
                                                 (§3.5; positions=learned: one vector per position)
    post-LN (the paper):  x = LayerNorm(x + Dropout(Sublayer(x)))
    pre-LN (Xiong et al. 2020):  x = x + Dropout(Sublayer(LayerNorm(x))), and a final LayerNorm
    embeddings (§3.4): E x sqrt(d_model) + PE; the output layer shares the target embedding
                       (`tie_embeddings`), and the source side too with `share_embeddings`

Three shapes of one implementation (`shape`):

    encoder_decoder  the paper's model, for translation: N encoder layers (self-attention, FFN)
                     read the source; N decoder layers (causal self-attention, cross-attention
                     over the encoder's output, FFN) write the target. An `EncoderDecoder`.
    encoder          the encoder stack alone, as a sequence model (tagging, classification;
                     BERT's shape): every position sees the whole sequence.
    decoder          a decoder without cross-attention, causal (generation, copy; GPT's shape).

The KV cache of decoding, per decoder layer i (batch-first, so beam search reorders it with
`select_rows`; the next position is t, the cache's length):

    keys{i}, values{i}                (B, h, t, d_k)   self-attention keys/values so far
    cross_keys{i}, cross_values{i}    (B, h, S, d_k)   encoder_decoder: over the source, in `Memory.extras`
    inputs                            (B, t, d_model)  decoder shape: its projected inputs; past
                                                       max_positions the window slides to its newest half

Inside a recording (rnnzoo.nn.inside, docs/inside.md) every attention forms its weights
explicitly and records them per head: `transformer.encoder.layer{i}.self_attention` (B, h, S, S),
`transformer.decoder.layer{i}.self_attention` (B, h, T, T) and, in the encoder_decoder shape,
`transformer.decoder.layer{i}.cross_attention` (B, h, T, S); rows sum to 1 over the keys a
query may see (pads and the future get 0). Decoding one token per `decode_step` records one
row per step, joined into the same (B, h, T, ...) as teacher forcing. The sequence shapes
record under `transformer.encoder` or `transformer.decoder` alike (the decoder shape's window,
once it slides past max_positions, adds the rebuilt rows). Beam search records decoder rows,
not hypotheses (see rnnzoo.models.bahdanau).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..errors import RnnzooError
from ..nn.attention import KeyValues
from ..nn.encoder_decoder import Cache, EncoderDecoder, Memory
from ..nn.transformer_layers import (
    ACTIVATIONS,
    Positions,
    TransformerStack,
    length_mask,
    pack_key_values,
    unpack_key_values,
    zero_pads,
)
from ..registry import MODELS, help_field

NORMS = ("post", "pre")
POSITIONS = ("sinusoidal", "learned")
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
        self.max_positions = config.max_positions  # trait positional
        self.source_vocab_size, self.target_vocab_size = V_s, V_t
        self.num_decoder_layers = config.num_decoder_layers or config.num_layers
        self.source_embed = token_embedding(V_s, d)
        self.target_embed = self.source_embed if config.share_embeddings else token_embedding(V_t, d)
        self.source_positions = Positions(config.positions, config.max_positions, d, config.position_std)
        self.target_positions = Positions(config.positions, config.max_positions, d, config.position_std)
        self.encoder = TransformerStack(config, config.num_layers, inside_name="transformer.encoder")
        self.decoder = TransformerStack(config, self.num_decoder_layers, cross=True, inside_name="transformer.decoder")
        self.output = nn.Linear(d, V_t, bias=config.bias)
        if config.tie_embeddings:
            self.output.weight = self.target_embed.weight  # (V, d): one matrix reads and writes tokens
        self.dropout = nn.Dropout(config.dropout)
        self.scale = math.sqrt(d)

    @classmethod
    def traits(cls, config: TransformerConfig) -> set[str]:
        return {"encoder_decoder", "positional"}

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
        self.max_positions = config.max_positions  # trait positional
        same = config.input_size == config.d_model
        self.project = nn.Identity() if same else nn.Linear(config.input_size, config.d_model, bias=config.bias)
        self.positions = Positions(config.positions, config.max_positions, config.d_model, config.position_std)
        self.stack = TransformerStack(config, config.num_layers, inside_name=f"transformer.{config.shape}")
        self.dropout = nn.Dropout(config.dropout)

    @classmethod
    def traits(cls, config: TransformerConfig) -> set[str]:
        return {"sequence", "positional", "causal"} if cls.causal else {"sequence", "positional"}

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
class Transformer:
    """The Transformer in the shape `config.shape` names: one registered name, three classes.

    Building it (`Transformer(config)`) builds that shape's class; its traits are that class's,
    so they follow the shape, and each shape is a variant that serves other tasks
    (rnnzoo.models.traits.find_fit picks the one a task needs).
    """

    variants: ClassVar[tuple[dict[str, str], ...]] = tuple({"shape": shape} for shape in SHAPES)

    def __new__(cls, config: TransformerConfig) -> nn.Module:  # type: ignore[misc]
        return shape_class(config.shape)(config)

    @staticmethod
    def traits(config: TransformerConfig) -> set[str]:
        return shape_class(config.shape).traits(config)
