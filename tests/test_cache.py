"""The token cache (rnnzoo.data.cache): the same ids and batches as reading the files in memory,
hits that read nothing, invalidation on every kind of change, atomic and concurrent writes, DDP
ranks sharing one cache, and every bad input named in one clear line."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import random
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from rnnzoo import api
from rnnzoo.data import corpus, read_text
from rnnzoo.data.arrays import Examples
from rnnzoo.data.cache import TokenCache
from rnnzoo.data.readers import DataError
from rnnzoo.data.streaming import TextSpan, iter_chunks

from .conftest import DATA_DIR, compose_config, run_cli
from .test_classification import tiny_files as labeled_files
from .test_scale import free_port
from .test_tagging import tiny_files as conll_files

LINES = ["ROMEO: But soft, what light through yonder window breaks?", "JULIETTE: Ô Roméo, où es-tu?",
         "", "  indented, with   spaces\t and a tab", "ROMEO: It is the east, and Juliet is the sun."]
TEXT = "\n".join(random.Random(0).choices(LINES, k=400)) + "\n"


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def generation(text_file, cache, *extra: str) -> list[str]:
    return ["task=generation", "dataset=text_files", f"dataset.train={text_file}", f"dataset.cache_dir={cache}",
            "model.hidden_size=8", "task.embedding_dim=8", "task.batch_size=4", "task.bptt=16",
            "task.eval_batch_size=2", "task.vocab_size=300", "task.sample_tokens=0", "trainer.progress=false",
            "trainer.max_steps=4", "trainer.eval_every=2", *extra]


def build_task(overrides: list[str]):
    task, _, _ = api.build(api.plain(compose_config(overrides)))
    return task


def entries(cache) -> list[str]:
    return sorted(path.name for path in cache.iterdir() if not path.name.startswith("."))


def fingerprint(path) -> tuple[str, int]:
    return hashlib.md5(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def batches_equal(first, second) -> bool:
    for a, b in zip(dataclasses.astuple(first), dataclasses.astuple(second)):
        if isinstance(a, torch.Tensor) != isinstance(b, torch.Tensor):
            return False
        if isinstance(a, torch.Tensor) and not torch.equal(a, b):
            return False
        if not isinstance(a, torch.Tensor) and a != b:
            return False
    return True


def assert_same_batches(cached, in_memory, count: int = 6) -> None:
    for split in ("val", "test"):
        pairs = list(zip(cached.eval_batches(split), in_memory.eval_batches(split)))
        assert pairs and all(batches_equal(a, b) for a, b in pairs)
    pairs = list(zip(cached.train_batches(1), in_memory.train_batches(1)))[:count]
    assert pairs and all(batches_equal(a, b) for a, b in pairs)


# --- streaming reads what read_text reads -----------------------------------------------------
@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 4096])
def test_chunks_join_to_the_whole_text_across_crlf_and_multibyte_cuts(tmp_path, chunk_bytes):
    path = tmp_path / "mixed.txt"
    path.write_bytes("a\r\nb\rc\r\r\nÔ é €😀\r\n\r\nend".encode("utf-8"))
    whole = read_text(path)
    assert "".join(iter_chunks(TextSpan(path), chunk_bytes=chunk_bytes)) == whole
    span = TextSpan(path, "utf-8", 3, 11)
    assert "".join(iter_chunks(span, chunk_bytes=chunk_bytes)) == whole[3:11]


def test_bpe_pieces_cut_only_where_the_whole_text_encodes_the_same(monkeypatch):
    monkeypatch.setattr(corpus, "PIECE_CHARS", 40)
    pieces = list(corpus.bpe_pieces(iter([TEXT[:1000], TEXT[1000:2500], TEXT[2500:]])))
    assert "".join(pieces) == TEXT and len(pieces) > 20
    for left, right in zip(pieces, pieces[1:]):  # after a line break between two non-space characters
        assert left[-1] == "\n" and not left[-2].isspace() and not right[0].isspace()


# --- the same ids and batches as the in-memory path ------------------------------------------------
@pytest.mark.parametrize("level", ["char", "word", "bpe", "wordpiece"])
@pytest.mark.parametrize("sampling", ["streams", "random"])
def test_a_language_model_trains_on_the_same_batches_from_the_cache(tmp_path, text_file, monkeypatch, level,
                                                                    sampling):
    monkeypatch.setattr(corpus, "PIECE_CHARS", 500)  # many pieces: every cut is exercised
    options = generation(text_file, tmp_path / "cache", f"task.level={level}", f"task.sampling={sampling}")
    cached, in_memory = build_task(options), build_task([*options, "dataset.cache=false"])
    if level != "wordpiece":  # HF's WordPiece trainer breaks ties differently from run to run
        assert cached.tokenizer.state_dict() == in_memory.tokenizer.state_dict()
    in_memory.load_state_dict(cached.state_dict())
    for split in ("train", "val", "test"):
        assert isinstance(cached.ids(split), np.memmap) and cached.ids(split).dtype == np.uint16
        assert cached.ids(split).tolist() == in_memory.ids(split).tolist()
    assert_same_batches(cached, in_memory)


@pytest.mark.parametrize("kind", ["classification", "tagging", "translation", "pretraining"])
def test_example_tasks_get_the_same_examples_and_batches_from_the_cache(tmp_path, kind):
    options = {"classification": lambda: ["task=classification", "dataset=labeled_files", *labeled_files(tmp_path),
                                          "task.tokenizer=bpe", "task.vocab_size=280"],
               "tagging": lambda: ["task=tagging", "dataset=conll_files", *conll_files(tmp_path), "task.char_dim=4"],
               "translation": lambda: ["task=translation", "dataset=parallel_files",
                                       f"dataset.train={pairs_file(tmp_path)}", "model=bahdanau", "task.samples=2"],
               "pretraining": lambda: ["task=pretraining", "dataset=labeled_files", *labeled_files(tmp_path),
                                       "model=bert", "model.hidden_size=16", "model.num_heads=2", "model.num_layers=1",
                                       "model.d_ff=32", "model.next_sentence=true", "task.vocab_size=300",
                                       "task.max_length=16"]}[kind]()
    options = [*options, f"dataset.cache_dir={tmp_path / 'cache'}", "task.batch_size=3"]
    cached, in_memory = build_task(options), build_task([*options, "dataset.cache=false"])
    if kind in ("classification", "pretraining"):  # subword vocabularies: one tokenizer for both
        in_memory.load_state_dict(cached.state_dict())
    for split in ("train", "val", "test"):
        assert isinstance(cached.encoded(split), Examples)
        assert list(cached.encoded(split)) == list(in_memory.encoded(split))
    assert_same_batches(cached, in_memory)


def pairs_file(tmp_path):
    path = tmp_path / "pairs.tsv"
    rng = random.Random(1)
    rows = []
    for _ in range(60):
        words = [rng.choice("abcdef") * rng.randint(1, 3) for _ in range(rng.randint(1, 6))]
        rows.append(f"{' '.join(words)}\t{' '.join(reversed(words))}")
    path.write_text("\n".join(rows) + "\n")
    return path


# --- hits and invalidation -------------------------------------------------------------------------
def test_a_second_run_maps_the_cache_and_reads_no_corpus(tmp_path, text_file, monkeypatch):
    options = generation(text_file, tmp_path / "cache", "task.level=word")
    first = build_task(options)
    first.prepare_splits()
    assert all(entry.built for entry in first.cache_entries.values())
    for name in ("stream_ids", "train_tokenizer"):
        monkeypatch.setattr(corpus, name, lambda *a, **k: pytest.fail("the corpus was tokenized again"))
    monkeypatch.setattr("rnnzoo.data.sources.TextDataset.read", lambda *a: pytest.fail("the corpus was read"))
    second = build_task(options)
    second.prepare_splits()
    assert not any(entry.built for entry in second.cache_entries.values())
    assert second.ids("train").tolist() == first.ids("train").tolist()


def test_a_changed_source_file_option_or_vocabulary_makes_a_new_entry(tmp_path, text_file):
    cache = tmp_path / "cache"
    base = build_task(generation(text_file, cache, "task.level=word"))
    base.prepare_splits()
    assert len(entries(cache)) == 4  # vocabularies, train, val, test
    before = base.ids("train").tolist()

    text_file.write_text(TEXT.replace("ROMEO", "RONEO"), encoding="utf-8")  # same size, other words
    edited = build_task(generation(text_file, cache, "task.level=word"))
    edited.prepare_splits()
    assert all(entry.built for entry in edited.cache_entries.values())
    assert "RONEO:" in edited.tokenizer.vocab and "ROMEO:" not in edited.tokenizer.vocab
    assert edited.ids("train").tolist() == before  # the same words at the same places: only names changed
    assert len(entries(cache)) == 8

    fewer = build_task(generation(text_file, cache, "task.level=word", "task.max_vocab=10"))
    assert fewer.cache_entries["vocab"].built and len(fewer.tokenizer) < len(edited.tokenizer)

    other_vocab = build_task(generation(text_file, cache, "task.level=word"))
    other_vocab.load_state_dict(fewer.state_dict())  # a checkpoint's tokenizer: same files, other ids
    other_vocab.ids("train")
    assert other_vocab.cache_entries["train"].built

    recut = build_task(generation(text_file, cache, "task.level=word", "dataset.valid_fraction=0.2"))
    assert recut.cache_entries["vocab"].built and len(recut.ids("train")) < len(edited.ids("train"))


def test_a_validation_file_that_is_also_the_test_file_is_encoded_once(tmp_path, text_file):
    valid = tmp_path / "v.txt"
    valid.write_text(TEXT[:500])
    task = build_task(generation(text_file, tmp_path / "cache", f"dataset.valid={valid}", f"dataset.test={valid}"))
    task.prepare_splits()
    assert task.cache_entries["val"].path == task.cache_entries["test"].path
    assert task.cache_entries["val"].path.name.startswith("text_files-generation-v.txt-")
    assert len(entries(tmp_path / "cache")) == 3  # vocabularies, train, v.txt


def test_eval_and_resume_map_the_entries_training_wrote(tmp_path, text_file):
    cache = tmp_path / "cache"
    api.train(compose_config(generation(text_file, cache, "task.level=char")), tmp_path / "run")
    written = entries(cache)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.pt"
    api.evaluate({"checkpoint": str(checkpoint), "split": "test", "trainer": {"device": "cpu"}})
    api.train(compose_config(generation(text_file, cache, "task.level=char", "trainer.max_steps=6",
                                        f"resume={checkpoint}")), tmp_path / "resumed")
    assert entries(cache) == written


# --- atomic and concurrent writes ----------------------------------------------------------------------
def slow_build(log_path: str):
    def build(folder):
        with open(log_path, "a") as log:
            log.write(f"{os.getpid()}\n")
        time.sleep(1.0)
        (folder / "x.bin").write_bytes(np.arange(10, dtype=np.uint16).tobytes())
        return {"arrays": {"x": {"file": "x.bin", "dtype": "<u2"}}}
    return build


def build_in_process(root: str, log_path: str, results) -> None:
    entry = TokenCache(root).get("shared", {"a": 1}, slow_build(log_path))
    results.put((entry.built, entry.array("x").tolist()))


def test_two_processes_building_one_entry_build_it_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    log_path = tmp_path / "builds.log"
    workers = [context.Process(target=build_in_process, args=(str(tmp_path / "c"), str(log_path), results))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes = sorted(results.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    assert len(log_path.read_text().split()) == 1
    assert outcomes == [(False, list(range(10))), (True, list(range(10)))]


def test_a_build_that_fails_midway_leaves_nothing_that_is_later_trusted(tmp_path):
    cache = TokenCache(tmp_path)

    def crash(folder):
        (folder / "x.bin").write_bytes(b"\0" * 6)
        raise KeyboardInterrupt  # as Ctrl-C (or a crash) mid-write

    with pytest.raises(KeyboardInterrupt):
        cache.get("x", {"a": 1}, crash)
    assert [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
    # a killed process leaves its temporary folder: never read, and the entry is built anew
    stale = tmp_path / f".{cache.entry_path('x', {'a': 1}).name}.tmp-killed"
    stale.mkdir()
    (stale / "meta.json").write_text("{}")
    entry = cache.get("x", {"a": 1}, slow_build(str(tmp_path / "log")))
    assert entry.built and entry.array("x").tolist() == list(range(10))


def ddp_rank(rank: int, world_size: int, port: int, config: dict, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    task = api.build(config)[0]  # both ranks at once: one tokenizes, the other waits and maps
    task.prepare_splits()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as report:
        json.dump({part: [entry.built, str(entry.path)] for part, entry in task.cache_entries.items()}, report)
    api.train(config, os.path.join(out, "run"))


def test_ddp_ranks_share_one_cache_and_only_one_tokenizes(tmp_path, text_file):
    config = api.plain(compose_config(generation(text_file, tmp_path / "cache", "task.level=word",
                                                 "trainer.devices=2", "trainer.device=cpu")))
    mp.spawn(ddp_rank, args=(2, free_port(), config, str(tmp_path)), nprocs=2)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert reports[0].keys() == reports[1].keys() == {"vocab", "train", "val", "test"}
    for part in reports[0]:
        assert reports[0][part][1] == reports[1][part][1]  # the same files
        assert sorted([reports[0][part][0], reports[1][part][0]]) == [False, True]  # built once, mapped once
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["train/steps"] == 4


# --- bad input and faults ------------------------------------------------------------------------------
def test_an_empty_file_is_named(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match=f"{empty}: the file is empty"):
        build_task(generation(empty, tmp_path / "cache"))


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nfine too\nnot \xff fine\n" * 3)
    with pytest.raises(DataError, match=r"bad.txt, line 3: expected utf-8 text"):
        build_task(generation(bad, tmp_path / "cache"))
    assert entries(tmp_path / "cache") == []


def test_a_file_that_changes_while_it_is_prepared_is_not_cached(tmp_path, text_file, monkeypatch):
    task = build_task(generation(text_file, tmp_path / "cache", "task.level=char"))
    real = corpus.stream_ids

    def growing(*args, **kwargs):
        for i, ids in enumerate(real(*args, **kwargs)):
            if i == 0:
                with open(text_file, "a") as more:
                    more.write("more text\n")
            yield ids

    monkeypatch.setattr(corpus, "stream_ids", growing)
    with pytest.raises(DataError, match="changed while it was being tokenized"):
        task.ids("train")
    assert not any("train" in name for name in entries(tmp_path / "cache"))


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    big = tmp_path / "big.txt"
    big.write_text(TEXT * 40)
    cache = tmp_path / "cache"

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    result = subprocess.run([sys.executable, "-m", "rnnzoo", "prepare", "task=generation", "dataset=text_files",
                             f"dataset.train={big}", f"dataset.cache_dir={cache}", "task.level=char"],
                            capture_output=True, text=True, preexec_fn=limit_file_size, timeout=120,
                            env=dict(os.environ, PYTHONWARNINGS="ignore"))
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr
    assert "File too large" in errors[0] and "dataset.cache_dir" in errors[0]
    assert not [p for p in cache.iterdir() if "train" in p.name and not p.name.endswith(".lock")]


@pytest.mark.parametrize("damage", ["newer format", "bad json", "truncated", "edited", "missing"])
def test_a_damaged_entry_is_rebuilt_with_a_notice(tmp_path, text_file, caplog, damage):
    options = generation(text_file, tmp_path / "cache", "task.level=char")
    first = build_task(options)
    expected = first.ids("train").tolist()
    folder = first.cache_entries["train"].path
    stream, meta = folder / "stream.bin", folder / "meta.json"
    if damage == "newer format":
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "format": 2}))
    elif damage == "bad json":
        meta.write_text(meta.read_text()[:-20])
    elif damage == "truncated":
        stream.write_bytes(stream.read_bytes()[:-2])
    elif damage == "edited":
        data = bytearray(stream.read_bytes())
        data[100] ^= 1
        stream.write_bytes(bytes(data))
    else:
        stream.unlink()
    again = build_task(options)
    assert again.ids("train").tolist() == expected and again.cache_entries["train"].built
    assert any("unusable" in r.message and "it will be rebuilt" in r.message for r in caplog.records)


def test_a_read_only_cache_folder_is_one_clear_error(tmp_path, text_file, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: make the folder refuse as a read-only one would
        monkeypatch.setattr("rnnzoo.data.cache.os.access", lambda path, mode: False)
    else:
        cache.chmod(0o555)
    unwritable = r"cache folder .* is not writable .* dataset.cache_dir=DIR .* dataset.cache=false"
    with pytest.raises(DataError, match=unwritable):
        build_task(generation(text_file, cache))


def test_no_source_file_is_ever_modified(tmp_path, text_file):
    before = fingerprint(text_file)
    options = generation(text_file, tmp_path / "cache", "task.level=bpe")
    build_task(options).prepare_splits()
    build_task(options).prepare_splits()
    assert fingerprint(text_file) == before


# --- the command line ------------------------------------------------------------------------------------
def test_prepare_writes_then_finds_and_list_shows_the_cache(tmp_path, text_file):
    cache = tmp_path / "cache"
    command = ["prepare", "task=generation", "dataset=text_files", f"dataset.train={text_file}",
               f"dataset.cache_dir={cache}", "task.level=word"]
    first, second = run_cli(*command), run_cli(*command)
    assert first.returncode == second.returncode == 0, first.stderr
    assert first.stdout.count("written") == 4 and second.stdout.count("found") == 4
    assert "token cache: train split of text_files" in first.stderr
    listing = run_cli("list", f"cache={cache}")
    assert f"token cache {cache}: 4 entries" in listing.stdout and "text_files-generation-train" in listing.stdout
    assert not (tmp_path / "outputs").exists()


# --- the reproduction's corpora ------------------------------------------------------------------------
@pytest.mark.skipif(not (DATA_DIR / "ptb").is_dir(), reason=f"reference data not found in {DATA_DIR}")
@pytest.mark.parametrize("dataset, level", [("tinyshakespeare", "char"), ("ptb", "word")])
def test_the_recipes_corpora_give_the_same_ids_and_batches_from_the_cache(tmp_path, dataset, level):
    """What docs/results.md reports for tinyshakespeare and PTB was trained on these very batches."""
    options = ["task=generation", f"dataset={dataset}", f"dataset.root={DATA_DIR / dataset}", f"task.level={level}",
               f"dataset.cache_dir={tmp_path}", "model.hidden_size=8", "task.batch_size=20", "task.bptt=35"]
    cached, in_memory = build_task(options), build_task([*options, "dataset.cache=false"])
    assert cached.tokenizer.state_dict() == in_memory.tokenizer.state_dict()
    for split in ("train", "val", "test"):
        assert np.array_equal(cached.ids(split), in_memory.ids(split))
    assert_same_batches(cached, in_memory, count=3)
