"""RNNsearch: the encoder-decoder with attention (Bahdanau, Cho & Bengio 2015, "Neural
Machine Translation by Jointly Learning to Align and Translate").

A fixed-length context vector must squeeze the whole source into one vector; RNNsearch
instead keeps every encoder state h_j = [h_forward(j); h_backward(j)] (a bidirectional
encoder, so h_j knows the words on both sides of j) and lets each decoder step choose where
to look:

    e(t, j) = a(s(t-1), h_j)                      alignment model (a score)
    α(t, j) = exp e(t, j) / Σ_k exp e(t, k)       over the real source words only (pads get 0)
    c(t)    = Σ_j α(t, j) h_j                     a context vector per target word
    s(t)    = g([E y(t-1); c(t)], s(t-1))         decoder (GRU in the paper)
    p(y(t) | y(<t), x) = softmax(W_o maxout(U_o [s(t); c(t); E y(t-1)]))
    s(0)    = tanh(W_s h_backward(1))             the bridge `backward`

Scores (`score`):

    additive  v_a^T tanh(W_a s(t-1) + U_a h_j)    Bahdanau et al. 2015 (the "concat" score of Luong)
    dot       s(t-1)^T h_j                          Luong et al. 2015; needs decoder size == encoder width
    general   s(t-1)^T W_a h_j                      Luong et al. 2015

Luong et al. also query with s(t) rather than s(t-1) and add an attentional layer; only
their score functions are offered here, inside Bahdanau's decoder. U_a h_j (and W_a h_j for
`general`) do not depend on t: they are computed once per sentence, in `encode`, and kept in
the memory. The output layer is the paper's deep output, a maxout layer before the softmax
(`maxout_size`, see seq2seq.py). With an LSTM decoder the query s(t-1) is its h. The attention
layer is rnnzoo.nn.attention.AdditiveAttention.

Inside a recording (rnnzoo.nn.inside, docs/inside.md) it records `bahdanau.attention`
(B, T_target, S), α(t, j) one row per decoder step (each row sums to 1 over the real source
words), and the cells' gates as `bahdanau.encoder.layer0.forward.update_gate` (B, S, H),
`bahdanau.decoder.layer0.forward.…` (B, T_target, H) and so on. A recording holds what the
decoder computed row by row: under greedy decoding and teacher forcing, row b is sentence b;
under beam search the B * K rows are reordered between steps, so a recorded row is no one
hypothesis: record greedy decoding, or take the best beam's attention from `Hypotheses.attention`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..nn.attention import AdditiveAttention
from ..nn.encoder_decoder import Memory
from ..nn.inside import record
from ..nn.recurrent import State
from ..registry import MODELS, help_field
from .seq2seq import RecurrentEncoderDecoder, RecurrentEncoderDecoderConfig


@dataclass
class BahdanauConfig(RecurrentEncoderDecoderConfig):
    encoder: str = help_field("gru", "recurrent model reading the source: elman, gru, lstm, jordan")
    decoder: str = help_field("gru", "recurrent model writing the target")
    num_layers: int | None = help_field(1, "stacked layers in encoder and decoder (attention reads the top one)", ge=1)
    bidirectional: bool = help_field(True, "bidirectional encoder (the paper's); false: left to right only")
    bridge: str = help_field("backward", "decoder initial state: backward (the paper's tanh(W_s h_backward(1))), "
                                         "linear, zeros")
    score: str = help_field("additive", "alignment score: additive (Bahdanau), dot or general (Luong et al. 2015)")
    attention_size: int = help_field(256, "width of the additive score's hidden layer (v_a, W_a, U_a)", ge=1)


@MODELS.register("bahdanau", config=BahdanauConfig,
                 summary="RNNsearch: bidirectional encoder + additive attention (Bahdanau et al. 2015), Luong scores")
class Bahdanau(RecurrentEncoderDecoder):
    """RNNsearch; see the module docstring."""

    inside_name = "bahdanau"

    def __init__(self, config: BahdanauConfig) -> None:
        bridge = "backward" if config.bridge == "auto" else config.bridge
        super().__init__(config, "gru", config.num_layers or 1, bridge, context=True)
        self.attention = AdditiveAttention(config.score, self.decoder.cell_size, self.context_size,
                                           config.attention_size)

    def memory_extras(self, states: Tensor, mask: Tensor, final: tuple[Tensor, ...]) -> dict[str, Tensor]:
        return {"keys": self.attention.keys(states)}

    def context(self, memory: Memory, state: State) -> tuple[Tensor, Tensor]:
        h = state if isinstance(state, Tensor) else state[0]  # (L, B, H): an LSTM queries with h
        context, weights = self.attention(h[-1], memory)  # the top layer's s(t-1): (B, He), (B, S)
        record("bahdanau.attention", weights, step=True)  # stacked over the target steps: (B, T, S)
        return context, weights
