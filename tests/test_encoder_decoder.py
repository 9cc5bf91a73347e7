"""The recurrent encoder-decoders (seq2seq, bahdanau) against the encoder-decoder contract."""

from __future__ import annotations

import pytest
import torch

from rnnzoo.api import create_model
from rnnzoo.errors import RnnzooError
from rnnzoo.models.traits import model_traits
from rnnzoo.nn.encoder_decoder import EncoderDecoder
from rnnzoo.registry import MODELS

from .conftest import padded_translation_batch

SIZES = dict(source_vocab_size=11, target_vocab_size=13, hidden_size=12, embedding_dim=8)
CONFIGS = [
    ("seq2seq", {}),  # Cho: GRU, fixed context
    ("seq2seq", {"form": "sutskever"}),  # deep LSTM, reversed source, state copy
    ("seq2seq", {"form": "sutskever", "impl": "reference"}),
    ("seq2seq", {"encoder": "jordan", "decoder": "elman", "bidirectional": True}),
    ("seq2seq", {"encoder": "gru", "decoder": "lstm", "bridge": "zeros", "num_layers": 2}),
    ("bahdanau", {}),
    ("bahdanau", {"score": "dot", "bidirectional": False, "bridge": "linear", "decoder": "lstm", "encoder": "lstm"}),
    ("bahdanau", {"score": "general", "num_layers": 2, "bridge": "linear"}),
    ("bahdanau", {"encoder": "elman", "decoder": "jordan"}),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for name, kw in CONFIGS]


def make(name: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, **SIZES, **overrides)


def test_encoder_decoders_are_registered_with_their_trait():
    for name in ("seq2seq", "bahdanau"):
        assert name in MODELS.names()
        assert model_traits(name) == {"encoder_decoder"}


@pytest.mark.parametrize("name,overrides", CONFIGS, ids=IDS)
def test_teacher_forcing_equals_incremental_decoding(name, overrides):
    model = make(name, **overrides).eval()
    source, lengths, target = padded_translation_batch()
    logits, attention = model(source, lengths, target)  # (B, T, V)
    stepwise, _ = EncoderDecoder.forward(model, source, lengths, target)  # the contract's loop over decode_step
    assert logits.shape == (3, 5, SIZES["target_vocab_size"])
    torch.testing.assert_close(stepwise, logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,overrides", CONFIGS, ids=IDS)
def test_padding_changes_nothing(name, overrides):
    """Each sentence of a padded batch gets the logits it gets alone, unpadded."""
    model = make(name, **overrides).eval()
    source, lengths, target = padded_translation_batch()
    batched, _ = model(source, lengths, target)
    for i, n in enumerate(lengths.tolist()):
        alone, _ = model(source[i:i + 1, :n], lengths[i:i + 1], target[i:i + 1])
        torch.testing.assert_close(alone, batched[i:i + 1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,overrides", CONFIGS, ids=IDS)
def test_every_parameter_learns(name, overrides):
    model = make(name, **overrides).train()
    source, lengths, target = padded_translation_batch()
    logits, _ = model(source, lengths, target)
    torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1)).backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # the embedding row of the pad id never gets a gradient, by design (padding_idx)
    assert silent == [], f"parameters without gradient: {silent}"


@pytest.mark.parametrize("score", ["additive", "dot", "general"])
def test_attention_puts_no_weight_on_pads(score):
    unidirectional = {"bidirectional": False, "bridge": "linear"} if score == "dot" else {}
    model = make("bahdanau", score=score, **unidirectional).eval()
    source, lengths, target = padded_translation_batch()
    _, attention = model(source, lengths, target)  # (B, T, S)
    assert attention.shape == (3, 5, 7)
    real = torch.arange(7) < lengths[:, None]  # (B, S)
    assert torch.all(attention.masked_select(~real[:, None, :].expand_as(attention)) == 0)
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 5))


def test_sutskever_reads_the_source_reversed():
    """With reverse_source the encoder's last step sees the first word: changing the first
    source word changes the final state the decoder starts from, through one step only."""
    reversed_model = make("seq2seq", form="sutskever").eval()
    assert reversed_model.reverse_source and not make("seq2seq").reverse_source
    source, lengths, _ = padded_translation_batch()
    memory = reversed_model.encode(source, lengths)
    # the encoder states are returned in source order: position 0 holds the state after the
    # whole (reversed) sentence, i.e. equals the final state of the top layer
    h_final = reversed_model.final_state(memory)[0][-1]  # (B, H)
    torch.testing.assert_close(memory.states[:, 0], h_final)


def test_bad_configurations_name_the_problem():
    with pytest.raises(RnnzooError, match="bridge=copy"):
        make("seq2seq", form="sutskever", bidirectional=True)
    with pytest.raises(RnnzooError, match="bridge=backward .*bidirectional"):
        make("bahdanau", bidirectional=False)
    with pytest.raises(RnnzooError, match="score=dot"):
        make("bahdanau", score="dot")
    with pytest.raises(RnnzooError, match="recurrent models: .*gru"):
        make("seq2seq", encoder="hopfield")
    with pytest.raises(RnnzooError, match="form must be one of cho, sutskever"):
        make("seq2seq", form="vaswani")
    with pytest.raises(RnnzooError, match="vocab"):
        create_model("seq2seq")
