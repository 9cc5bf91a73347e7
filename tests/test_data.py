"""The data layer: readers, vocabulary, tokenizers, batching, downloads and the named datasets.

Readers are tried on tiny files written here, good and malformed; the named datasets on the
reference copies in ../shared/data (or $RNNZOO_DATA_DIR), skipped when those are absent.
No test reaches the network: `urlopen` only serves file:// URLs here.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import logging
import random
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from hydra import compose, initialize_config_dir

import rnnzoo.data.remote as remote_module
import rnnzoo.tasks  # noqa: F401  (registers "synthetic")
from rnnzoo.config import config_dir, register_schemas
from rnnzoo.data import (
    KINDS,
    SPECIALS,
    DataError,
    FileDataset,
    LabeledText,
    ParallelPair,
    RemoteFile,
    TaggedSentence,
    Tokenizer,
    Vocabulary,
    bucket_batches,
    download,
    open_dataset,
    pad_sequences,
    read_conll,
    read_conllu,
    read_labeled,
    read_parallel,
    read_text,
    read_tsv_pairs,
    stream_batches,
)
from rnnzoo.data.named import TREC, TinyShakespeare
from rnnzoo.errors import RnnzooError
from rnnzoo.registry import DATASETS

from .conftest import DATA_DIR

REAL_URLOPEN = remote_module.urlopen


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Only file:// URLs open, and downloads go to a fresh cache."""
    def local_only(url, *args, **kwargs):
        if not str(url).startswith("file://"):
            raise URLError("network disabled in tests")
        return REAL_URLOPEN(url, *args, **kwargs)
    monkeypatch.setattr(remote_module, "urlopen", local_only)
    monkeypatch.setenv("RNNZOO_CACHE_DIR", str(tmp_path / "cache"))


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def raises_at(path: Path, line: int, match: str = ""):
    """A DataError naming the file and the line."""
    return pytest.raises(DataError, match=rf"{path}, line {line}: expected .*{match}")


# --- readers -----------------------------------------------------------------------------
def test_read_text_keeps_the_text_and_normalizes_line_endings(tmp_path):
    assert read_text(write(tmp_path / "a.txt", "one  two\r\nthree\n")) == "one  two\nthree\n"


def test_read_text_names_the_line_that_is_not_utf8(tmp_path):
    path = write(tmp_path / "a.txt", b"fine\nalso fine\nbad \xf0 byte\n")
    with raises_at(path, 3, "utf-8"):
        read_text(path)


def test_missing_file_is_a_data_error_naming_it(tmp_path):
    with pytest.raises(DataError, match="nope.txt: no such file"):
        read_conll(tmp_path / "nope.txt")


CONLL = """-DOCSTART- -X- O

Confidence NN B-NP
in IN B-PP
the DT B-NP

\t
Rockwell NNP B-NP
said VBD B-VP"""


def test_read_conll_sentences_and_columns(tmp_path):
    path = write(tmp_path / "train.txt", CONLL)
    assert read_conll(path) == [TaggedSentence(["Confidence", "in", "the"], ["B-NP", "B-PP", "B-NP"]),
                                TaggedSentence(["Rockwell", "said"], ["B-NP", "B-VP"])]
    assert read_conll(path, tag_column=1)[1].tags == ["NNP", "VBD"]


def test_read_conll_with_a_tab_separator_keeps_spaces_in_tokens(tmp_path):
    path = write(tmp_path / "ner.conll", "New York\tB-location\nis\tO\n\nok\tO\n")
    assert read_conll(path, separator="\t")[0].tokens == ["New York", "is"]


def test_read_conll_malformed(tmp_path):
    shifted = write(tmp_path / "shifted.txt", "a DT B-NP\n\nNew York NNP B-NP\n")
    with raises_at(shifted, 3, "3 columns like line 1, found 4"):
        read_conll(shifted)
    single = write(tmp_path / "single.txt", "\n\nlonely\n")
    with raises_at(single, 3, "distinct token column"):
        read_conll(single)


CONLLU = """# sent_id = 1
# text = Don't go.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_
3.1\tgo\tgo\tVERB\tVB\t_\t_\t_\t0:root\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def test_read_conllu_skips_comments_ranges_and_empty_nodes(tmp_path):
    path = write(tmp_path / "a.conllu", CONLLU)
    assert read_conllu(path) == [TaggedSentence(["Do", "n't", "go", "."], ["AUX", "PART", "VERB", "PUNCT"]),
                                 TaggedSentence(["Hi"], ["INTJ"])]
    assert read_conllu(path, tagset="xpos")[0].tags == ["VBP", "RB", "VB", "."]


def test_read_conllu_malformed(tmp_path):
    short = write(tmp_path / "short.conllu", "# c\n1\tHi\thi\tINTJ\n")
    with raises_at(short, 2, "10 tab-separated columns"):
        read_conllu(short)
    bad_id = write(tmp_path / "id.conllu", "x\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n")
    with raises_at(bad_id, 1, "word ID"):
        read_conllu(bad_id)
    with pytest.raises(DataError, match="tagset"):
        read_conllu(short, tagset="pos")


def test_read_labeled_tab_space_crlf_and_latin1_fallback(tmp_path):
    path = write(tmp_path / "a.label", b"1 a stirring , funny film \r\n\n0\tdull ,  flat\nLOC:city sister\xf0city ?\n")
    assert read_labeled(path) == [LabeledText("1", ["a", "stirring", ",", "funny", "film"]),
                                  LabeledText("0", ["dull", ",", "flat"]),
                                  LabeledText("LOC:city", ["sister\u00f0city", "?"])]
    with raises_at(path, 4, "utf-8 text"):
        read_labeled(path, fallback_encoding=None)


def test_read_labeled_malformed(tmp_path):
    path = write(tmp_path / "a.label", "1 good\nlonely_label\n")
    with raises_at(path, 2, "'label<TAB>text' or 'label text'"):
        read_labeled(path)


def test_read_parallel_pairs_lines(tmp_path):
    de = write(tmp_path / "train.de", "Ein Hund.\nZwei Katzen.\n")
    en = write(tmp_path / "train.en", "A dog.\nTwo cats.\n")
    assert read_parallel(de, en) == [ParallelPair("Ein Hund.", "A dog."), ParallelPair("Zwei Katzen.", "Two cats.")]


def test_read_parallel_malformed(tmp_path):
    de = write(tmp_path / "a.de", "Ein Hund.\nZwei Katzen.\n")
    short = write(tmp_path / "a.en", "A dog.\n")
    with pytest.raises(DataError, match=rf"{de} has 2 lines but {short} has 1"):
        read_parallel(de, short)
    hole = write(tmp_path / "b.en", "A dog.\n \n")
    with raises_at(hole, 2, "a sentence"):
        read_parallel(de, hole)


def test_read_tsv_pairs(tmp_path):
    path = write(tmp_path / "deu.txt", "Go.\tGeh.\tCC-BY 2.0 (France) Attribution\n\nHi.\tHallo!\n")
    assert read_tsv_pairs(path) == [ParallelPair("Go.", "Geh."), ParallelPair("Hi.", "Hallo!")]
    bad = write(tmp_path / "bad.txt", "Go.\tGeh.\nno tab here\n")
    with raises_at(bad, 2, "'source<TAB>target'"):
        read_tsv_pairs(bad)


def test_data_error_is_a_user_error():
    assert issubclass(DataError, RnnzooError)


# --- vocabulary ----------------------------------------------------------------------------
SENTENCES = [["the", "cat", "sat"], ["the", "dog", "sat"], ["a", "cat", "<unk>"]]


def test_vocabulary_specials_come_first():
    vocab = Vocabulary.build(SENTENCES)
    assert vocab.itos[:5] == list(SPECIALS)
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id, vocab.mask_id) == (0, 1, 2, 3, 4)
    assert vocab.itos.count("<unk>") == 1  # PTB's <unk> in the text is the special
    no_mask = Vocabulary(["x"], specials=("<pad>", "<unk>"))
    assert no_mask.mask_id is None and no_mask.bos_id is None and no_mask.encode(["x", "y"]) == [2, 1]


def test_vocabulary_orders_by_frequency_then_alphabet_whatever_the_data_order():
    vocab = Vocabulary.build(SENTENCES)
    assert vocab.itos[5:] == ["cat", "sat", "the", "a", "dog"]
    shuffled = [list(reversed(s)) for s in reversed(SENTENCES)]
    assert Vocabulary.build(shuffled) == vocab


def test_vocabulary_min_freq_and_max_size():
    assert Vocabulary.build(SENTENCES, min_freq=2).itos[5:] == ["cat", "sat", "the"]
    assert Vocabulary.build(SENTENCES, max_size=2).itos[5:] == ["cat", "sat"]
    assert len(Vocabulary.build(SENTENCES, max_size=2)) == len(SPECIALS) + 2


def test_vocabulary_encode_decode():
    vocab = Vocabulary.build(SENTENCES, min_freq=2)
    ids = vocab.encode(["the", "zebra", "sat"])
    assert ids == [vocab.stoi["the"], vocab.unk_id, vocab.stoi["sat"]]
    assert vocab.decode(ids) == ["the", "<unk>", "sat"]
    assert vocab.decode([vocab.bos_id, *ids, vocab.eos_id], skip_specials=True) == ["the", "sat"]
    assert "the" in vocab and "zebra" not in vocab
    with pytest.raises(IndexError):
        vocab.decode([len(vocab)])
    with pytest.raises(KeyError, match="zebra"):
        Vocabulary(["a"], specials=("<pad>",)).encode(["zebra"])


def test_vocabulary_state_dict_round_trip_through_a_weights_only_load(tmp_path):
    vocab = Vocabulary.build(SENTENCES)
    assert Vocabulary.from_state_dict(vocab.state_dict()) == vocab
    torch.save({"vocab": vocab.state_dict()}, tmp_path / "v.pt")
    loaded = torch.load(tmp_path / "v.pt", weights_only=True)
    assert Vocabulary.from_state_dict(loaded["vocab"]) == vocab


# --- tokenizers ----------------------------------------------------------------------------
TEXTS = ["The cat sat on the mat.\nThe dog sat on the log.", "A cat and a dog, on a mat!"] * 5


@pytest.fixture(scope="module")
def tokenizers() -> dict[str, Tokenizer]:
    # byte-level BPE starts from 256 bytes + 5 specials, so its merges begin past 261
    return {level: Tokenizer.train(level, TEXTS, vocab_size=300) for level in ("char", "word", "bpe", "wordpiece")}


def test_every_level_has_the_specials_at_the_same_ids(tokenizers):
    for tokenizer in tokenizers.values():
        assert tokenizer.vocab.itos[:5] == list(SPECIALS)


def test_char_and_word_round_trip_exactly(tokenizers):
    text = "The dog sat on the mat."
    assert tokenizers["char"].tokenize(text) == list(text)
    assert tokenizers["char"].decode(tokenizers["char"].encode(text)) == text
    assert tokenizers["word"].tokenize(text) == text.split()
    assert tokenizers["word"].decode(tokenizers["word"].encode(text)) == text


def test_bpe_round_trips_any_text_and_wordpiece_reasonably(tokenizers):
    bpe, wordpiece = tokenizers["bpe"], tokenizers["wordpiece"]
    text = "The cat sat on the log.\n  Zebras, too!"
    assert bpe.decode(bpe.encode(text)) == text  # byte-level: exact, even for unseen letters
    assert wordpiece.decode(wordpiece.encode("The dog sat on the mat.")) == "The dog sat on the mat."
    for tokenizer in (bpe, wordpiece):
        pieces = tokenizer.tokenize("The cat sat.")
        assert tokenizer.encode("The cat sat.") == tokenizer.vocab.encode(pieces)  # vocab mirrors the pieces
        assert len(pieces) < len("The cat sat.")  # merges learned


def test_tokenizers_know_only_their_training_text(tokenizers):
    assert tokenizers["char"].encode("Z") == [1]
    assert tokenizers["word"].encode("zebra") == [1]
    assert tokenizers["wordpiece"].encode("zebra") == [1]
    assert not any("z" in piece for piece in tokenizers["bpe"].vocab.itos[5 + 256:])
    assert tokenizers["char"].decode([2, tokenizers["char"].vocab.stoi["a"], 1, 3]) == "a<unk>"


def test_tokenizer_state_dict_round_trip(tokenizers, tmp_path):
    text = "The cat sat on a dog."
    for level, tokenizer in tokenizers.items():
        torch.save(tokenizer.state_dict(), tmp_path / f"{level}.pt")
        loaded = Tokenizer.from_state_dict(torch.load(tmp_path / f"{level}.pt", weights_only=True))
        assert loaded.level == level and loaded.vocab == tokenizer.vocab
        assert loaded.encode(text) == tokenizer.encode(text)


def test_tokenizer_rejects_unknown_levels_a_bare_string_and_a_bpe_without_room_for_merges():
    with pytest.raises(ValueError, match="vocab_size"):
        Tokenizer.train("bpe", TEXTS, vocab_size=100)
    with pytest.raises(ValueError, match="char, word, bpe, wordpiece"):
        Tokenizer.train("sentencepiece", TEXTS)
    with pytest.raises(TypeError):
        Tokenizer.train("char", "not a list")


# --- batching ----------------------------------------------------------------------------
def test_pad_sequences():
    padded, lengths = pad_sequences([[5, 6, 7], [8], []], pad_id=0)
    assert padded.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert lengths.tolist() == [3, 1, 0] and padded.dtype == lengths.dtype == torch.long


def test_bucket_batches_cover_every_index_once_with_similar_lengths():
    lengths = [random.Random(i).randint(1, 100) for i in range(1000)]
    batches = bucket_batches(lengths, 16, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    assert sum(len(batch) < 16 for batch in batches) == 1
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 5  # a random batch of 16 spans about 90


def as_lists(batches):
    return [batch.tolist() for batch in batches]


def test_bucket_batches_are_deterministic_given_the_generator():
    lengths = list(range(100, 0, -1))
    def run(seed):
        return as_lists(bucket_batches(lengths, 8, shuffle=True, generator=torch.Generator().manual_seed(seed)))
    assert run(1) == run(1) != run(2)
    unshuffled = as_lists(bucket_batches(lengths, 8, shuffle=False))
    assert unshuffled == as_lists(bucket_batches(lengths, 8, shuffle=False))
    assert unshuffled[0] == [99, 98, 97, 96, 95, 94, 93, 92]  # shortest first within the bucket


def python_bucket_batches(lengths, batch_size, shuffle, generator, multiplier=50):
    """The pure-Python bucketing rnnzoo used before its batches became numpy arrays."""
    order = torch.randperm(len(lengths), generator=generator).tolist() if shuffle else list(range(len(lengths)))
    bucket, batches = batch_size * multiplier, []
    for start in range(0, len(lengths), bucket):
        members = sorted(order[start:start + bucket], key=lambda index: lengths[index])
        batches += [members[i:i + batch_size] for i in range(0, len(members), batch_size)]
    if shuffle:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


@pytest.mark.parametrize("shuffle", [True, False])
def test_bucket_batches_equal_the_python_bucketing_they_replaced(shuffle):
    lengths = [random.Random(i).randint(1, 30) for i in range(2345)]  # many ties: stability matters
    new = bucket_batches(lengths, 16, shuffle, torch.Generator().manual_seed(3))
    assert as_lists(new) == python_bucket_batches(lengths, 16, shuffle, torch.Generator().manual_seed(3))


def test_stream_batches_makes_contiguous_rows():
    streams = stream_batches(torch.arange(10), 3)
    assert streams.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    with pytest.raises(ValueError):
        stream_batches(torch.arange(2), 3)


# --- downloads -----------------------------------------------------------------------------
def served(tmp_path: Path, content: bytes, gzipped: bool = False) -> str:
    source = tmp_path / "served" / ("file.gz" if gzipped else "file")
    source.parent.mkdir(exist_ok=True)
    source.write_bytes(gzip.compress(content) if gzipped else content)
    return source.as_uri()


@pytest.mark.parametrize("gzipped", [False, True])
def test_download_accepts_the_right_checksum(tmp_path, gzipped):
    content = b"1 a fine film\n0 a dull one\n"
    remote = RemoteFile("data.txt", served(tmp_path, content, gzipped), hashlib.md5(content).hexdigest(), gzipped)
    path = download(remote, tmp_path / "cache")
    assert path == tmp_path / "cache" / "data.txt" and path.read_bytes() == content
    assert [p.name for p in path.parent.iterdir()] == ["data.txt"]  # no partial file left


def test_download_rejects_a_wrong_checksum_and_deletes_the_file(tmp_path):
    content = b"tampered\n"
    remote = RemoteFile("data.txt", served(tmp_path, content), "0" * 32)
    with pytest.raises(DataError, match=f"expected md5 {'0' * 32}, got {hashlib.md5(content).hexdigest()}"):
        download(remote, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_download_offline_says_where_to_put_the_file(tmp_path, monkeypatch):
    remote = RemoteFile("data.txt", "file:///nonexistent/data.txt", "0" * 32)
    with pytest.raises(DataError, match="could not download file:///nonexistent/data.txt.*put it here"):
        download(remote, tmp_path / "cache", hint="put it here")
    monkeypatch.setenv("RNNZOO_DATA_DIR", str(tmp_path / "empty"))
    where = r"network disabled.*put train_5500.label in .*empty/trec.*RNNZOO_DATA_DIR=FOLDER holding trec/"
    with pytest.raises(DataError, match=where):
        open_dataset("trec").load("train")


def test_a_named_dataset_downloads_into_the_cache_when_absent(tmp_path, monkeypatch):
    content = b"NUM:dist How far ?\nLOC:city Where ?\n"
    remote = RemoteFile("TREC_10.label", served(tmp_path, content), hashlib.md5(content).hexdigest())
    monkeypatch.setattr(TREC, "remotes", (remote,))
    monkeypatch.setenv("RNNZOO_DATA_DIR", str(tmp_path / "empty"))
    assert [e.label for e in open_dataset("trec").load("test")] == ["NUM", "LOC"]
    assert (tmp_path / "cache" / "trec" / "TREC_10.label").read_bytes() == content


def test_every_named_file_has_an_official_source_and_md5():
    for entry in DATASETS:
        cls = entry.target
        if isinstance(cls, type) and issubclass(cls, FileDataset) and cls.files:
            dataset = open_dataset(entry.name)
            names = {remote.name for remote in cls.remotes}
            for stem in cls.files.values():
                assert set(dataset.members(stem)) <= names, entry.name
            assert all(len(r.md5) == 32 and r.url.startswith("https://") for r in cls.remotes)


# --- datasets from the user's files ----------------------------------------------------------
def test_text_files_cut_missing_splits_from_the_end(tmp_path):
    path = write(tmp_path / "corpus.txt", "".join(chr(ord("a") + i % 26) for i in range(100)))
    dataset = open_dataset("text_files", train=str(path))
    train, val, test = (dataset.load(s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (80, 10, 10) and train + val + test == read_text(path)
    own_test = write(tmp_path / "test.txt", "held out")
    dataset = open_dataset("text_files", train=str(path), test=str(own_test))
    assert len(dataset.load("train")) == 90 and dataset.load("test") == "held out"


def test_list_datasets_cut_a_seeded_random_sample(tmp_path):
    path = write(tmp_path / "train.label", "".join(f"{i % 3} text number {i}\n" for i in range(50)))
    dataset = open_dataset("labeled_files", train=str(path))
    splits = {s: [" ".join(e.tokens) for e in dataset.load(s)] for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [40, 5, 5]
    assert sorted(sum(splits.values(), [])) == sorted(f"text number {i}" for i in range(50))
    assert splits["train"] == sorted(splits["train"], key=lambda t: int(t.split()[-1]))  # file order kept
    assert [e.tokens for e in open_dataset("labeled_files", train=str(path)).load("val")] == \
        [t.split() for t in splits["val"]]
    assert open_dataset("labeled_files", train=str(path), split_seed=1).load("val") != dataset.load("val")


def test_test_fraction_zero_tests_on_the_validation_split(tmp_path, caplog):
    path = write(tmp_path / "train.conll", "".join(f"w{i} O\n\n" for i in range(20)))
    dataset = open_dataset("conll_files", train=str(path), test_fraction=0.0)
    with caplog.at_level(logging.WARNING, logger="rnnzoo"):
        assert dataset.load("test") == dataset.load("val") and len(dataset.load("train")) == 18
    assert "validation split" in caplog.text


def test_parallel_files_read_tsv_or_prefix_pairs(tmp_path):
    tsv = write(tmp_path / "pairs.tsv", "Hi.\tHallo.\n")
    assert open_dataset("parallel_files", train=str(tsv), valid=str(tsv), test=str(tsv)).load("val") == \
        [ParallelPair("Hi.", "Hallo.")]
    write(tmp_path / "train.en", "Hi.\n")
    write(tmp_path / "train.de", "Hallo.\n")
    dataset = open_dataset("parallel_files", train=str(tmp_path / "train"), source_lang="de", target_lang="en",
                           valid_fraction=0.5)
    assert dataset.load("train") == [ParallelPair("Hallo.", "Hi.")]
    with pytest.raises(DataError, match="two different languages"):
        open_dataset("parallel_files", source_lang="de")


def test_user_datasets_need_a_train_file_and_valid_options():
    with pytest.raises(DataError, match=r"dataset.train=PATH"):
        open_dataset("conllu_files").load("val")
    with pytest.raises(DataError, match="split must be"):
        open_dataset("conllu_files").load("dev")
    with pytest.raises(DataError, match="labels must be one of coarse, fine"):
        open_dataset("trec", labels="medium")
    with pytest.raises(RnnzooError, match="unknown option 'tag_columns'"):
        open_dataset("conll2000", tag_columns=1)
    with pytest.raises(DataError, match="no files"):
        open_dataset("synthetic")


def test_every_file_dataset_has_a_kind_a_yaml_config_and_composes():
    register_schemas()
    names = [e.name for e in DATASETS if isinstance(e.target, type) and issubclass(e.target, FileDataset)]
    assert len(names) == 13
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        for name in names:
            assert DATASETS.entry(name).traits <= set(KINDS) and len(DATASETS.entry(name).traits) == 1
            config = compose(config_name="train", overrides=[f"dataset={name}"]).dataset
            assert type(open_dataset(config)).name == name
        config = compose(config_name="train", overrides=["dataset=trec", "dataset.labels=fine"]).dataset
        assert open_dataset(config).config.labels == "fine"


def test_open_dataset_takes_a_name_a_mapping_or_a_config_dataclass():
    by_name = open_dataset("multi30k", source_lang="en", target_lang="de")
    by_mapping = open_dataset({"name": "multi30k", "source_lang": "en", "target_lang": "de"})
    by_dataclass = open_dataset(dataclasses.replace(by_name.config))
    assert by_name.config == by_mapping.config == by_dataclass.config
    assert open_dataset(by_name) is by_name


# --- the reference datasets ------------------------------------------------------------------
COUNTS = {  # examples per split with default options (text: lines, or characters where noted)
    "ptb": (42068, 3370, 3761),
    "conll2000": (8043, 893, 2012),
    "ud_english_ewt": (12544, 2001, 2077),
    "wnut17": (3394, 1009, 1287),
    "sst2": (6920, 872, 1821),
    "trec": (4907, 545, 500),
    "multi30k": (29000, 1014, 1000),
}


def reference(name: str) -> FileDataset:
    if not (DATA_DIR / name).is_dir():
        pytest.skip(f"reference copy {DATA_DIR / name} absent (set RNNZOO_DATA_DIR to a folder holding {name}/)")
    return open_dataset(name, root=str(DATA_DIR / name))


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_reference_datasets_have_the_documented_counts(name):
    dataset = reference(name)
    splits = [dataset.load(split) for split in ("train", "val", "test")]
    counts = tuple(s.count("\n") if isinstance(s, str) else len(s) for s in splits)
    assert counts == COUNTS[name]
    if name == "conll2000":
        assert sum(len(s.tokens) for s in splits[0] + splits[1]) == 211727
    if name == "ud_english_ewt":
        assert sum(len(s.tokens) for s in splits[0]) == 204577 and len({t for s in splits[0] for t in s.tags}) == 17
    if name == "wnut17":
        assert len({t for s in splits[0] for t in s.tags}) == 13
    if name == "ptb":
        assert len(splits[0].split()) == 887521 and "<unk>" in splits[0]


def test_tinyshakespeare_is_split_as_nanogpt_does():
    dataset = reference("tinyshakespeare")
    text = read_text(DATA_DIR / "tinyshakespeare" / "input.txt")
    n = len(text)
    assert n == 1115394
    assert dataset.load("train") == text[:int(n * 0.9)] and dataset.load("val") == text[int(n * 0.9):]
    assert dataset.load("test") == dataset.load("val")
    five = open_dataset("tinyshakespeare", root=str(DATA_DIR / "tinyshakespeare"), test_fraction=0.05)
    assert [len(five.load(s)) for s in ("train", "val", "test")] == [int(n * 0.85), int(n * 0.95) - int(n * 0.85),
                                                                      n - int(n * 0.95)]


def test_trec_labels_and_latin1_line():
    coarse, fine = reference("trec"), open_dataset("trec", root=str(DATA_DIR / "trec"), labels="fine")
    assert len({e.label for e in coarse.load("test")}) == 6
    assert len({e.label for e in fine.load("train") + fine.load("val")}) == 50
    assert fine.load("test")[0] == LabeledText("NUM:dist", "How far is it from Denver to Aspen ?".split())
    assert TinyShakespeare.name == "tinyshakespeare"  # classes learn their registry name
