"""Issue 16, groups 1 and 5: bounded lengths at reading and inference time, the memory guard,
and unseen gold tags/labels scored as themselves (as conlleval and seqeval score them)."""

from __future__ import annotations

import logging
import random

import pytest
import torch

from rnnzoo.api import build, plain, train
from rnnzoo.training import memory

from .conftest import compose_config

WORDS = [f"w{i}" for i in range(30)]
QUICK = ["trainer.max_steps=2", "trainer.eval_every=2", "trainer.progress=false", "trainer.num_threads=1",
         "task.batch_size=8", "task.eval_batch_size=16", "dataset.cache=false"]
LSTM = ["model=lstm", "model.hidden_size=16"]


def words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(WORDS) for _ in range(n)]


def write_conll(path, sentences) -> None:
    path.write_text("".join("".join(f"{w} {t}\n" for w, t in zip(ws, ts)) + "\n" for ws, ts in sentences))


def tagged(rng: random.Random, n: int, types=("NP",)) -> tuple[list[str], list[str]]:
    tags, kind = [], rng.choice(types)
    for _ in range(n):
        tags.append(rng.choice(["O", f"B-{kind}", f"I-{kind}"]))
    return words(rng, n), tags


def tagging_config(tmp_path, *extra: str, long_words: int = 0, test_types=("NP",)) -> dict:
    rng = random.Random(0)
    train_set = [tagged(rng, rng.randint(3, 9)) for _ in range(40)]
    if long_words:
        train_set.insert(5, tagged(rng, long_words))
    write_conll(tmp_path / "train.conll", train_set)
    write_conll(tmp_path / "val.conll", [tagged(rng, 6) for _ in range(8)])
    write_conll(tmp_path / "test.conll", [tagged(rng, 6, test_types) for _ in range(8)])
    model = [] if any(o.startswith("model=") for o in extra) else LSTM
    return plain(compose_config(["task=tagging", *model, *QUICK, "dataset=conll_files",
                                 "dataset.tag_column=-1", f"dataset.train={tmp_path}/train.conll",
                                 f"dataset.valid={tmp_path}/val.conll", f"dataset.test={tmp_path}/test.conll",
                                 *extra]))


def warnings_with(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and text in r.getMessage()]


# --- group 1: lengths ---------------------------------------------------------------------------
def test_tagging_cuts_a_long_training_sentence_words_and_tags_together_with_one_summary_line(tmp_path, caplog):
    task, _, _ = build(tagging_config(tmp_path, long_words=5000))
    with caplog.at_level(logging.INFO, logger="rnnzoo"):
        items = task.encoded("train")
    assert max(len(ids) for ids, *_ in items) == 256
    assert all(len(ids) == len(tags) for ids, tags, *_ in items)
    assert warnings_with(caplog, "longer") == ["task.max_length=256: 1 of 41 training sentences were longer and "
                                               "were cut"]


def test_classification_of_a_one_megabyte_line_finishes_quickly(tmp_path, caplog):
    rng = random.Random(0)
    lines = [f"{i % 2}\t{' '.join(words(rng, 6))}\n" for i in range(40)]
    lines.insert(3, "1\t" + " ".join(words(rng, 280_000))[:1_000_000] + "\n")
    (tmp_path / "train.tsv").write_text("".join(lines))
    (tmp_path / "val.tsv").write_text("".join(lines[10:20]))
    config = compose_config(["task=classification", *LSTM, *QUICK, "dataset=labeled_files",
                             f"dataset.train={tmp_path}/train.tsv", f"dataset.valid={tmp_path}/val.tsv",
                             f"dataset.test={tmp_path}/val.tsv"])
    task, _, _ = build(plain(config))
    # the 1 MB line (280,000 words) is cut where it is read: no batch is longer than the limit
    # (it was: one batch of 280,000 steps, still in its first backward pass after 300 s)
    with caplog.at_level(logging.INFO, logger="rnnzoo"):
        assert max(len(ids) for ids, _ in task.encoded("train")) <= 256
    assert warnings_with(caplog, "training texts were longer") == [
        "task.max_length=256: 1 of 41 training texts were longer and were cut"]
    assert train(config, tmp_path / "run")["train/steps"] > 0  # trains on what was cut (the token cache)


def parallel_config(tmp_path, *extra: str) -> dict:
    rng = random.Random(0)
    pairs = [(" ".join(words(rng, 5)), " ".join(words(rng, 5))) for _ in range(30)]
    long = "\t".join(" ".join(words(rng, 130_000))[:500_000] for _ in range(2))
    lines = [f"{s}\t{t}\n" for s, t in pairs]
    (tmp_path / "train.tsv").write_text("".join(lines[:10]) + long + "\n" + "".join(lines[10:]))
    (tmp_path / "val.tsv").write_text("".join(lines[:8]))
    return plain(compose_config(["task=translation", "model=bahdanau", *QUICK, "model.hidden_size=16",
                                 "model.embedding_dim=8",
                                 "dataset=parallel_files", f"dataset.train={tmp_path}/train.tsv",
                                 f"dataset.valid={tmp_path}/val.tsv", f"dataset.test={tmp_path}/val.tsv", *extra]))


def test_translation_drops_a_long_training_pair_and_caps_every_output(tmp_path, caplog):
    task, network, _ = build(parallel_config(tmp_path, "task.max_target_length=6", "task.max_length_ratio=50"))
    with caplog.at_level(logging.INFO, logger="rnnzoo"):
        items = task.encoded("train")
    assert len(items) == 30  # 31 pairs, the long one dropped (fairseq drops, it does not cut)
    assert warnings_with(caplog, "longer") == [
        "task.max_source_length=256, task.max_target_length=6: 1 of 31 training pairs were longer and were dropped"]
    batch = task.eval_batches("val")[0]
    found = task.decode(network.eval(), batch.source, batch.source_lengths)
    assert max(len(tokens) for tokens in found.tokens) <= 6  # 6 decoder steps at most


def test_translate_cuts_a_20000_character_line_with_a_warning(tmp_path, caplog):
    task, network, _ = build(parallel_config(tmp_path, "task.max_source_length=64"))
    line = " ".join(words(random.Random(1), 6000))[:20_000]
    with caplog.at_level(logging.WARNING, logger="rnnzoo"):
        outputs = list(task.translate(network.eval(), [line], torch.device("cpu")))
    assert len(outputs) == 1  # was: still running after 150 s; now the source is cut, the output capped
    assert len(outputs[0].split()) <= task.config.max_target_length
    assert warnings_with(caplog, "an input of") == [
        f"an input of {len(line.split()):,} tokens is longer than task.max_source_length=64: "
        "only its first 64 are read"]


def test_attention_models_cut_at_max_positions_never_an_index_error(tmp_path, caplog):
    config = tagging_config(tmp_path, "model=transformer", "model.shape=encoder", "model.d_model=16",
                            "model.num_heads=2", "model.max_positions=16", long_words=40)
    task, network, _ = build(config)
    assert max(len(ids) for ids, *_ in task.encoded("train")) == 16
    with caplog.at_level(logging.WARNING, logger="rnnzoo"):
        tags = next(task.predict(network.eval(), [" ".join(["w1"] * 100)], torch.device("cpu"))).split()
    assert len(tags) == 16
    assert "task.max_length=256 (model.max_positions=16)" in warnings_with(caplog, "an input of")[0]


def test_bert_reads_framed_sentences_within_its_positions(tmp_path):
    config = tagging_config(tmp_path, "model=bert", "model.hidden_size=16", "model.num_layers=1",
                            "model.num_heads=2", "model.d_ff=32", "task.max_length=12", long_words=40)
    task, network, _ = build(config)
    ids, tags, _, starts = max(task.encoded("train"), key=lambda item: len(item[0]))
    vocab = task.tokenizer.vocab
    assert len(ids) == 12 and ids[0] == vocab.bos_id and ids[-1] == vocab.eos_id and len(tags) == len(starts) == 10


def test_sample_reads_only_the_end_of_a_long_prompt(tmp_path, caplog):
    from rnnzoo.tasks import generation
    (tmp_path / "train.txt").write_text("abc def\n" * 200)
    config = plain(compose_config(["task=generation", "model=lstm", "model.hidden_size=8", "dataset=text_files",
                                   f"dataset.train={tmp_path}/train.txt", "dataset.cache=false"]))
    task, network, _ = build(config)
    with caplog.at_level(logging.WARNING, logger="rnnzoo"):
        ids = task._prompt_ids("abcdef " * 2000)
    assert len(ids) == generation.MAX_PROMPT_TOKENS
    assert warnings_with(caplog, "a prompt of") == ["a prompt of 14,000 tokens: only its last 4,096 are read"]


# --- group 1: the memory guard -------------------------------------------------------------------
def test_memory_guard_passes_the_defaults_and_refuses_a_huge_batch(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2 * 10**9)
    rng = random.Random(0)
    write_conll(tmp_path / "long.conll", [tagged(rng, 3000) for _ in range(64)])
    base = ["model.hidden_size=256", f"dataset.train={tmp_path}/long.conll", "task.batch_size=32"]
    task, network, _ = build(tagging_config(tmp_path, *base))
    memory.check_memory(task, network, torch.device("cpu"))  # 32 x 256 tokens: well under 2 GB
    task, network, _ = build(tagging_config(tmp_path, *base[:2], "task.batch_size=64", "task.max_length=3000"))
    needed, batch_size, longest = memory.estimate_bytes(task, network, torch.device("cpu"))
    assert (batch_size, longest) == (64, 3000) and needed > 2 * 10**9
    with pytest.raises(memory.MemoryGuardError, match=r"lower task.batch_size=64 or task.max_length=3000"):
        memory.check_memory(task, network, torch.device("cpu"))


def test_memory_estimate_extrapolates_what_it_measures(tmp_path):
    """The fit from 16, 32, 64 tokens predicts the bytes measured on the whole 200-token example."""
    task, network, _ = build(tagging_config(tmp_path, "task.batch_size=1", long_words=200))
    estimated, _, longest = memory.estimate_bytes(task, network, torch.device("cpu"))
    [(_, whole)] = task.memory_probe([longest])[2]
    measured = memory.saved_bytes(task, network, whole) * memory.BACKWARD_FACTOR
    assert longest == 200 and estimated == pytest.approx(measured, rel=0.1)


# --- group 5: unseen gold symbols -------------------------------------------------------------------
def test_unseen_chunk_types_score_as_seqeval_scores_them(tmp_path, caplog):
    seqeval = pytest.importorskip("seqeval.metrics")
    task, _, _ = build(tagging_config(tmp_path, test_types=("NP", "PP")))
    with caplog.at_level(logging.WARNING, logger="rnnzoo"):
        batches = task.eval_batches("test")
    [warning] = warnings_with(caplog, "never seen in training")
    assert "B-PP" in warning and task.unseen_tags == ["B-PP", "I-PP"]
    totals = {"chunks_correct": 0, "chunks_predicted": 0, "chunks_gold": 0}
    gold_names, predicted_names = [], []
    for batch in batches:
        predicted = torch.randint(0, len(task.tags), batch.targets.shape, generator=torch.Generator().manual_seed(1))
        predicted = torch.where(torch.rand(batch.targets.shape) < 0.5, batch.targets.clamp(min=0), predicted)
        for name, value in task.prediction_stats(predicted, batch).items():
            if name in totals:
                totals[name] += int(value)
        for p, g, n in zip(predicted.tolist(), batch.targets.tolist(), batch.mask.sum(1).tolist()):
            predicted_names.append(task.tag_names(p[:n]))
            gold_names.append(task.tag_names(g[:n]))
    assert any(tag.endswith("PP") for sentence in gold_names for tag in sentence)
    ours = task.metrics({"loss_sum": 0, "count": 1, **totals})["f1"]
    assert ours == pytest.approx(seqeval.f1_score(gold_names, predicted_names))


def test_unseen_classification_labels_are_named_and_count_in_macro_f1(tmp_path, caplog):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(0)
    (tmp_path / "train.tsv").write_text("".join(f"{'ab'[i % 2]}\t{' '.join(words(rng, 4))}\n" for i in range(30)))
    (tmp_path / "test.tsv").write_text("".join(f"{'abc'[i % 3]}\t{' '.join(words(rng, 4))}\n" for i in range(9)))
    config = plain(compose_config(["task=classification", *LSTM, *QUICK, "dataset=labeled_files",
                                   f"dataset.train={tmp_path}/train.tsv", f"dataset.valid={tmp_path}/test.tsv",
                                   f"dataset.test={tmp_path}/test.tsv"]))
    task, network, _ = build(config)
    with caplog.at_level(logging.WARNING, logger="rnnzoo"):
        [batch] = task.eval_batches("test")
    assert warnings_with(caplog, "never seen")[0].endswith(": c (3)")
    predicted = torch.tensor([i % 2 for i in range(9)])
    scores = task.metrics({"loss_sum": 0, "count": 1, **{k: float(v) for k, v in
                                                         task.prediction_stats(predicted, batch.targets).items()}})
    names = lambda ids: [task.labels.itos[i] if i >= 0 else task.unseen_labels[-2 - i] for i in ids]  # noqa: E731
    gold, pred = names(batch.targets.tolist()), names(predicted.tolist())
    assert scores["macro_f1"] == pytest.approx(metrics.f1_score(gold, pred, average="macro"))
    assert scores["accuracy"] == pytest.approx(metrics.accuracy_score(gold, pred))
