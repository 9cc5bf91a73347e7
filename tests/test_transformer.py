"""The Transformer (rnnzoo.models.transformer): its parts against PyTorch's, causality, padding,
cached decoding against full decoding, the sliding window, configuration errors, the noam
schedule, and tiny end-to-end runs of translation, generation, sampling and copy."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rnnzoo.api import create_model, plain, sample, train
from rnnzoo.errors import RnnzooError
from rnnzoo.models.traits import model_traits
from rnnzoo.models.transformer import TransformerConfig
from rnnzoo.nn.attention import MultiheadAttention
from rnnzoo.nn.encoder_decoder import EncoderDecoder
from rnnzoo.nn.transformer_layers import TransformerLayer
from rnnzoo.registry import MODELS
from rnnzoo.training.config import TrainerConfig, check_trainer_config
from rnnzoo.training.optim import Noam, build_optimizer, build_scheduler

from .conftest import assert_ignores_the_future, compose_config, padded_translation_batch

torch.set_num_threads(1)

D, HEADS, INPUT = 8, 2, 5
SMALL = dict(d_model=D, num_heads=HEADS, num_layers=2, d_ff=16)
VOCAB = dict(source_vocab_size=11, target_vocab_size=13)


def make(shape: str, **overrides) -> nn.Module:
    torch.manual_seed(0)
    sizes = VOCAB if shape == "encoder_decoder" else {"input_size": INPUT}
    return create_model("transformer", **{"shape": shape, **SMALL, **sizes, **overrides})


# --- the parts against PyTorch's ------------------------------------------------------------
def copy_attention(mine: MultiheadAttention, theirs: nn.MultiheadAttention) -> None:
    with torch.no_grad():
        mine.projection.weight.copy_(theirs.in_proj_weight)  # both [W^Q; W^K; W^V]
        if theirs.in_proj_bias is not None:
            mine.projection.bias.copy_(theirs.in_proj_bias)
    mine.output.load_state_dict(theirs.out_proj.state_dict())


def copy_layer(mine: TransformerLayer, theirs: nn.Module) -> None:
    """nn.TransformerEncoderLayer / nn.TransformerDecoderLayer weights into a TransformerLayer."""
    copy_attention(mine.self_attention, theirs.self_attn)
    mine.self_norm.load_state_dict(theirs.norm1.state_dict())
    norms = [theirs.norm2]
    if mine.cross_attention is not None:
        copy_attention(mine.cross_attention, theirs.multihead_attn)
        mine.cross_norm.load_state_dict(theirs.norm2.state_dict())
        norms = [theirs.norm3]
    mine.feed_forward_norm.load_state_dict(norms[0].state_dict())
    mine.feed_forward.inner.load_state_dict(theirs.linear1.state_dict())
    mine.feed_forward.outer.load_state_dict(theirs.linear2.state_dict())


@pytest.mark.parametrize("kind", ["self-padding", "causal", "cross-padding"])
def test_attention_equals_torch_multihead_attention(kind):
    torch.manual_seed(0)
    mine, theirs = MultiheadAttention(D, HEADS), nn.MultiheadAttention(D, HEADS, batch_first=True)
    copy_attention(mine, theirs)
    x, memory = torch.randn(3, 6, D), torch.randn(3, 4, D)
    source = memory if kind == "cross-padding" else x
    S = source.shape[1]
    key_mask = torch.arange(S) < torch.tensor([S, 3, 1])[:, None] if kind != "causal" else None  # (B, S)
    causal = kind == "causal"
    expected, expected_weights = theirs(
        x, source, source, key_padding_mask=None if key_mask is None else ~key_mask,
        attn_mask=torch.ones(6, 6, dtype=torch.bool).triu(1) if causal else None)
    for need_weights in (False, True):  # the fused kernel and the explicit softmax
        out, weights = mine(mine.queries(x), *mine.key_values(source), key_mask, causal, need_weights)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("bias", [True, False])
def test_encoder_layer_equals_torch(norm, activation, bias):
    torch.manual_seed(0)
    config = TransformerConfig(d_model=D, num_heads=HEADS, d_ff=16, dropout=0.0, norm=norm, activation=activation,
                               bias=bias)
    mine = TransformerLayer(config)
    theirs = nn.TransformerEncoderLayer(D, HEADS, 16, dropout=0.0, activation=activation, batch_first=True,
                                        norm_first=norm == "pre", bias=bias)
    copy_layer(mine, theirs)
    x = torch.randn(3, 6, D)
    key_mask = torch.arange(6) < torch.tensor([6, 3, 1])[:, None]  # (B, T)
    expected = theirs(x, src_key_padding_mask=~key_mask)
    out, _, _ = mine(x, key_mask)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_decoder_layer_equals_torch(norm, activation):
    torch.manual_seed(0)
    config = TransformerConfig(d_model=D, num_heads=HEADS, d_ff=16, dropout=0.0, norm=norm, activation=activation)
    mine = TransformerLayer(config, cross=True)
    theirs = nn.TransformerDecoderLayer(D, HEADS, 16, dropout=0.0, activation=activation, batch_first=True,
                                        norm_first=norm == "pre")
    copy_layer(mine, theirs)
    x, memory = torch.randn(3, 6, D), torch.randn(3, 4, D)
    memory_mask = torch.arange(4) < torch.tensor([4, 2, 1])[:, None]  # (B, S)
    expected = theirs(x, memory, tgt_mask=torch.ones(6, 6, dtype=torch.bool).triu(1),
                      memory_key_padding_mask=~memory_mask)
    out, _, _ = mine(x, causal=True, memory=mine.memory_key_values(memory), memory_mask=memory_mask)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


# --- causality and padding --------------------------------------------------------------------
def test_decoder_output_ignores_the_future():
    assert_ignores_the_future(make("decoder").eval(), INPUT)


def test_encoder_decoder_target_ignores_the_future():
    model = make("encoder_decoder").eval()
    source, lengths, target = padded_translation_batch()
    changed = target.clone()
    changed[:, 3:] = (changed[:, 3:] + 1) % 13
    logits, _ = model(source, lengths, target)
    logits_changed, _ = model(source, lengths, changed)
    torch.testing.assert_close(logits_changed[:, :3], logits[:, :3], atol=0, rtol=0)
    assert not torch.allclose(logits_changed[:, 3:], logits[:, 3:])


@pytest.mark.parametrize("shape", ["encoder", "decoder"])
def test_padded_batch_equals_each_sequence_alone(shape):
    model = make(shape).eval()
    lengths = torch.tensor([7, 4, 1, 6])
    x = torch.randn(4, 7, INPUT)  # the pads hold noise, which must not leak in
    out, state = model(x, lengths)
    assert state is None  # a padded batch does not continue as one
    for b, length in enumerate(lengths.tolist()):
        alone, _ = model(x[b:b + 1, :length])
        torch.testing.assert_close(out[b, :length], alone[0], atol=1e-5, rtol=0)
        assert (out[b, length:] == 0).all(), "features at pads must be 0"


def test_an_empty_sequence_gives_zeros_not_nan():
    out, _ = make("encoder").eval()(torch.randn(2, 4, INPUT), torch.tensor([4, 0]))
    assert torch.isfinite(out).all() and (out[1] == 0).all()


def test_encoder_decoder_padded_batch_equals_each_sentence_alone():
    model = make("encoder_decoder").eval()
    source, lengths, target = padded_translation_batch()
    batched, _ = model(source, lengths, target)
    for i, n in enumerate(lengths.tolist()):
        alone, _ = model(source[i:i + 1, :n], lengths[i:i + 1], target[i:i + 1])
        torch.testing.assert_close(alone, batched[i:i + 1], rtol=1e-5, atol=1e-5)


# --- cached decoding ----------------------------------------------------------------------------
def step_by_step(model: nn.Module, x: torch.Tensor, prompt: int) -> tuple[torch.Tensor, dict]:
    """The prompt in one call, then one step per call with the state carried, as `sample` does."""
    out, state = model(x[:, :prompt])
    outputs = [out]
    for t in range(prompt, x.shape[1]):
        out, state = model(x[:, t:t + 1], None, state)
        outputs.append(out)
    return torch.cat(outputs, 1), state


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_decoder_cache_equals_full_forward(norm):
    model = make("decoder", norm=norm, positions="learned").eval()
    x = torch.randn(2, 9, INPUT)
    whole, whole_state = model(x)
    cached, state = step_by_step(model, x, 3)
    torch.testing.assert_close(cached, whole, atol=1e-5, rtol=1e-5)
    assert state["inputs"].shape == (2, 9, D) and state["keys1"].shape == (2, HEADS, 9, D // HEADS)
    torch.testing.assert_close(state["values0"], whole_state["values0"], atol=1e-5, rtol=1e-5)


def test_decoder_returns_no_state_in_training_and_refuses_windows_past_max_positions():
    model = make("decoder", max_positions=8).train()
    assert model(torch.randn(2, 8, INPUT))[1] is None
    with pytest.raises(RnnzooError, match="max_positions=8"):
        model(torch.randn(2, 9, INPUT))


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_sliding_window_goes_past_max_positions(positions):
    """max_positions=8: once 8 positions are cached, the window restarts from the newest 4."""
    model = make("decoder", max_positions=8, positions=positions).eval()
    x = torch.randn(2, 30, INPUT)
    out, state = step_by_step(model, x, 3)
    assert out.shape == (2, 30, D) and torch.isfinite(out).all()
    assert state["inputs"].shape[1] <= 8 and state["keys0"].shape[2] == state["inputs"].shape[1]
    # step 9 (index 8) comes right after a slide: it sees inputs 4..8, re-read from position 0
    after_slide, _ = model(x[:, 4:9])
    torch.testing.assert_close(out[:, 8], after_slide[:, -1], atol=1e-5, rtol=1e-5)
    # one long call slides the same way, in chunks
    torch.testing.assert_close(model(x)[0], out, atol=1e-5, rtol=1e-5)
    # with room for every position nothing slides: token by token equals one full forward
    roomy = make("decoder", max_positions=32, positions=positions).eval()
    torch.testing.assert_close(step_by_step(roomy, x, 3)[0], roomy(x)[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(roomy(x)[0][:, 8:], out[:, 8:])


def test_encoder_decoder_forward_equals_decode_steps():
    model = make("encoder_decoder").eval()
    source, lengths, target = padded_translation_batch()
    logits, weights = model(source, lengths, target, need_weights=True)  # (B, T, V), (B, T, S)
    assert model(source, lengths, target)[1] is None  # the fused kernels form no weights
    steps, step_weights = EncoderDecoder.forward(model, source, lengths, target)  # the loop over decode_step
    torch.testing.assert_close(steps, logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(step_weights, weights, rtol=1e-5, atol=1e-5)
    real = (torch.arange(source.shape[1]) < lengths[:, None])[:, None, :].expand_as(weights)  # (B, T, S)
    assert (weights.masked_select(~real) == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 5))
    memory = model.encode(source, lengths)
    cache = model.start(memory)
    for previous in target.unbind(1):
        _, cache, _ = model.decode_step(previous, memory, cache)
    assert cache["keys0"].shape == (3, HEADS, 5, D // HEADS)  # one key per decoded step


@pytest.mark.parametrize("shape", ["encoder_decoder", "encoder", "decoder"])
def test_every_parameter_learns(shape):
    model = make(shape, positions="sinusoidal", norm="pre").train()
    if shape == "encoder_decoder":
        source, lengths, target = padded_translation_batch()
        out, _ = model(source, lengths, target)
    else:
        out, _ = model(torch.randn(3, 7, INPUT))
    out.pow(2).mean().backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == []


# --- configuration ---------------------------------------------------------------------------
def test_traits_follow_the_shape():
    entry = MODELS.entry("transformer")
    traits = {shape: model_traits("transformer", entry.make_config({"shape": shape}))
              for shape in ("encoder_decoder", "encoder", "decoder")}
    assert traits == {"encoder_decoder": {"encoder_decoder", "positional"}, "encoder": {"sequence", "positional"},
                      "decoder": {"sequence", "positional", "causal"}}
    assert model_traits("transformer") == {"encoder_decoder", "positional"}  # the default: the paper's model


def test_tied_and_shared_embeddings():
    tied = make("encoder_decoder")
    assert tied.output.weight is tied.target_embed.weight
    untied = make("encoder_decoder", tie_embeddings=False)
    assert untied.output.weight is not untied.target_embed.weight
    shared = make("encoder_decoder", source_vocab_size=13, share_embeddings=True)
    assert shared.source_embed.weight is shared.target_embed.weight is shared.output.weight
    with pytest.raises(RnnzooError, match="share_embeddings.*source_vocab_size=11.*target_vocab_size=13"):
        make("encoder_decoder", share_embeddings=True)


@pytest.mark.parametrize("option,value,message", [
    ("shape", "gpt", "shape must be one of encoder_decoder, encoder, decoder, got 'gpt'"),
    ("norm", "middle", "norm must be one of post, pre, got 'middle'"),
    ("positions", "rotary", "positions must be one of sinusoidal, learned, got 'rotary'"),
    ("activation", "tanh", "activation must be one of relu, gelu, got 'tanh'"),
    ("num_heads", 3, "d_model=8 must be divisible by num_heads=3"),
])
def test_bad_options_name_the_choices(option, value, message):
    with pytest.raises(RnnzooError, match=message):
        make(value) if option == "shape" else make("decoder", **{option: value})
    if option == "shape":
        with pytest.raises(RnnzooError, match=message):
            model_traits("transformer", MODELS.entry("transformer").make_config({"shape": value}))


def test_encoder_decoder_needs_vocabulary_sizes():
    with pytest.raises(RnnzooError, match="vocab"):
        create_model("transformer")


# --- the noam schedule -------------------------------------------------------------------------
def test_noam_schedule_is_equation_3_scaled_to_peak_at_lr():
    warmup, d_model = 10, 512
    factor = Noam(TrainerConfig(schedule="noam", warmup_steps=warmup))
    # LambdaLR's index i is update i + 1
    assert factor(0) == pytest.approx(1 / warmup)  # step 1
    assert factor(warmup - 1) == pytest.approx(1.0)  # step warmup: the peak
    assert factor(4 * warmup - 1) == pytest.approx(0.5)  # step 4 warmup: 1 / sqrt(4)
    for step in (1, 3, warmup, 17, 100):
        paper = d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)
        assert factor(step - 1) == pytest.approx(paper / (d_model ** -0.5 * warmup ** -0.5))
    config = TrainerConfig(schedule="noam", warmup_steps=warmup, lr=2e-3)
    optimizer = build_optimizer([nn.Parameter(torch.zeros(1))], config)
    scheduler = build_scheduler(optimizer, config)
    rates = []
    for _ in range(warmup):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(2e-4) and rates[-1] == pytest.approx(2e-3)


def test_noam_needs_warmup_steps():
    with pytest.raises(ValueError, match="noam needs trainer.warmup_steps"):
        check_trainer_config(TrainerConfig(schedule="noam"))
    with pytest.raises(RnnzooError, match="warmup_steps"):
        Noam(TrainerConfig(schedule="noam"))


# --- end to end ------------------------------------------------------------------------------
MODEL = ["model=transformer", "model.d_model=16", "model.num_heads=2", "model.num_layers=1", "model.d_ff=32"]
RUN = ["trainer.max_steps=4", "trainer.eval_every=2", "trainer.log_every=1", "trainer.progress=false"]
TEXT = "ROMEO: But soft, what light through yonder window breaks?\nJULIET: O Romeo, Romeo!\n" * 8


def test_translation_trains_with_noam_and_beam_search(tmp_path):
    config = compose_config(["task=translation", "dataset=reversal", *MODEL, *RUN, "model.norm=pre",
                             "trainer.schedule=noam", "trainer.warmup_steps=2", "task.batch_size=8",
                             "task.eval_batch_size=16", "task.beam_size=2", "dataset.train_size=32",
                             "dataset.val_size=8", "dataset.test_size=8"])
    final = train(config, tmp_path)
    assert {"test/exact", "test/loss"} <= set(final) and math.isfinite(final["test/loss"])


def test_generation_trains_and_samples_past_max_positions(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    config = compose_config(["task=generation", "dataset=text_files", f"dataset.train={corpus}", *MODEL, *RUN,
                             "model.shape=decoder", "model.max_positions=16", "task.sampling=random",
                             "task.embedding_dim=16", "task.tie_embeddings=true", "task.batch_size=4",
                             "task.bptt=8", "task.eval_batch_size=2", "task.eval_tokens=32",
                             "task.sample_tokens=0"])
    final = train(config, tmp_path / "run")
    assert math.isfinite(final["val/loss"])
    options = {"checkpoint": str(tmp_path / "run" / "checkpoints" / "best.pt"), "trainer": {"device": "cpu"},
               "prompt": "ROMEO:", "max_new_tokens": 40, "temperature": 0.8, "top_k": 5, "seed": 3}
    text = "".join(sample(options))  # 6 + 40 tokens: the 16-position window slides
    assert len(text) == 40 and set(text) <= set(TEXT)
    assert text == "".join(sample(options))  # the same seed draws the same text


def test_copy_trains_with_a_decoder(tmp_path):
    config = compose_config(["task=copy", *MODEL, *RUN, "model.shape=decoder", "task.length=3", "task.delay=2",
                             "task.alphabet=4", "task.batch_size=8", "task.eval_examples=16"])
    assert plain(config)["model"]["shape"] == "decoder"
    final = train(config, tmp_path)
    assert math.isfinite(final["test/loss"]) and "test/recall_accuracy" in final


def test_generation_with_carried_streams_needs_a_stateful_model():
    from rnnzoo.api import build, plain
    from rnnzoo.errors import IncompatibleError

    from .conftest import compose_config
    with pytest.raises(IncompatibleError, match="must be stateful"):
        build(plain(compose_config(["task=generation", "model=transformer", "model.shape=decoder",
                                    "task.sampling=streams"])))


def test_learned_positions_start_at_the_configured_scale():
    wide = make("decoder", positions="learned", max_positions=512)
    small = make("decoder", positions="learned", max_positions=512, position_std=0.02)
    assert abs(wide.positions.learned.weight.std().item() - 1.0) < 0.05
    assert abs(small.positions.learned.weight.std().item() - 0.02) < 0.002
