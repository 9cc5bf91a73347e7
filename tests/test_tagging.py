"""The tagging task: CRF against brute force, chunk F1 against seqeval, padding invariance,
and train -> eval -> predict through the real CLI on a tiny CoNLL file."""

from __future__ import annotations

import itertools
import json
import random

import pytest
import torch

from rnnzoo import api
from rnnzoo.errors import RnnzooError
from rnnzoo.models.traits import model_traits
from rnnzoo.nn.crf import CRF
from rnnzoo.tasks.tagging import chunk_scores, chunks
from rnnzoo.tasks.text import TextBatch

from .conftest import compose_config, run_cli

WORDS = ["the", "cat", "dog", "sat", "ran", "on", "a", "mat", "big", "red", "quickly", "home"]
TAGS = {"the": "B-NP", "a": "B-NP", "big": "I-NP", "red": "I-NP", "cat": "I-NP", "dog": "I-NP",
        "mat": "I-NP", "home": "B-NP", "sat": "B-VP", "ran": "B-VP", "quickly": "B-ADVP", "on": "B-PP"}


def conll_sentences(count: int, seed: int) -> list[list[tuple[str, str]]]:
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        words = ["the", rng.choice(["big", "red"]), rng.choice(["cat", "dog"]), rng.choice(["sat", "ran"])]
        words += rng.choice([["on", "a", "mat"], ["quickly"], ["home"], []])
        sentences.append([(w, TAGS[w]) for w in words])
    return sentences


def write_conll(path, sentences) -> str:
    path.write_text("\n\n".join("\n".join(f"{w} X {t}" for w, t in s) for s in sentences) + "\n")
    return str(path)


def tiny_files(tmp_path) -> list[str]:
    return [f"dataset.train={write_conll(tmp_path / 'train.txt', conll_sentences(20, 0))}",
            f"dataset.valid={write_conll(tmp_path / 'valid.txt', conll_sentences(6, 1))}",
            f"dataset.test={write_conll(tmp_path / 'test.txt', conll_sentences(6, 2))}"]


TINY_TAGGING = ["task=tagging", "dataset=conll_files", "model.hidden_size=16", "model.bidirectional=true",
                "task.embedding_dim=16", "task.batch_size=4", "task.char_dim=8", "task.char_filters=8",
                "task.crf=true", "trainer.max_steps=6", "trainer.eval_every=3", "trainer.progress=false",
                "trainer.device=cpu"]


# --- the CRF ------------------------------------------------------------------------------------
def brute_force(crf: CRF, emissions: torch.Tensor, length: int) -> tuple[torch.Tensor, list[int]]:
    """log Z and the best path of one sequence, over all K^length tag sequences."""
    mask = torch.ones(1, length, dtype=torch.bool)
    scores = {path: float(crf.score(emissions[None, :length], torch.tensor([path]), mask))
              for path in itertools.product(range(crf.num_tags), repeat=length)}
    log_z = torch.logsumexp(torch.tensor(list(scores.values())), 0)
    return log_z, list(max(scores, key=scores.get))


@torch.no_grad()
def test_crf_matches_brute_force_enumeration():
    torch.manual_seed(0)
    crf = CRF(3)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    emissions = torch.randn(3, 4, 3)  # (B, T, K)
    lengths = torch.tensor([4, 2, 1])
    mask = torch.arange(4) < lengths[:, None]
    log_z = crf.log_partition(emissions, mask)
    decoded = crf.decode(emissions, mask)
    for b, n in enumerate(lengths.tolist()):
        expected_z, expected_path = brute_force(crf, emissions[b], n)
        assert torch.allclose(log_z[b], expected_z, atol=1e-5)
        assert decoded[b, :n].tolist() == expected_path
        assert decoded[b, n:].eq(0).all()
    # the probabilities of every tag sequence of the 2-token sentence sum to one
    paths = torch.tensor(list(itertools.product(range(3), repeat=2)))  # (9, 2)
    ll = crf.log_likelihood(emissions[1:2, :2].expand(9, 2, 3), paths, torch.ones(9, 2, dtype=torch.bool))
    assert torch.allclose(ll.exp().sum(), torch.tensor(1.0), atol=1e-5)


# --- chunk metrics agree with seqeval ----------------------------------------------------------------
def test_chunk_f1_agrees_with_seqeval():
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = random.Random(0)
    tagset = ["O", "B-NP", "I-NP", "B-VP", "I-VP", "E-NP", "S-VP", "I-PP"]
    for _ in range(50):
        gold = [[rng.choice(tagset) for _ in range(rng.randint(1, 8))] for _ in range(5)]
        pred = [[rng.choice(tagset) for _ in s] for s in gold]
        found = [set(chunks(p)) & set(chunks(g)) for p, g in zip(pred, gold)]
        ours = chunk_scores(sum(map(len, found)), sum(len(chunks(p)) for p in pred), sum(len(chunks(g)) for g in gold))
        assert ours["precision"] == pytest.approx(seqeval.precision_score(gold, pred), abs=1e-12)
        assert ours["recall"] == pytest.approx(seqeval.recall_score(gold, pred), abs=1e-12)
        assert ours["f1"] == pytest.approx(seqeval.f1_score(gold, pred), abs=1e-12)


def built(tmp_path, *overrides: str):
    config = api.plain(compose_config([*TINY_TAGGING, *tiny_files(tmp_path), *overrides]))
    task, network, _ = api.build(config)
    return task, network.eval()


def test_task_metrics_agree_with_seqeval_on_the_same_predictions(tmp_path):
    seqeval = pytest.importorskip("seqeval.metrics")
    task, network = built(tmp_path)
    totals: dict[str, float] = {}
    gold_all, pred_all = [], []
    generator = torch.Generator().manual_seed(0)
    for batch in task.eval_batches("test"):
        predicted = torch.randint(0, len(task.tags), batch.targets.shape, generator=generator)
        for key, value in task.prediction_stats(predicted, batch).items():
            totals[key] = totals.get(key, 0) + float(value)
        for p, g, n in zip(predicted.tolist(), batch.targets.tolist(), batch.lengths.tolist()):
            pred_all.append(task.tag_names(p[:n]))
            gold_all.append(task.tag_names(g[:n]))
    metrics = task.metrics({"loss_sum": 0.0, "count": 1.0, **totals})
    assert metrics["f1"] == pytest.approx(seqeval.f1_score(gold_all, pred_all), abs=1e-12)
    assert metrics["precision"] == pytest.approx(seqeval.precision_score(gold_all, pred_all), abs=1e-12)
    assert metrics["recall"] == pytest.approx(seqeval.recall_score(gold_all, pred_all), abs=1e-12)


# --- padding invariance --------------------------------------------------------------------------
@pytest.mark.parametrize("crf", [True, False])
def test_a_sentence_gets_the_same_tags_alone_and_in_a_padded_batch(tmp_path, crf):
    torch.manual_seed(0)
    task, network = built(tmp_path, f"task.crf={str(crf).lower()}")
    short = ["the", "cat", "sat"]
    long = ["the", "big", "red", "dog", "ran", "on", "a", "mat", "quickly"]
    with torch.no_grad():
        alone = list(task.predict(network, [" ".join(short)], torch.device("cpu")))
        together = list(task.predict(network, [" ".join(long), " ".join(short), ""], torch.device("cpu")))
        batch = task.collate([task.encode(s) for s in [_sentence(short), _sentence(long)]])
        single = task.collate([task.encode(_sentence(short))])
        assert torch.allclose(network(batch)[0, :3], network(single)[0], atol=1e-5)
    assert together[1] == alone[0] and together[2] == ""
    assert len(alone[0].split()) == 3 and set(alone[0].split()) <= set(task.tags.itos)


def _sentence(words):
    from rnnzoo.data import TaggedSentence
    return TaggedSentence(words, ["O"] * len(words))


# --- bad input ------------------------------------------------------------------------------------
def test_a_malformed_line_names_file_and_line(tmp_path):
    files = tiny_files(tmp_path)
    (tmp_path / "train.txt").write_text("the X B-NP\ncat X\n")
    config = api.plain(compose_config([*TINY_TAGGING, *files]))
    with pytest.raises(RnnzooError, match=r"train\.txt.*2"):
        api.build(config)


def test_an_incompatible_model_fails_with_a_sentence(tmp_path):
    overrides = [o for o in TINY_TAGGING if not o.startswith("model.")]
    config = api.plain(compose_config([*overrides, *tiny_files(tmp_path), "model=hopfield"]))
    with pytest.raises(RnnzooError, match="cannot serve task 'tagging'"):
        api.build(config)


def test_character_tokens_are_refused_with_a_reason(tmp_path):
    config = api.plain(compose_config([*TINY_TAGGING, *tiny_files(tmp_path), "task.tokenizer=char"]))
    with pytest.raises(RnnzooError, match="must be word, bpe or wordpiece"):
        api.build(config)


@pytest.mark.parametrize("level", ["bpe", "wordpiece"])
def test_subword_tagging_tags_each_word_by_its_first_piece(tmp_path, level):
    torch.manual_seed(0)
    task, network = built(tmp_path, f"task.tokenizer={level}", "task.vocab_size=300", "task.char_dim=0")
    words = "the big catdog ran home".split()
    ids, _, _, starts = task.encode(_sentence(words))
    assert len(starts) == 5 and len(ids) > 5  # "catdog" is unseen: several pieces
    assert task.tokenizer.decode(ids[starts[2]:starts[3]]).strip() == "catdog"
    lines = [" ".join(words), "the cat sat"]
    with torch.no_grad():
        together = list(task.predict(network, lines, torch.device("cpu")))
        alone = list(task.predict(network, lines[1:], torch.device("cpu")))
    assert [len(t.split()) for t in together] == [5, 3] and together[1] == alone[0]
    out = task.step(network.train(), next(task.train_batches(0)), None)
    assert torch.isfinite(out.loss)
    assert set(task.evaluate(network, "val", torch.device("cpu"))) >= {"accuracy", "f1"}


def test_text_batches_refuse_truncated_bptt():
    batch = TextBatch(torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, 5, dtype=torch.long),
                      torch.ones(1, 5, dtype=torch.bool), torch.tensor([5]))
    assert batch.windows(None) == [batch]
    with pytest.raises(RnnzooError, match="tbptt_steps=null"):
        batch.windows(2)


# --- the CLI round trip ---------------------------------------------------------------------------
def test_train_eval_predict_round_trip_without_the_data(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("train", *TINY_TAGGING, *tiny_files(tmp_path), f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    assert "test/f1" in result.stdout and "test/accuracy" in result.stdout
    checkpoint = run_dir / "checkpoints" / "best.pt"
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert payload["task"]["tags"]["tokens"] and payload["task"]["chars"]["tokens"]

    evaluated = api.evaluate(compose_config([f"checkpoint={checkpoint}", "split=test", "trainer.device=cpu"], "eval"))
    trained = json.loads((run_dir / "metrics.json").read_text())
    assert evaluated == pytest.approx({k: v for k, v in trained.items() if k.startswith("test/")})

    for name in ("train.txt", "valid.txt", "test.txt"):
        (tmp_path / name).unlink()
    lines = tmp_path / "lines.txt"
    lines.write_text("the cat sat on a mat\n\nthe zebra ran home\n")
    result = run_cli("predict", f"checkpoint={checkpoint}", f"input={lines}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    outputs = result.stdout.splitlines()
    assert [len(line.split()) for line in outputs] == [6, 0, 4]
    assert set(" ".join(outputs).split()) <= set(TAGS.values())


@pytest.mark.parametrize("model", api.models_fitting("tagging"))
def test_every_fitting_model_tags_and_learns(tmp_path, model):
    overrides = [o for o in TINY_TAGGING if not o.startswith("model.")]
    if "token_input" in model_traits(model):  # it owns its embeddings: no character features beside them
        overrides = [o for o in overrides if not o.startswith("task.char_")]
    config = api.plain(compose_config([*overrides, *tiny_files(tmp_path), f"model={model}"]))
    task, network, _ = api.build(config)
    out = task.step(network.train(), next(task.train_batches(0)), None)
    out.loss.backward()
    assert torch.isfinite(out.loss) and all(p.grad is not None for p in network.head.parameters())
