"""BERT: a Transformer encoder pretrained to fill in masked words (Devlin et al. 2019, "BERT:
Pre-training of Deep Bidirectional Transformers for Language Understanding").

A left-to-right language model (GPT) predicts each word from the words before it; BERT's
encoder sees the whole sentence at every position, which suits tasks that label a sentence or
its words, but a bidirectional model cannot be trained to predict the next word (it would see
it). BERT instead hides words and predicts them from both sides: the **masked language model**
("cloze" task, §3.1). Pretraining then needs no labels, and the encoder is fine-tuned on the
labelled task afterwards (`model.init_from=` a pretraining run's checkpoint; `task=pretraining`
trains one, see rnnzoo.tasks.pretraining for the masking recipe).

**Input representation** (§3.2, Figure 2). A sequence is framed [CLS] tokens [SEP] (here
<bos> ... <eos>: every rnnzoo vocabulary has them); a pair of segments is [CLS] A [SEP] B [SEP].
Each position's input is the sum of three learned embeddings, normalized:

    x_t = Dropout(LayerNorm(E_token[w_t] + E_position[t] + E_segment[s_t]))     s_t = 0 in A, 1 in B

**Encoder**: L post-LN Transformer layers with GELU feed-forward networks (Vaswani et al. 2017;
`TransformerStack` of rnnzoo.nn.transformer_layers, shared with the `transformer` model), each
position attending to every real position of the sequence (pads are masked out):

    h = TransformerEncoder_L(x)          (B, T, H)

**Masked-LM head** (the released code's `cls/predictions`): a dense layer with GELU and
LayerNorm, then the vocabulary logits through the *token embedding matrix* itself (tied, as
Press & Wolf 2017) plus a bias of its own:

    logits = LayerNorm(GELU(h W_t + b_t)) E_token^T + b           (N, V), for the N masked positions only

**Next-sentence head** (§3.1, `next_sentence=true`): the pooler reads the [CLS] state,
pooled = tanh(W_p h_[CLS] + b_p), and a linear layer gives IsNext / NotNext logits. The
pooler exists only with this head (nothing else trains it); a classifier on top of BERT
reads the pooled [CLS] vector when there is one, else the raw [CLS] state (`task.pooling=first`).

**Initialization**: every weight matrix and embedding from N(0, 0.02²), biases 0,
LayerNorms 1 and 0 (the released code's `initializer_range`). LayerNorm eps is
`model.layer_norm_eps`, PyTorch's 1e-5 by default (BERT's checkpoints use 1e-12: set it to
reproduce them exactly; rnnzoo.load_pretrained does, from their config.json).

Sizes (Turc et al. 2019, "Well-Read Students Learn Better", the 24 compact BERTs):

    preset           L   H    A   parameters besides the embeddings
    bert (Tiny)      2   128  2   0.4 M
    bert_mini        4   256  4   3.2 M
    bert_small       4   512  8   12.6 M
    (BERT-Base      12   768  12  85 M: model.num_layers=12 model.hidden_size=768 model.num_heads=12)

`model=bert_mini` and `model=bert_small` are YAML presets of this one registered model; any
size is `model.hidden_size=... model.num_layers=... model.num_heads=...`.

Inside a recording (rnnzoo.nn.inside, docs/inside.md) each layer i records its attention per
head, `bert.encoder.layer{i}.self_attention` (B, A, T, T); rows sum to 1 over the real tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..data.vocab import SPECIALS
from ..errors import RnnzooError
from ..nn.transformer_layers import Positions, TransformerStack, length_mask, zero_pads
from ..registry import MODELS, help_field
from .transformer import TransformerConfig, check_config  # BERT's encoder is the transformer's, configured

INIT_STD = 0.02  # BERT's initializer_range


@dataclass
class BertConfig:
    vocab_size: int = help_field(0, "token vocabulary size (the task sets it from its tokenizer)", ge=0)
    pad_id: int = help_field(0, "id of the padding token, whose embedding is 0 and gets no gradient (the task "
                                "sets it from its tokenizer; HF's pad_token_id)", ge=0)
    hidden_size: int = help_field(128, "H: width of the embeddings and of every layer (BERT-Tiny 128, Base 768)", ge=1)
    num_layers: int = help_field(2, "L: Transformer encoder layers (BERT-Tiny 2, Base 12)", ge=1)
    num_heads: int = help_field(2, "A: attention heads, each H / A wide (BERT-Tiny 2, Base 12)", ge=1)
    d_ff: int | None = help_field(None, "hidden units of the feed-forward sub-layers (null: 4 H)", ge=1)
    max_positions: int = help_field(512, "longest sequence: learned position embeddings exist up to here", ge=2)
    type_vocab_size: int = help_field(2, "segment embeddings: 2 for sentence pairs A / B", ge=1)
    dropout: float = help_field(0.1, "dropout on the embeddings and after every sub-layer (BERT: 0.1)", ge=0, lt=1)
    attention_dropout: float = help_field(0.1, "dropout on the attention weights (BERT: 0.1)", ge=0, lt=1)
    norm: str = help_field("post", "post: LayerNorm after each residual sum, BERT's; pre: before each sub-layer "
                                   "(Xiong et al. 2020), which trains faster at the high learning rates of "
                                   "short pretraining budgets (Geiping & Goldstein 2023, 'Cramming')")
    layer_norm_eps: float = help_field(1e-5, "epsilon of every LayerNorm (PyTorch's 1e-5; BERT's released "
                                             "checkpoints use 1e-12)", gt=0)
    next_sentence: bool = help_field(False, "add the pooler and the next-sentence head (pretraining then "
                                            "also predicts whether segment B follows A)")
    init_from: str | None = help_field(None, "a checkpoint (best.pt) of a bert run to start from, e.g. "
                                             "task=pretraining, or a Hugging Face BERT folder (config.json, "
                                             "weights, vocab.txt): its architecture, tokenizer and weights "
                                             "(dropouts from this run's config)")


def encoder_config(config: BertConfig) -> TransformerConfig:
    """The Transformer options BERT fixes: GELU, learned positions (§3, A.2); post-LN unless told."""
    return TransformerConfig(shape="encoder", input_size=config.hidden_size, d_model=config.hidden_size,
                             num_heads=config.num_heads, num_layers=config.num_layers, d_ff=config.d_ff,
                             dropout=config.dropout, attention_dropout=config.attention_dropout,
                             positions="learned", max_positions=config.max_positions, norm=config.norm,
                             activation="gelu", bias=True)


def check_bert_config(config: BertConfig) -> None:
    """RnnzooError naming the first bad option; the Transformer's own checks after BERT's names."""
    if config.vocab_size <= len(SPECIALS):
        raise RnnzooError(f"vocab_size must exceed the {len(SPECIALS)} specials (the task sets it from its "
                          f"tokenizer), got {config.vocab_size}")
    if not 0 <= config.pad_id < config.vocab_size:
        raise RnnzooError(f"pad_id={config.pad_id} is not a token id: it must be in "
                          f"[0, vocab_size={config.vocab_size})")
    if config.num_heads < 1 or config.hidden_size % config.num_heads:
        raise RnnzooError(f"hidden_size={config.hidden_size} must be divisible by num_heads={config.num_heads}: "
                          "each head gets hidden_size / num_heads dimensions")
    check_config(encoder_config(config))


class BertEmbeddings(nn.Module):
    """x_t = Dropout(LayerNorm(E_token[w_t] + E_position[t] + E_segment[s_t])) (§3.2)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        H = config.hidden_size
        self.tokens = nn.Embedding(config.vocab_size, H, padding_idx=config.pad_id)
        self.positions = Positions("learned", config.max_positions, H)
        self.segments = nn.Embedding(config.type_vocab_size, H)
        self.norm = nn.LayerNorm(H, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, ids: Tensor, segments: Tensor | None = None) -> Tensor:
        """ids (B, T), segments (B, T) or None (all segment A) -> (B, T, H)."""
        x = self.positions(self.tokens(ids))  # (B, T, H); past max_positions: an RnnzooError saying so
        if segments is not None:
            x = x + self.segments(segments)
        else:  # one segment: the same row everywhere, no (B, T) tensor of zeros needed
            x = x + self.segments.weight[0]
        return self.dropout(self.norm(x))  # (B, T, H)


class MaskedLMHead(nn.Module):
    """LayerNorm(GELU(h W_t + b_t)) E_token^T + b: the decoder's weight IS the token embedding."""

    def __init__(self, hidden_size: int, tokens: nn.Embedding, eps: float = 1e-5) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=eps)
        self.decoder = nn.Linear(hidden_size, tokens.num_embeddings)
        self.decoder.weight = tokens.weight  # (V, H): one Parameter reads tokens in and predicts them

    def forward(self, hidden: Tensor) -> Tensor:
        return self.decoder(self.norm(F.gelu(self.dense(hidden))))  # (N, V)


@MODELS.register("bert", config=BertConfig,
                 traits={"sequence", "token_input", "masked_lm", "positional", "pooler"},
                 summary="BERT (Devlin et al. 2019): bidirectional Transformer encoder on token ids, masked-LM "
                         "pretraining (task=pretraining), fine-tuned with model.init_from=")
class Bert(nn.Module):
    """Embeddings -> post-LN Transformer encoder -> hidden states (B, T, H), plus the pretraining heads."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        check_bert_config(config)
        self.config = config
        self.output_size = config.hidden_size
        self.max_positions = config.max_positions
        self.embeddings = BertEmbeddings(config)
        self.encoder = TransformerStack(encoder_config(config), config.num_layers, eps=config.layer_norm_eps,
                                        inside_name="bert.encoder")
        self.mlm = MaskedLMHead(config.hidden_size, self.embeddings.tokens, config.layer_norm_eps)
        if config.next_sentence:
            self.pooler = nn.Linear(config.hidden_size, config.hidden_size)  # tanh(W_p h_[CLS] + b_p)
            self.nsp = nn.Linear(config.hidden_size, 2)  # logits of NotNext (0), IsNext (1)
        else:
            self.pooler = self.nsp = None
        self.apply(init_bert_weights)  # after TransformerStack's own (Glorot) initialization
        with torch.no_grad():  # <pad> embeds to 0 (drawn again above through the tied decoder)
            self.embeddings.tokens.weight[config.pad_id].zero_()

    @property
    def next_sentence(self) -> bool:
        return self.nsp is not None

    def forward(self, ids: Tensor, lengths: Tensor | None = None, state: None = None,
                segments: Tensor | None = None) -> tuple[Tensor, None]:
        """ids (B, T) long, right-padded; lengths (B,) -> hidden (B, T, H), 0 at pads; no state."""
        if state is not None:
            raise RnnzooError("bert reads whole sequences: it takes no state")
        if ids.is_floating_point():
            raise RnnzooError("bert reads token ids (B, T), not features: it owns its embeddings")
        mask = length_mask(lengths, ids.shape[1], ids.device)  # (B, T) True at real tokens, or None
        hidden, _, _ = self.encoder(self.embeddings(ids, segments), key_mask=mask)  # (B, T, H)
        return zero_pads(hidden, mask), None

    def mlm_logits(self, hidden: Tensor) -> Tensor:
        """hidden (N, H) of the positions to predict -> vocabulary logits (N, V)."""
        return self.mlm(hidden)

    def pooled(self, hidden: Tensor) -> Tensor:
        """The sequence vector from hidden (B, T, H): tanh(W_p h_[CLS] + b_p) with the pooler, else
        h_[CLS] itself (B, H). [CLS] is position 0 (<bos>)."""
        first = hidden[:, 0]  # (B, H)
        return torch.tanh(self.pooler(first)) if self.pooler is not None else first

    def nsp_logits(self, hidden: Tensor) -> Tensor:
        """hidden (B, T, H) -> next-sentence logits (B, 2): NotNext, IsNext."""
        if self.nsp is None:
            raise RnnzooError("this bert has no next-sentence head: build it with model.next_sentence=true")
        return self.nsp(self.pooled(hidden))


def init_bert_weights(module: nn.Module) -> None:
    """N(0, 0.02²) weights and embeddings, zero biases, LayerNorm 1 and 0."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=INIT_STD)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# Turc et al. 2019's sizes, as named variants of bert (model=bert_mini, create_model("bert_mini")):
# the same registered model at other defaults, so checkpoints and run folders say bert.
MODELS.register_variant("bert_mini", "bert", hidden_size=256, num_layers=4, num_heads=4,
                        summary="BERT-Mini (Turc et al. 2019: L=4, H=256, A=4)")
MODELS.register_variant("bert_small", "bert", hidden_size=512, num_layers=4, num_heads=8,
                        summary="BERT-Small (Turc et al. 2019: L=4, H=512, A=8)")
