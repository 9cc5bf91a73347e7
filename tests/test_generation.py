"""Language modelling (task=generation) and sampling (rnnzoo.decoding): through the real CLI on a
tiny text file, plus the pieces: streaming equals whole-sequence, resume equality, metrics."""

from __future__ import annotations

import math

import pytest
import torch

from rnnzoo.api import build, plain, sample, train
from rnnzoo.decoding import filter_logits, sample_next
from rnnzoo.errors import IncompatibleError, RnnzooError
from rnnzoo.tasks.generation import GenerationConfig, GenerationTask, stream_windows
from rnnzoo.training.checkpoint import load_checkpoint_file

from .conftest import compose_config, run_cli

TEXT = ("ROMEO: But soft, what light through yonder window breaks?\n"
        "JULIET: O Romeo, Romeo, wherefore art thou Romeo?\n"
        "ROMEO: It is the east, and Juliet is the sun.\n") * 12


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT)
    return path


def tiny(text_file, *extra: str) -> list[str]:
    return ["task=generation", "dataset=text_files", f"dataset.train={text_file}", "model.hidden_size=16",
            "task.embedding_dim=8", "task.batch_size=4", "task.bptt=8", "task.eval_batch_size=2",
            "task.sample_tokens=20", "trainer.max_steps=6", "trainer.eval_every=3", "trainer.log_every=1",
            "trainer.progress=false", *extra]


# --- decoding -----------------------------------------------------------------------------
def test_top_k_1_and_temperature_0_are_argmax():
    logits = torch.randn(5, 11, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    assert torch.equal(sample_next(logits, generator, top_k=1), logits.argmax(-1))
    assert torch.equal(sample_next(logits, generator, temperature=0.0), logits.argmax(-1))


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    kept = filter_logits(logits, top_k=2)
    assert torch.isfinite(kept).tolist() == [[False, True, False, True]]


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.05, 0.5, 0.3, 0.15]])
    logits = probs.log()
    # 0.5 < 0.6 <= 0.5 + 0.3: the two most likely tokens
    assert torch.isfinite(filter_logits(logits, top_p=0.6)).tolist() == [[False, True, True, False]]
    # exactly reaching p needs no more tokens
    assert torch.isfinite(filter_logits(logits, top_p=0.5)).tolist() == [[False, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=1.0)).all()
    draws = torch.stack([sample_next(logits, torch.Generator().manual_seed(s), top_p=0.6) for s in range(50)])
    assert set(draws.flatten().tolist()) == {1, 2}


def test_temperature_scales_the_logits():
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    for temperature in (0.5, 2.0):
        drawn = sample_next(logits.expand(2000, 3), torch.Generator().manual_seed(0), temperature)
        expected = torch.multinomial(torch.softmax(logits.expand(2000, 3) / temperature, -1), 1,
                                     generator=torch.Generator().manual_seed(0)).squeeze(-1)
        assert torch.equal(drawn, expected)
    sharp = sample_next(logits.expand(2000, 3), torch.Generator().manual_seed(0), 0.25)
    flat = sample_next(logits.expand(2000, 3), torch.Generator().manual_seed(0), 4.0)
    assert (sharp == 2).float().mean() > 0.95 > (flat == 2).float().mean()


def test_sampling_is_deterministic_given_the_seed():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))

    def draw(seed: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        return [sample_next(logits, generator, 1.0, 10, 0.9).tolist() for _ in range(5)]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_bad_sampling_options_are_errors():
    with pytest.raises(ValueError, match="top_p"):
        filter_logits(torch.zeros(1, 3), top_p=1.5)
    with pytest.raises(ValueError, match="top_k"):
        filter_logits(torch.zeros(1, 3), top_k=0)


# --- data and metrics -----------------------------------------------------------------------
def test_bits_per_character_is_loss_over_ln2():
    task = GenerationTask(GenerationConfig(level="char"), 0, {"name": "text_files"})
    metrics = task.metrics({"loss_sum": 12.0, "count": 10.0})
    assert metrics["loss"] == pytest.approx(1.2)
    assert metrics["bpc"] == pytest.approx(1.2 / math.log(2))
    assert metrics["perplexity"] == pytest.approx(math.exp(1.2))
    word = GenerationTask(GenerationConfig(level="word"), 0, {"name": "text_files"})
    assert "bpc" not in word.metrics({"loss_sum": 12.0, "count": 10.0})


def test_construction_reads_no_data(tmp_path):
    GenerationTask(GenerationConfig(), 0, {"name": "text_files", "train": str(tmp_path / "absent.txt")})


def test_stream_windows_cover_every_target_once():
    streams = torch.arange(2 * 21).reshape(2, 21)
    windows = list(stream_windows(streams, 8))
    assert [w.inputs.shape[1] for w in windows] == [8, 8, 4]
    inputs = torch.cat([w.inputs for w in windows], 1)
    targets = torch.cat([w.targets for w in windows], 1)
    assert torch.equal(inputs, streams[:, :-1]) and torch.equal(targets, streams[:, 1:])
    assert [w.inputs[0, 0].item() for w in stream_windows(streams, 8, start=2)] == [16]


def test_word_level_ends_lines_with_eos(text_file):
    task = GenerationTask(GenerationConfig(level="word"), 0, {"name": "text_files", "train": str(text_file)})
    ids = task.encode("ROMEO: It is the\nJULIET: zebra\n")
    assert task.tokenizer.vocab.decode(ids) == ["ROMEO:", "It", "is", "the", "<eos>", "JULIET:", "<unk>", "<eos>"]


def test_random_windows_are_deterministic_and_resumable(text_file):
    config = GenerationConfig(sampling="random", batch_size=3, bptt=5, batches_per_epoch=4)
    task = GenerationTask(config, 0, {"name": "text_files", "train": str(text_file)})
    assert not task.streams_state
    first = list(task.train_batches(0))
    again = list(task.train_batches(0, start=2))
    assert len(first) == 4 and all(torch.equal(a.inputs, b.inputs) for a, b in zip(first[2:], again))
    assert not torch.equal(first[0].inputs, next(task.train_batches(1)).inputs)
    assert torch.equal(first[0].inputs[:, 1:], first[0].targets[:, :-1])


# --- the network ----------------------------------------------------------------------------
def build_tiny(text_file, *extra: str):
    config = compose_config(tiny(text_file, *extra))
    return build(plain(config))


def test_streaming_two_windows_equals_one_window_of_double_length(text_file):
    """The state carried from window 1 into window 2 makes them one sequence (eval mode, LSTM)."""
    torch.manual_seed(0)
    task, network, _ = build_tiny(text_file, "model.num_layers=2")
    network.eval()
    streams = task._streams("train", 3)[:, :17]  # (3, 17): 16 inputs, 16 targets
    whole = next(stream_windows(streams, 16))
    halves = list(stream_windows(streams, 8))
    with torch.no_grad():
        out_whole = task.step(network, whole, None)
        first = task.step(network, halves[0], None)
        second = task.step(network, halves[1], first.state)
    assert float(first.stats["loss_sum"] + second.stats["loss_sum"]) == pytest.approx(
        float(out_whole.stats["loss_sum"]), rel=1e-5)
    assert int(first.count + second.count) == int(out_whole.count) == 48


def test_evaluation_carries_the_state_only_for_streams(text_file):
    """streams: one long sequence per stream; random: every window from a zero state."""
    for sampling in ("streams", "random"):
        torch.manual_seed(0)
        task, network, _ = build_tiny(text_file, f"task.sampling={sampling}", "task.eval_tokens=64")
        network.eval()
        with torch.no_grad():
            windows = task.eval_batches("val")  # (2, 32) streams: 4 windows of 8 steps
            fresh = sum(float(task.step(network, w, None).stats["loss_sum"]) for w in windows)
            streams = task._streams("val", 2)
            whole = task.step(network, next(stream_windows(streams, streams.shape[1])), None)
        expected = (fresh if sampling == "random" else float(whole.stats["loss_sum"])) / int(whole.count)
        assert len(windows) == 4 and int(whole.count) == 62
        assert task.evaluate(network, "val", torch.device("cpu"))["loss"] == pytest.approx(expected, rel=1e-5)


def test_bidirectional_model_is_refused(text_file):
    with pytest.raises(IncompatibleError, match="cannot serve task 'generation'.*causal"):
        build_tiny(text_file, "model.bidirectional=true")


def test_tied_embeddings_need_matching_sizes(text_file):
    with pytest.raises(RnnzooError, match="tie_embeddings.*task.embedding_dim=16 or model.hidden_size=8"):
        build_tiny(text_file, "task.tie_embeddings=true")
    _task, network, _ = build_tiny(text_file, "task.tie_embeddings=true", "task.embedding_dim=16")
    assert network.head[1].weight is network.embed[0].weight


@pytest.mark.parametrize("level", ["word", "bpe", "wordpiece"])
def test_other_levels_sample_text(text_file, level):
    task, network, _ = build_tiny(text_file, f"task.level={level}", "task.vocab_size=300")
    pieces = list(task.sample(network, "ROMEO:", 12, torch.device("cpu"), torch.Generator().manual_seed(0)))
    assert pieces and all(isinstance(piece, str) for piece in pieces)
    if level == "word":
        assert len(pieces) <= 12 and all(piece.strip() or piece == "\n" for piece in pieces)
        assert "\n " not in "".join(pieces)  # a line starts without a space
        unprompted = "".join(task.sample(network, "", 12, torch.device("cpu"), torch.Generator().manual_seed(0)))
        assert not unprompted.startswith(" ")


# --- through the trainer and the CLI ------------------------------------------------------------
def test_resume_continues_the_same_loss_curve(tmp_path, text_file, monkeypatch):
    """N steps, Ctrl-C, resume, N steps == 2N steps: the carried stream state is restored too."""
    config = tiny(text_file, "trainer.max_steps=8", "trainer.eval_every=4", "task.dropout=0.2")
    train(compose_config(config), tmp_path / "whole")
    real_step, calls = GenerationTask.step, {"n": 0}

    def step(self, network, batch, state=None):
        if network.training:
            calls["n"] += 1
            if calls["n"] == 5:
                raise KeyboardInterrupt
        return real_step(self, network, batch, state)

    with monkeypatch.context() as patch:
        patch.setattr(GenerationTask, "step", step)
        with pytest.raises(KeyboardInterrupt):
            train(compose_config(config), tmp_path / "first")
    last = load_checkpoint_file(tmp_path / "first" / "checkpoints" / "last.pt")
    assert last["step"] == 4 and last["carry_state"] is not None
    train(compose_config([*config, f"resume={tmp_path / 'first' / 'checkpoints' / 'last.pt'}"]), tmp_path / "second")
    whole = load_checkpoint_file(tmp_path / "whole" / "checkpoints" / "last.pt")["history"]
    second = load_checkpoint_file(tmp_path / "second" / "checkpoints" / "last.pt")["history"]
    assert [s for s, _ in second] == list(range(1, 9))
    assert [loss for _, loss in second] == pytest.approx([loss for _, loss in whole], rel=1e-6, abs=1e-7)


def test_samples_go_to_tensorboard(tmp_path, text_file):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(compose_config(tiny(text_file)), tmp_path)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0}).Reload()
    assert "samples/text_summary" in events.Tags()["tensors"]


def test_train_eval_sample_round_trip_through_the_cli(tmp_path, text_file):
    """Train (api.train is what `rnnzoo train` runs), then `rnnzoo eval` and `rnnzoo sample` as
    subprocesses; sample after deleting the data file: the vocabulary travels in the checkpoint."""
    run_dir = tmp_path / "run"
    final = train(compose_config(tiny(text_file, "trainer.max_steps=30", "trainer.eval_every=10",
                                      "trainer.lr=0.02")), run_dir)
    assert final["val/bpc"] == pytest.approx(final["val/loss"] / math.log(2))
    checkpoint = run_dir / "checkpoints" / "best.pt"
    result = run_cli("eval", f"checkpoint={checkpoint}", "split=val", "trainer.device=cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{final['val/perplexity']:.6g}" in result.stdout
    text_file.unlink()
    options = ["prompt=ROMEO:", "max_new_tokens=40", "temperature=0.8", "top_k=5", "top_p=0.9", "seed=3"]
    result = run_cli("sample", f"checkpoint={checkpoint}", *options, "trainer.device=cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.rstrip("\n")) == 40 and set(result.stdout) <= set(TEXT)
    again = "".join(sample({"checkpoint": str(checkpoint), "trainer": {"device": "cpu"}, "prompt": "ROMEO:",
                            "max_new_tokens": 40, "temperature": 0.8, "top_k": 5, "top_p": 0.9, "seed": 3}))
    assert result.stdout == again + "\n"  # the same seed draws the same text


def test_eval_scores_the_whole_split_when_asked(tmp_path, text_file):
    """`rnnzoo eval eval_tokens=all`: a run that validated on a prefix (task.eval_tokens) is
    scored on every token of the split; a number scores that many; bad values are refused."""
    from types import SimpleNamespace

    from rnnzoo.api import _set_eval_tokens, evaluate
    final = train(compose_config(tiny(text_file, "task.eval_tokens=16")), tmp_path / "run")
    base = {"checkpoint": str(tmp_path / "run" / "checkpoints" / "best.pt"), "split": "val",
            "trainer": {"device": "cpu"}}
    prefix = evaluate(base)["val/loss"]
    assert prefix == pytest.approx(final["val/loss"], rel=1e-6)  # the checkpoint's own prefix
    whole = evaluate({**base, "eval_tokens": "all"})["val/loss"]
    assert whole == pytest.approx(evaluate({**base, "eval_tokens": 10 ** 9})["val/loss"], rel=1e-6)
    assert whole != pytest.approx(prefix, rel=1e-4)
    assert evaluate({**base, "eval_tokens": 16})["val/loss"] == pytest.approx(prefix, rel=1e-6)
    for bad in ("some", -3, 1, True):
        with pytest.raises(RnnzooError, match="eval_tokens"):
            evaluate({**base, "eval_tokens": bad})
    with pytest.raises(RnnzooError, match="only a generation checkpoint"):
        _set_eval_tokens(SimpleNamespace(config=SimpleNamespace()), 5)


def test_embedding_std_sets_the_init_scale_of_the_language_model_embedding():
    from torch import nn

    from rnnzoo.tasks.generation import LanguageModel
    body = nn.Identity()
    body.output_size = 16
    torch.manual_seed(0)
    small = LanguageModel(body, 1000, 16, 0.0, False, embedding_std=0.02)
    default = LanguageModel(body, 1000, 16, 0.0, False)
    assert abs(small.embed[0].weight.std().item() - 0.02) < 0.002
    assert abs(default.embed[0].weight.std().item() - 1.0) < 0.05
