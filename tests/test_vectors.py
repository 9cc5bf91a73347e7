"""Pretrained word vectors: every file format read alike, the lower-case fallback, coverage
counted by hand, vocabulary growth, frozen and lr-scaled embeddings, clear errors, and one CLI
run per task kind whose checkpoint predicts without the vectors file."""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest
import torch

from rnnzoo import api
from rnnzoo.data import vectors as vectors_module
from rnnzoo.data.readers import DataError
from rnnzoo.data.vectors import match_words, read_vectors
from rnnzoo.errors import RnnzooError
from rnnzoo.tasks.embeddings import set_lr_scale
from rnnzoo.training.checkpoint import load_checkpoint_file
from rnnzoo.training.config import TrainerConfig
from rnnzoo.training.optim import build_optimizer

from .conftest import compose_config, run_cli

DIM = 4
WORDS = ["good", "film", "great", "zebra", "yak"]  # the file's words, in file order
VECTORS = {w: np.arange(DIM, dtype=np.float32) / 8 + i for i, w in enumerate(WORDS)}  # exact in float32 text


def write_text(path, header: bool = True, trailing: str = "") -> str:
    lines = [f"{len(WORDS)} {DIM}"] if header else []
    lines += [w + " " + " ".join(f"{x:g}" for x in VECTORS[w]) + trailing for w in WORDS]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def write_binary(path) -> str:
    body = b"".join(w.encode() + b" " + struct.pack(f"<{DIM}f", *VECTORS[w]) + b"\n" for w in WORDS)
    path.write_bytes(f"{len(WORDS)} {DIM}\n".encode() + body)
    return str(path)


# --- reading -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["word2vec_text", "glove", "fasttext", "binary"])
def test_every_format_gives_the_same_vectors_and_keeps_only_the_words_asked(tmp_path, kind):
    path = {"word2vec_text": lambda: write_text(tmp_path / "v.txt"),
            "glove": lambda: write_text(tmp_path / "v.txt", header=False),
            "fasttext": lambda: write_text(tmp_path / "v.vec", trailing=" "),
            "binary": lambda: write_binary(tmp_path / "v.txt")}[kind]()  # the name never decides
    read = read_vectors(path, ["Good", "film", "absent"])
    assert read.format == ("binary" if kind == "binary" else "text") and read.dim == DIM
    assert sorted(read.vectors) == ["film", "good"]  # "good" for Good's fallback; the rest never kept
    for word in read.vectors:
        np.testing.assert_array_equal(read.vectors[word], VECTORS[word])


def test_a_large_file_shows_a_progress_bar(tmp_path, monkeypatch, capsys):
    path = write_text(tmp_path / "v.txt")
    read_vectors(path, ["good"])
    assert "reading v.txt" not in capsys.readouterr().err  # a small file: none
    monkeypatch.setattr(vectors_module, "PROGRESS_MIN_BYTES", 1)
    read_vectors(path, ["good"])
    assert "reading v.txt" in capsys.readouterr().err


def test_extra_words_come_in_file_order_and_lower_case_only_for_a_lowercasing_task(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("Apple 1 2\nfilm 3 4\nbanana 5 6\ncherry 7 8\n")
    assert read_vectors(path, ["film"], extra=2).extra == ["Apple", "banana"]
    assert read_vectors(path, ["film"], extra=2, lowercase=True).extra == ["banana", "cherry"]


def test_a_word_holding_spaces_takes_the_last_numbers(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("film 3 4\nnew york 1 2\n")  # the first line gives the dimension
    assert read_vectors(path, ["new york"]).vectors["new york"].tolist() == [1, 2]


def test_lookup_is_the_word_then_its_lower_case_form():
    vectors = {"good": np.zeros(2), "Paris": np.ones(2), "paris": np.zeros(2)}
    match = match_words(["<pad>", "Good", "Paris", "zebra"], vectors, first=1)
    assert match.ids == [1, 2] and match.keys == ["good", "Paris"] and match.lowered == 1


@pytest.mark.parametrize("content, where", [
    ("3 2\ngood 1 2\nfilm 1\nbad 1 2\n", ":3: expected a word and 2 numbers"),
    ("good 1 2\nfilm 1 x\n", ":2: a vector's numbers must parse as floats"),
    ("good\n", ":1: expected a 'COUNT DIM' header"),
])
def test_a_malformed_text_line_names_file_and_line(tmp_path, content, where):
    path = tmp_path / "v.txt"
    path.write_text(content)
    with pytest.raises(DataError, match=re.escape(f"{path}{where}")):
        read_vectors(path, ["good", "film", "bad"])


def test_a_truncated_binary_file_names_the_entry(tmp_path):
    path = tmp_path / "v.bin"
    path.write_bytes(open(write_binary(tmp_path / "whole.bin"), "rb").read()[:-10])
    with pytest.raises(DataError, match=r"v\.bin: the file ends inside entry 5 of the 5"):
        read_vectors(path, ["good"])


def test_a_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_vectors(tmp_path / "absent.txt", ["good"])


# --- a classification task with vectors -------------------------------------------------------
def classification_files(tmp_path) -> list[str]:
    """train: types good film bad Great plot (film twice): 6 tokens, 3 types found by hand."""
    (tmp_path / "train.txt").write_text("pos\tgood film\nneg\tbad film\npos\tGreat plot\n")
    for split in ("valid", "test"):
        (tmp_path / f"{split}.txt").write_text("pos\tgood zebra\nneg\tbad yak\n")
    return [f"dataset.{split}={tmp_path}/{split}.txt" for split in ("train", "valid", "test")]


CLASSIFY = ["task=classification", "dataset=labeled_files", "model.hidden_size=8", f"task.embedding_dim={DIM}",
            "task.batch_size=2", "trainer.max_steps=4", "trainer.eval_every=2", "trainer.progress=false",
            "trainer.device=cpu", "dataset.cache=false"]


def classify(tmp_path, *overrides: str):
    return compose_config([*CLASSIFY, *classification_files(tmp_path),
                           f"task.pretrained_embeddings={write_text(tmp_path / 'v.txt')}", *overrides])


def test_coverage_by_hand_and_the_rows_copied(tmp_path, caplog):
    with caplog.at_level("INFO", logger="rnnzoo"):
        task, network, _ = api.build(api.plain(classify(tmp_path)))
    # types good, film, bad, Great, plot: good, film and Great (as great) found; tokens 1+2+1 of 6
    assert "3 of 5 vocabulary types found (60.0%, 1 by lower case); 4 of 6 training tokens (66.7%)" in caplog.text
    vocab, table = task.tokenizer.vocab, network.embed.words.weight.detach()
    assert torch.equal(table[vocab.stoi["Great"]], torch.from_numpy(VECTORS["great"]))
    assert torch.equal(table[vocab.stoi["film"]], torch.from_numpy(VECTORS["film"]))
    assert not table[0].any()  # the padding row


def test_the_vocabulary_grows_by_the_first_words_it_lacks(tmp_path, caplog):
    with caplog.at_level("INFO", logger="rnnzoo"):
        task, network, _ = api.build(api.plain(classify(tmp_path, "task.extend_vocab_from_vectors=2")))
    vocab = task.tokenizer.vocab
    assert vocab.itos[-2:] == ["great", "zebra"] and network.embed.words.num_embeddings == len(vocab)
    assert vocab.stoi["zebra"] in task.encoded("val")[0][0]  # a validation word unseen in training
    assert torch.equal(network.embed.words.weight[vocab.stoi["zebra"]].detach(), torch.from_numpy(VECTORS["zebra"]))
    assert "2 words added from the file" in caplog.text


def test_the_token_cache_keeps_the_vocabulary_the_vectors_grow_apart(tmp_path):
    cached = ["dataset.cache=true", f"dataset.cache_dir={tmp_path / 'cache'}"]
    for extend, unseen in ((0, True), (2, False), (0, True)):  # the plain vocabulary, then a grown one, then again
        task, _, _ = api.build(api.plain(classify(tmp_path, *cached, f"task.extend_vocab_from_vectors={extend}")))
        assert (task.tokenizer.vocab.unk_id in task.encoded("val")[0][0]) == unseen


def test_a_frozen_embedding_stays_bit_identical_while_the_rest_trains(tmp_path):
    config = classify(tmp_path, "task.freeze_embeddings=true", "trainer.lr=0.05")
    torch.manual_seed(config.seed)  # as `train` seeds before it builds: the same initial network
    _, before, _ = api.build(api.plain(config))
    api.train(config, tmp_path / "run")
    after = load_checkpoint_file(tmp_path / "run" / "checkpoints" / "last.pt")["model"]
    assert torch.equal(after["embed.words.weight"], before.embed.words.weight.detach())
    moved = [name for name, value in before.state_dict().items() if not torch.equal(value, after[name])]
    assert moved and all(not name.startswith("embed.") for name in moved)


def test_the_embedding_learning_rate_is_scaled(tmp_path):
    _, network, _ = api.build(api.plain(classify(tmp_path, "task.embedding_lr_scale=0.1")))
    optimizer = build_optimizer(network.parameters(), TrainerConfig(lr=0.01))
    rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert rates[id(network.embed.words.weight)] == pytest.approx(0.001)
    assert {rate for key, rate in rates.items() if key != id(network.embed.words.weight)} == {0.01}
    assert optimizer.param_groups[0]["lr"] == 0.01  # the group the trainer logs


def test_a_zero_scale_freezes():
    weight = torch.nn.Parameter(torch.zeros(2))
    set_lr_scale(weight, 0.0)
    assert not weight.requires_grad


def test_a_dimension_mismatch_names_both(tmp_path):
    with pytest.raises(RnnzooError, match=rf"{DIM}-dimensional vectors, but the words embedding is 16 wide: set "
                                          rf"task.embedding_dim to {DIM}"):
        api.build(api.plain(classify(tmp_path, "task.embedding_dim=16")))


def test_subword_tokens_with_vectors_are_refused(tmp_path):
    with pytest.raises(RnnzooError, match="one vector per word, but the words side is cut into char tokens"):
        api.build(api.plain(classify(tmp_path, "task.tokenizer=char")))


# --- one run per task kind: classification through the CLI, the others as it calls them --------
RUN = ["trainer.max_steps=2", "trainer.eval_every=2", "trainer.progress=false", "trainer.device=cpu"]


def train_run(tmp_path, caplog, *overrides: str) -> None:
    """What `rnnzoo train OVERRIDES` runs, in this process (a CLI start costs seconds)."""
    with caplog.at_level("INFO", logger="rnnzoo"):
        api.train(compose_config([*overrides, *RUN]), tmp_path / "run")
    assert "training tokens" in caplog.text  # the coverage line


def test_classification_cli_then_predict_without_the_vectors(tmp_path):
    result = run_cli("train", *CLASSIFY, *classification_files(tmp_path), "task.extend_vocab_from_vectors=2",
                     f"task.pretrained_embeddings={write_text(tmp_path / 'v.txt')}", *RUN,
                     f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "4 of 6 training tokens (66.7%)" in result.stdout + result.stderr  # the coverage line, printed
    (tmp_path / "v.txt").unlink()
    (tmp_path / "input.txt").write_text("good zebra\n")
    result = run_cli("predict", f"checkpoint={tmp_path / 'run' / 'checkpoints' / 'best.pt'}",
                     f"input={tmp_path / 'input.txt'}", "trainer.device=cpu")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] in ("pos", "neg")


def test_tagging_run(tmp_path, caplog):
    sentences = "good NN B-NP\nfilm NN I-NP\n\nbad JJ B-ADJP\n"
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.txt").write_text(sentences)
    train_run(tmp_path, caplog, "task=tagging", "dataset=conll_files", "model.hidden_size=8",
              f"task.embedding_dim={DIM}", *[f"dataset.{s}={tmp_path}/{s}.txt" for s in ("train", "valid", "test")],
              f"task.pretrained_embeddings={write_binary(tmp_path / 'v.bin')}", "task.freeze_embeddings=true")


def test_generation_run(tmp_path, caplog):
    (tmp_path / "text.txt").write_text("good film great film\n" * 40)
    train_run(tmp_path, caplog, "task=generation", "dataset=text_files", f"dataset.train={tmp_path}/text.txt",
              "task.level=word", f"task.embedding_dim={DIM}", "model.hidden_size=8", "task.batch_size=2",
              "task.bptt=4", "task.eval_batch_size=2", "task.sample_tokens=0",
              f"task.pretrained_embeddings={write_text(tmp_path / 'v.txt', header=False)}")


def test_translation_run_with_a_file_per_side(tmp_path, caplog):
    pairs = "".join(f"{s}\t{t}\n" for s, t in [("guter film", "good film"), ("zebra", "zebra")] * 4)
    for split in ("train", "val", "test"):
        (tmp_path / f"{split}.tsv").write_text(pairs)
    (tmp_path / "de.txt").write_text("guter 1 2 3 4\nfilm 0 1 0 1\n")
    train_run(tmp_path, caplog, "task=translation", "dataset=parallel_files", "model=seq2seq", "model.hidden_size=8",
              f"model.embedding_dim={DIM}", "task.tokenizer=word", "task.batch_size=4",
              *[f"dataset.{s}={tmp_path}/{f}.tsv" for s, f in (("train", "train"), ("valid", "val"), ("test", "test"))],
              f"task.pretrained_embeddings={tmp_path / 'de.txt'}",
              f"task.pretrained_target_embeddings={write_text(tmp_path / 'en.txt')}")
    assert "source vectors from" in caplog.text and "target vectors from" in caplog.text
