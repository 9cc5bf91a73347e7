"""The classification task: poolings blind to padding, bidirectional "last" pooling against
nn.LSTM's h_n, macro-F1 against scikit-learn, and train -> eval -> predict through the CLI."""

from __future__ import annotations

import importlib.util
import json
import random

import pytest
import torch

from rnnzoo import api
from rnnzoo.data import LabeledText
from rnnzoo.errors import RnnzooError
from rnnzoo.tasks.classification import POOLINGS, macro_f1

from .conftest import ROOT, compose_config, run_cli

POSITIVE = ["good", "great", "fine", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "dull", "poor", "boring"]
FILLER = ["the", "film", "was", "really", "quite", "a", "story"]


def labeled_lines(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        label = rng.choice(["pos", "neg"])
        words = [rng.choice(FILLER) for _ in range(rng.randint(1, 6))]
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label == "pos" else NEGATIVE))
        lines.append(f"{label}\t{' '.join(words)}")
    return lines


def tiny_files(tmp_path) -> list[str]:
    overrides = []
    for split, option, count in [("train", "train", 30), ("valid", "valid", 8), ("test", "test", 8)]:
        path = tmp_path / f"{split}.txt"
        path.write_text("\n".join(labeled_lines(count, len(overrides))) + "\n")
        overrides.append(f"dataset.{option}={path}")
    return overrides


TINY_CLASSIFICATION = ["task=classification", "dataset=labeled_files", "model.hidden_size=16",
                       "model.bidirectional=true", "task.embedding_dim=16", "task.batch_size=4",
                       "trainer.max_steps=6", "trainer.eval_every=3", "trainer.progress=false",
                       "trainer.device=cpu"]


def built(tmp_path, *overrides: str):
    config = api.plain(compose_config([*TINY_CLASSIFICATION, *tiny_files(tmp_path), *overrides]))
    task, network, _ = api.build(config)
    return task, network.eval()


@pytest.mark.parametrize("vocab, trained", [("task.min_freq=1", False), ("task.max_vocab=4", True)])
def test_the_unknown_word_row_starts_at_zero_and_moves_only_when_trained(tmp_path, vocab, trained):
    """min_freq=1 gives every training word its own row, so <unk> never appears in training: its
    row starts at 0 and stays there (not a random vector that unknown test words would read,
    different for every seed). A vocabulary that leaves words out trains it from 0."""
    from rnnzoo.training.checkpoint import load_checkpoint_file
    task, network = built(tmp_path, vocab)
    unk = task.tokenizer.vocab.unk_id
    assert network.embed.words.weight[unk].abs().sum() == 0 and network.embed.words.weight[unk + 1].abs().sum() > 0
    api.train(compose_config([*TINY_CLASSIFICATION, *tiny_files(tmp_path), vocab]), tmp_path / "run")
    weights = load_checkpoint_file(tmp_path / "run" / "checkpoints" / "last.pt")["model"]
    row = next(value for key, value in weights.items() if key.endswith("embed.words.weight"))[unk]
    assert (row.abs().sum() > 0) == trained


@pytest.mark.parametrize("pooling", POOLINGS)
def test_every_pooling_gives_a_text_the_same_logits_alone_and_padded(tmp_path, pooling):
    torch.manual_seed(0)
    task, network = built(tmp_path, f"task.pooling={pooling}")
    short = task.encode(LabeledText("pos", ["good", "film"]))
    long = task.encode(LabeledText("neg", "the film was really quite a boring story".split()))
    with torch.no_grad():
        together = network(task.collate([long, short]))  # (2, C)
        alone = network(task.collate([short]))  # (1, C)
    assert torch.allclose(together[1], alone[0], atol=1e-5)


def test_last_pooling_of_a_bidirectional_lstm_is_forward_last_and_backward_first(tmp_path):
    task, network = built(tmp_path, "task.pooling=last")
    batch = task.collate([task.encode(LabeledText("pos", ["a", "lovely", "story"]))])
    with torch.no_grad():
        features, _ = network.body(network.embed(batch), batch.lengths)  # (1, 3, 2H)
        pooled = network.pool(features, batch.mask, batch.lengths)  # (1, 2H)
        _, (h_n, _) = network.body.rnn(network.embed(batch))  # h_n (2, 1, H): forward, backward
    assert torch.allclose(pooled[0], torch.cat([h_n[0, 0], h_n[1, 0]]), atol=1e-6)


def test_macro_f1_agrees_with_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(0)
    for _ in range(20):
        gold = [rng.randrange(4) for _ in range(30)]
        pred = [rng.choice([0, 1, 2]) for _ in gold]  # class 3 never predicted, sometimes never gold
        totals = {}
        for c in range(5):  # class 4: in neither, left out of the average
            totals.update({f"tp_{c}": sum(p == g == c for p, g in zip(pred, gold)),
                           f"pred_{c}": pred.count(c), f"gold_{c}": gold.count(c)})
        assert macro_f1(totals, 5) == pytest.approx(metrics.f1_score(gold, pred, average="macro"), abs=1e-12)


def test_subword_tokenizers_train_on_the_training_split(tmp_path):
    task, network = built(tmp_path, "task.tokenizer=wordpiece", "task.vocab_size=60")
    assert task.tokenizer.level == "wordpiece" and len(task.tokenizer) <= 60
    batch = task.eval_batches("val")[0]
    assert network(batch).shape == (len(batch.lengths), 2)


def test_a_malformed_line_names_file_and_line(tmp_path):
    files = tiny_files(tmp_path)
    (tmp_path / "train.txt").write_text("pos\tgood film\nneg\n")
    config = api.plain(compose_config([*TINY_CLASSIFICATION, *files]))
    with pytest.raises(RnnzooError, match=r"train\.txt.*2"):
        api.build(config)


def test_an_unknown_pooling_is_refused(tmp_path):
    config = api.plain(compose_config([*TINY_CLASSIFICATION, *tiny_files(tmp_path), "task.pooling=median"]))
    with pytest.raises(RnnzooError, match="pooling must be one of"):
        api.build(config)


def test_train_eval_predict_round_trip_without_the_data(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("train", *TINY_CLASSIFICATION, *tiny_files(tmp_path), "task.pooling=attention",
                     f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    assert "test/accuracy" in result.stdout and "test/macro_f1" in result.stdout
    checkpoint = run_dir / "checkpoints" / "best.pt"
    evaluated = api.evaluate(compose_config([f"checkpoint={checkpoint}", "split=test", "trainer.device=cpu"], "eval"))
    trained = json.loads((run_dir / "metrics.json").read_text())
    assert evaluated == pytest.approx({k: v for k, v in trained.items() if k.startswith("test/")})

    for name in ("train.txt", "valid.txt", "test.txt"):
        (tmp_path / name).unlink()
    # what `rnnzoo predict` calls (the tagging test runs the verb itself)
    config = compose_config([f"checkpoint={checkpoint}", "trainer.device=cpu"], "predict")
    outputs = list(api.predict(config, ["a lovely film\n", "\n", "an unseen zebra\n"]))
    assert len(outputs) == 3 and outputs[1] == "" and {outputs[0], outputs[2]} <= {"pos", "neg"}


@pytest.mark.parametrize("model", api.models_fitting("classification"))
def test_every_fitting_model_classifies_and_learns(tmp_path, model):
    overrides = [o for o in TINY_CLASSIFICATION if not o.startswith("model.")]
    config = api.plain(compose_config([*overrides, *tiny_files(tmp_path), f"model={model}"]))
    task, network, _ = api.build(config)
    out = task.step(network.train(), next(task.train_batches(0)), None)
    out.loss.backward()
    assert torch.isfinite(out.loss) and all(p.grad is not None for p in network.head.parameters())


def sentiment_subsets():
    spec = importlib.util.spec_from_file_location("sentiment_subsets", ROOT / "scripts" / "sentiment_subsets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sentiment_subsets_scores_each_arm_on_negated_contrasted_and_other_sentences(tmp_path, capsys):
    script = sentiment_subsets()
    assert [script.subset_of(s) for s in ("it is n't good but fun", "dull , yet fun", "a lovely film")] == \
        ["negation", "contrast", "rest"]
    api.train(compose_config([*TINY_CLASSIFICATION, *tiny_files(tmp_path)]), tmp_path / "run")
    checkpoint = str(tmp_path / "run" / "checkpoints" / "best.pt")
    lines = ["pos not a bad film", "neg not good", "pos dull but lovely", "neg the film was awful",
             "pos a great story", "pos quite fine"]
    (tmp_path / "sst.txt").write_text("\n".join(lines) + "\n")
    script.main(["--arm", f"one={checkpoint}", "--arm", f"two={checkpoint},{checkpoint}", "--data",
                 str(tmp_path / "sst.txt")])
    predicted = list(api.predict({"checkpoint": checkpoint, "trainer": {"device": "cpu"}},
                                 [line.split(" ", 1)[1] for line in lines]))
    rest = 100 * sum(p == line.split()[0] for p, line in zip(predicted[3:], lines[3:])) / 3
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| subset | sentences | one (1) | two (2) |"
    assert table[2].startswith("| negation | 2 |") and table[3].startswith("| contrast | 1 |")
    assert table[4] == f"| rest | 3 | {rest:.2f} | {rest:.2f} ± 0.00 |"  # two seeds of one checkpoint agree
    with pytest.raises(SystemExit):
        script.main(["--arm", "bad", "--data", str(tmp_path / "sst.txt")])
    assert "expected NAME=CHECKPOINT" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"sst.txt:1: expected 'LABEL sentence'"):
        (tmp_path / "sst.txt").write_text("pos\n")
        script.main(["--arm", f"one={checkpoint}", "--data", str(tmp_path / "sst.txt")])
