"""The RNN encoder-decoder: a recurrent net reads the source, another writes the target.

Two published forms, chosen by `form`:

**Cho et al. 2014** ("Learning Phrase Representations using RNN Encoder-Decoder for
Statistical Machine Translation"; `form=cho`, GRU): the encoder's last hidden state is the
context vector c, which initialises the decoder and feeds every one of its steps and its
output layer:

    h(t)  = f(x(t), h(t-1))                       encoder, t = 1..S;   c = h(S)
    s(0)  = tanh(V c)                             the bridge
    s(t)  = g([E y(t-1); c], s(t-1))              decoder; y(0) = <bos>
    p(y(t) | y(<t), x) = softmax(W_o maxout(U_o [s(t); c; E y(t-1)]))

Cho's GRU adds C c inside each gate; a GRU over the concatenated input [E y; c] computes the
same sums (W [E y; c] = W_y E y + W_c c). Cho's output layer is a maxout layer over the same
three inputs ("deep output", `maxout_size`, 500 units in the paper, 256 here) before the
softmax; `maxout_size=null` makes it one linear layer, as bentrevett/pytorch-seq2seq does.

**Sutskever et al. 2014** ("Sequence to Sequence Learning with Neural Networks";
`form=sutskever`, deep LSTM): the source is read reversed ("introduces many short term
dependencies": the first target words sit close to the first source words), and the
encoder's final (h, c) of every layer becomes the decoder's initial state; nothing else
passes between them:

    s(0) = (h(S), c(S)) of each layer;   s(t) = LSTM(E y(t-1), s(t-1));   p = softmax(W_o s(t))

The paper uses 4 layers of 1000 units; our default is 2 x 256 (CPU-sized; say `num_layers=4
hidden_size=1000` for the paper's).

Any recurrent model of the zoo (elman, gru, lstm, jordan) can be the encoder or the decoder
(`encoder=`, `decoder=`). The **bridge** maps the encoder's final states onto the decoder's
initial state, layer by layer:

    copy      the encoder's state as it is (same cell type and size, unidirectional)
    linear    tanh(W [every state component of both directions]) (Cho's tanh(V c) per layer)
    backward  tanh(W h_backward(1)): the backward direction's state at the first source word,
              Bahdanau et al.'s s(0) (needs a bidirectional encoder)
    zeros     the decoder starts from zeros

A bidirectional encoder's context vector is [h_forward(S); h_backward(1)], the two ends.
This file also holds the machinery `bahdanau` reuses (the decoder step is the same network
with a context vector recomputed at every step instead of a fixed one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import RnnzooError
from ..nn.encoder_decoder import Cache, EncoderDecoder, Memory, select_rows
from ..nn.recurrent import RecurrentEncoder, State, reverse_padded
from ..registry import MODELS, help_field

FORMS = {"cho": {"cell": "gru", "num_layers": 1, "reverse_source": False, "bridge": "linear", "context": True},
         "sutskever": {"cell": "lstm", "num_layers": 2, "reverse_source": True, "bridge": "copy", "context": False}}
BRIDGES = ("copy", "linear", "backward", "zeros")


@dataclass
class RecurrentEncoderDecoderConfig:
    """Options every recurrent encoder-decoder shares."""

    source_vocab_size: int = help_field(0, "source vocabulary size (the task sets it)", ge=0)
    target_vocab_size: int = help_field(0, "target vocabulary size (the task sets it)", ge=0)
    encoder: str = help_field("auto", "recurrent model reading the source: elman, gru, lstm, jordan (auto: the form's)")
    decoder: str = help_field("auto", "recurrent model writing the target (auto: the form's)")
    embedding_dim: int = help_field(256, "width of the source and target embeddings", ge=1)
    hidden_size: int = help_field(256, "units per layer (per direction in the encoder)", ge=1)
    num_layers: int | None = help_field(None, "stacked layers in encoder and decoder (null: the form's)", ge=1)
    bidirectional: bool = help_field(False, "bidirectional encoder (Schuster & Paliwal 1997)")
    bridge: str = help_field("auto", "encoder final state -> decoder initial state: copy, linear, backward, "
                                     "zeros (auto: the form's)")
    dropout: float = help_field(0.2, "dropout on embeddings, between layers and before the output layer", ge=0, lt=1)
    maxout_size: int | None = help_field(256, "deep output: a maxout layer of this many units before the softmax "
                                              "(Cho et al., Bahdanau et al.: 500); null: one linear layer", ge=1)
    impl: str = help_field("auto", "recurrent cells: auto/torch (PyTorch kernels) or reference (the equations)")


@dataclass
class Seq2SeqConfig(RecurrentEncoderDecoderConfig):
    form: str = help_field("cho", "cho: GRU, context vector at every decoder step (Cho et al. 2014); "
                                  "sutskever: deep LSTM, reversed source, state handover (Sutskever et al. 2014)")
    reverse_source: bool | None = help_field(None, "read the source right to left (null: the form's)")


def recurrent_model(name: str, **values: Any) -> RecurrentEncoder:
    """A registered recurrent model (elman, gru, lstm, jordan) built with `values`."""
    recurrent = [n for n in MODELS.names() if isinstance(MODELS.get(n), type)
                 and issubclass(MODELS.get(n), RecurrentEncoder)]
    if name not in recurrent:
        raise RnnzooError(f"'{name}' cannot be an encoder or decoder; recurrent models: {', '.join(recurrent)}")
    entry = MODELS.entry(name)
    return entry.target(entry.make_config(values, where=f"model '{name}'"))


class RecurrentEncoderDecoder(EncoderDecoder):
    """Embeddings, a recurrent encoder, a bridge, a recurrent decoder fed [E y(t-1); context],
    and an output layer over [s(t); context; E y(t-1)] (context and embedding only where the
    form feeds them). Subclasses choose the context: none, fixed (Cho) or attention.

    Inside a recording (docs/inside.md) the encoder's and the decoder's cells record under
    `<inside_name>.encoder.…` and `<inside_name>.decoder.…` (the decoder one target step per call)."""

    inside_name = "seq2seq"

    def __init__(self, config: RecurrentEncoderDecoderConfig, cell: str, num_layers: int, bridge: str,
                 context: bool, reverse_source: bool = False) -> None:
        super().__init__()
        self.config = config
        if config.source_vocab_size < 1 or config.target_vocab_size < 1:
            raise RnnzooError("source_vocab_size and target_vocab_size must be set (the translation task sets them)")
        self.source_vocab_size, self.target_vocab_size = config.source_vocab_size, config.target_vocab_size
        self.reverse_source = reverse_source
        E, H, drop = config.embedding_dim, config.hidden_size, config.dropout
        self.source_embed = nn.Embedding(config.source_vocab_size, E, padding_idx=0)
        self.target_embed = nn.Embedding(config.target_vocab_size, E, padding_idx=0)
        self.encoder = recurrent_model(_auto(config.encoder, cell), input_size=E, hidden_size=H, num_layers=num_layers,
                                       dropout=drop, bidirectional=config.bidirectional, impl=config.impl)
        # the context is built from encoder outputs: as wide as one of its steps (D * cell size)
        self.context_size = context_size = self.encoder.output_size if context else 0
        self.decoder = recurrent_model(_auto(config.decoder, cell), input_size=E + context_size, hidden_size=H,
                                       num_layers=num_layers, dropout=drop, impl=config.impl)
        self.encoder.inside_name = f"{self.inside_name}.encoder"  # what a recording calls their gates
        self.decoder.inside_name = f"{self.inside_name}.decoder"
        self.bridge = Bridge(bridge, self.encoder, self.decoder)
        self.dropout = nn.Dropout(drop)
        self.output = OutputLayer(self.decoder.output_size + context_size + (E if context_size else 0),
                                  config.maxout_size if context_size else None, config.target_vocab_size)

    # --- encoding -------------------------------------------------------------------------
    def encode(self, source: Tensor, source_lengths: Tensor) -> Memory:
        x = self.dropout(self.source_embed(source))  # (B, S, E)
        if self.reverse_source:
            x = reverse_padded(x, source_lengths)
        states, final = self.encoder(x, source_lengths)  # (B, S, D*H), state (L*D, B, H) per component
        if self.reverse_source:  # back to source order, so attention weights line up with source words
            states = reverse_padded(states, source_lengths)
        mask = torch.arange(source.shape[1], device=source.device) < source_lengths.to(source.device)[:, None]
        parts = (final,) if isinstance(final, Tensor) else final
        extras = {f"final{k}": p.transpose(0, 1) for k, p in enumerate(parts)}  # batch-first (B, L*D, H)
        extras.update(self.memory_extras(states, mask, parts))
        return Memory(states, mask, extras)

    def memory_extras(self, states: Tensor, mask: Tensor, final: tuple[Tensor, ...]) -> dict[str, Tensor]:
        """Further batch-first tensors a subclass keeps with the memory (a context vector...)."""
        return {}

    def final_state(self, memory: Memory) -> tuple[Tensor, ...]:
        """The encoder's final state components, (L*D, B, H) each, back from the memory."""
        return tuple(memory.extras[f"final{k}"].transpose(0, 1) for k in range(self.encoder.state_arity))

    # --- decoding -------------------------------------------------------------------------
    def start(self, memory: Memory) -> Cache:
        return self.bridge(self.final_state(memory), memory.states)

    def context(self, memory: Memory, state: State) -> tuple[Tensor | None, Tensor | None]:
        """The context vector (B, C) for the next step, and attention weights (B, S) or None."""
        return None, None

    def advance(self, previous: Tensor, memory: Memory, cache: Cache
                ) -> tuple[Tensor, Tensor | None, Tensor, Cache, Tensor | None]:
        """The recurrent part of a step: (s(t), c(t), E y(t-1), new cache, attention weights)."""
        embedded = self.dropout(self.target_embed(previous))  # (B, E)
        context, weights = self.context(memory, cache)
        features = embedded if context is None else torch.cat([embedded, context], -1)  # (B, E + C)
        out, cache = self.decoder(features[:, None], None, cache)  # (B, 1, H)
        return out[:, 0], context, embedded, cache, weights

    def decode_step(self, previous: Tensor, memory: Memory, cache: Cache) -> tuple[Tensor, Cache, Tensor | None]:
        out, context, embedded, cache, weights = self.advance(previous, memory, cache)
        return self.logits(out, context, embedded), cache, weights

    def forward(self, source: Tensor, source_lengths: Tensor, target_in: Tensor) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: the recurrence step by step (the context depends on s(t-1)), then the
        output layer once over all steps: one large matmul instead of T small ones."""
        memory = self.encode(source, source_lengths)
        cache = self.start(memory)
        steps = []
        for previous in target_in.unbind(1):
            out, context, embedded, cache, weights = self.advance(previous, memory, cache)
            steps.append((out, context, embedded, weights))
        out, context, embedded, weights = (None if s[0] is None else torch.stack(s, 1) for s in zip(*steps))
        return self.logits(out, context, embedded), weights  # (B, T, V), (B, T, S) or None

    def logits(self, out: Tensor, context: Tensor | None, embedded: Tensor) -> Tensor:
        """W_o [s(t); c; E y(t-1)] (just W_o s(t) without a context); any leading shape."""
        parts = [out] if context is None else [out, context, embedded]
        return self.output(self.dropout(torch.cat(parts, -1)))

    def reorder_cache(self, cache: Cache, index: Tensor) -> Cache:
        return select_rows(cache, index, dim=1)  # recurrent states are (L, B, H)


class OutputLayer(nn.Module):
    """p(y(t)) from [s(t); c; E y(t-1)]: softmax(W_o t) with t = maxout(U [s; c; E y]), the "deep
    output" of Cho et al. 2014 and Bahdanau et al. 2015 (each unit the max of a pair of linear
    units, Goodfellow et al. 2013), or softmax(W_o [s; c; E y]) with `maxout_size` None."""

    def __init__(self, input_size: int, maxout_size: int | None, vocab_size: int) -> None:
        super().__init__()
        self.maxout = nn.Linear(input_size, 2 * maxout_size) if maxout_size else None
        self.project = nn.Linear(maxout_size or input_size, vocab_size)

    def forward(self, x: Tensor) -> Tensor:
        if self.maxout is not None:
            pairs = self.maxout(x).unflatten(-1, (-1, 2))  # (..., M, 2)
            x = pairs.amax(-1)  # (..., M)
        return self.project(x)  # (..., V)


class Bridge(nn.Module):
    """Encoder final state -> decoder initial state (see the module docstring for the kinds)."""

    def __init__(self, kind: str, encoder: RecurrentEncoder, decoder: RecurrentEncoder) -> None:
        super().__init__()
        if kind not in BRIDGES:
            raise RnnzooError(f"bridge must be one of {', '.join(BRIDGES)}, got {kind!r}")
        self.kind, self.layers = kind, decoder.num_layers
        self.directions, self.arity = encoder.num_directions, decoder.state_arity
        self.cell_size = decoder.cell_size
        if kind == "copy" and (encoder.bidirectional or encoder.state_arity != decoder.state_arity
                               or encoder.cell_size != decoder.cell_size):
            raise RnnzooError("bridge=copy needs a unidirectional encoder with the decoder's state layout "
                              f"({type(encoder).__name__} -> {type(decoder).__name__}); use bridge=linear")
        if kind == "backward" and not encoder.bidirectional:
            raise RnnzooError("bridge=backward reads the backward direction: it needs bidirectional=true")
        width = {"linear": encoder.state_arity * self.directions * encoder.cell_size,
                 "backward": encoder.cell_size}.get(kind)
        self.project = nn.Linear(width, self.arity * self.cell_size) if width else None

    def forward(self, final: tuple[Tensor, ...], states: Tensor) -> State:
        B = states.shape[0]
        if self.kind == "zeros":
            zero = states.new_zeros(self.layers, B, self.cell_size)
            return zero if self.arity == 1 else (zero,) * self.arity
        if self.kind == "copy":
            return final[0] if self.arity == 1 else final
        L, D = self.layers, self.directions
        if self.kind == "backward":
            source = final[0].view(L, D, B, -1)[:, 1]  # (L, B, H): backward direction, at word 1
        else:
            per_layer = [p.view(L, D, B, -1).permute(0, 2, 1, 3).reshape(L, B, -1) for p in final]
            source = torch.cat(per_layer, -1)  # (L, B, arity*D*H)
        initial = torch.tanh(self.project(source)).chunk(self.arity, -1)  # arity x (L, B, H)
        return initial[0].contiguous() if self.arity == 1 else tuple(s.contiguous() for s in initial)


@MODELS.register("seq2seq", config=Seq2SeqConfig,
                 summary="RNN encoder-decoder: Cho et al. 2014 (GRU, context every step) or Sutskever et al. 2014")
class Seq2Seq(RecurrentEncoderDecoder):
    """Cho et al. 2014 or Sutskever et al. 2014, by `form`; see the module docstring."""

    def __init__(self, config: Seq2SeqConfig) -> None:
        if config.form not in FORMS:
            raise RnnzooError(f"form must be one of {', '.join(FORMS)}, got {config.form!r}")
        form = FORMS[config.form]
        reverse = form["reverse_source"] if config.reverse_source is None else config.reverse_source
        super().__init__(config, form["cell"], config.num_layers or form["num_layers"],
                         _auto(config.bridge, form["bridge"]), form["context"], reverse)
        self.fixed_context = form["context"]

    def memory_extras(self, states: Tensor, mask: Tensor, final: tuple[Tensor, ...]) -> dict[str, Tensor]:
        if not self.fixed_context:
            return {}
        h = final[0].view(self.encoder.num_layers, self.encoder.num_directions, states.shape[0], -1)[-1]
        return {"context": torch.cat(list(h), -1)}  # (B, D*H): top layer, forward end + backward start

    def context(self, memory: Memory, state: State) -> tuple[Tensor | None, Tensor | None]:
        return memory.extras.get("context"), None

    def forward(self, source: Tensor, source_lengths: Tensor, target_in: Tensor) -> tuple[Tensor, None]:
        """All decoder steps in one recurrent call: the context is the same at every step."""
        memory = self.encode(source, source_lengths)
        embedded = self.dropout(self.target_embed(target_in))  # (B, T, E)
        context = memory.extras.get("context")
        if context is not None:
            context = context[:, None].expand(-1, target_in.shape[1], -1)  # (B, T, C)
            features = torch.cat([embedded, context], -1)  # (B, T, E + C)
        else:
            features = embedded
        out, _ = self.decoder(features, None, self.start(memory))  # (B, T, H)
        return self.logits(out, context, embedded), None


def _auto(value: str, default: str) -> str:
    return default if value == "auto" else value
