"""scripts/bench_data.py's helpers: corpora to a size, /proc parsing, the log line, tables, the report file."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
SCRIPT = SCRIPTS / "bench_data.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """scripts/bench_data.py, imported as a module from the scripts folder (not part of the package)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module("bench_data")
    finally:
        sys.path.remove(str(SCRIPTS))


SOURCE = b"First line\nsecond\nthird one\n"  # 28 bytes


@pytest.mark.parametrize("size", [5, 28, 30, 60, 100])
def test_corpus_is_whole_lines_up_to_the_size(bench: ModuleType, size: int) -> None:
    text = b"".join(bench.corpus_bytes(SOURCE, size))
    assert len(text) <= size and len(text) == bench.expected_size(SOURCE, size)
    assert text == (SOURCE * 4)[:len(text)] and (not text or text.endswith(b"\n"))
    assert size - len(text) < len(b"third one\n")  # cut at the last line that fits


def test_corpus_is_built_once_and_rebuilt_when_its_size_is_wrong(bench: ModuleType, tmp_path: Path) -> None:
    source = tmp_path / "input.txt"
    source.write_bytes(SOURCE)
    path = bench.build_corpus(source, tmp_path / "big.txt", 100)
    built = path.stat().st_mtime_ns
    assert bench.build_corpus(source, path, 100).stat().st_mtime_ns == built
    path.write_bytes(b"truncated\n")
    assert bench.build_corpus(source, path, 100).read_bytes() == b"".join(bench.corpus_bytes(SOURCE, 100))
    assert not list(tmp_path.glob("*.partial"))


def test_validation_is_the_last_tenth_from_a_line_start(bench: ModuleType) -> None:
    source = b"".join(b"line %02d\n" % i for i in range(20))  # 160 bytes, 8 a line
    assert bench.validation_bytes(source) == source[144:]  # the last 2 lines exactly
    assert bench.validation_bytes(b"a" * 95 + b"\nlast\n") == b"last\n"


STATUS = """Name:\tpython
VmPeak:\t  812345 kB
VmHWM:\t  402120 kB
VmRSS:\t  398000 kB
RssAnon:\t  280100 kB
Threads:\t2
"""


def test_parse_status_reads_kilobyte_fields(bench: ModuleType) -> None:
    fields = bench.parse_status(STATUS)
    assert fields["VmHWM"] == 402120 and fields["RssAnon"] == 280100
    assert "Threads" not in fields and "Name" not in fields


def test_a_child_is_timed_and_its_memory_seen(bench: ModuleType, tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import time; x = bytearray(60_000_000); time.sleep(0.3); print('bye')"]
    measured = bench.run_measured(command, {}, tmp_path, tmp_path / "child.log")
    assert measured.returncode == 0 and measured.output.strip() == "bye"
    assert measured.wall_s >= 0.3
    assert measured.anon_kb * 1024 >= 60_000_000 and measured.rss_kb >= measured.anon_kb


def test_first_step_seconds_from_the_trainer_line(bench: ModuleType) -> None:
    log = ("[2026-12-07 01:31:54,199][rnnzoo][INFO] - model lstm (150,086 parameters) on task generation\n"
           "[2026-12-07 01:31:55,329][rnnzoo][INFO] - first training batch done 102.24 s after the process started\n")
    assert bench.first_step_seconds(log) == 102.24
    assert bench.first_step_seconds("step 5 val loss=3.2") is None


def measured(bench: ModuleType, wall: float, rss_gb: float) -> object:
    return bench.Measured(wall, int(rss_gb * 10**9 / 1024), int(rss_gb * 10**9 / 2048), 0, "")


def test_level_table_and_verdicts(bench: ModuleType) -> None:
    rows = [bench.Row("char", 1, measured(bench, 2.0, 0.3), measured(bench, 3.0, 0.4), 2.0),
            bench.Row("char", 1000, measured(bench, 25.0, 1.5), measured(bench, 4.0, 0.9), 2.6)]
    table = bench.level_table(rows).splitlines()
    assert table[0].startswith("| corpus MB | prepare s | prepare MB/s |") and table[1] == "|" + "---|" * 10
    assert table[3].split(" | ")[:3] == ["| 1000", "25.0", "40.0"] and "1.30x" in table[3]
    text = "\n".join(bench.verdicts({"char": rows}))
    assert "**NOT met**: char: time to the first step" in text  # 1.3x > 1.2x
    assert "**met**: char 1000 MB, 5-step run: peak RSS 0.90 GB" in text
    assert "**met**: char preparation 40.0 MB/s" in text


def test_verdicts_need_the_rows_they_speak_of(bench: ModuleType) -> None:
    rows = [bench.Row("char", 1, None, measured(bench, 3.0, 0.4), None)]
    text = "\n".join(bench.verdicts({"char": rows}))
    assert "**n/a**: char 1000 MB, 5-step run: peak RSS n/a GB" in text
    assert "**n/a**: char preparation n/a MB/s" in text


def test_subword_table_says_na_without_the_cached_tokenizer(bench: ModuleType, tmp_path: Path) -> None:
    assert bench.cached_subword(tmp_path) is None
    row = bench.Row("bpe", 10, measured(bench, 5.0, 1.0), None, None, bench.hf_rate(tmp_path, SCRIPT))
    assert bench.subword_table([row]).splitlines()[2] == "| bpe | 10 | 2.00 | n/a | n/a | n/a |"


def test_the_cached_tokenizer_is_read_and_timed(bench: ModuleType, tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    state = {"task_state": {"tokenizer": {"level": "wordpiece", "subword": tokenizer.to_str()}}}
    (tmp_path / "tokens" / "abc123").mkdir(parents=True)
    (tmp_path / "tokens" / "abc123" / "vocab.json").write_text(json.dumps(state))
    assert bench.cached_subword(tmp_path) == tokenizer.to_str()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a b a\n" * 25_001)
    assert [len(batch) for batch in bench.line_batches(corpus)] == [10_000, 10_000, 5_001]
    assert bench.hf_rate(tmp_path, corpus) > 0


def test_write_section_keeps_the_hand_written_text(bench: ModuleType, tmp_path: Path) -> None:
    doc = tmp_path / "bench_data.md"
    bench.write_section(doc, "cache", "table one")
    doc.write_text("# Title\n\nBy hand.\n\n" + doc.read_text() + "\nAfter.\n")
    bench.write_section(doc, "cache", "table two")
    bench.write_section(doc, "baseline", "old table")
    text = doc.read_text()
    assert "table one" not in text and text.count("table two") == 1
    assert text.startswith("# Title\n\nBy hand.\n\n<!-- bench_data:cache:begin -->\ntable two\n")
    assert "\nAfter.\n" in text and text.rstrip().endswith("old table\n<!-- bench_data:baseline:end -->")


def test_work_folder_inside_the_repository_is_refused(bench: ModuleType) -> None:
    with pytest.raises(SystemExit, match="inside the repository"):
        bench.build_inputs(bench.REPO / "outputs" / "bench", [1.0])


STUB_MAIN = '''
import json, os, pathlib, sys
verb = sys.argv[1]
args = dict(arg.split("=", 1) for arg in sys.argv[2:])
assert os.environ["OMP_NUM_THREADS"] == "1" and args["trainer.num_threads"] == "1"
if verb == "prepare":
    from tokenizers import Tokenizer, models, pre_tokenizers
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    entry = pathlib.Path(os.environ["RNNZOO_CACHE_DIR"], "tokens", "text-generation-vocab-v1-0")
    entry.mkdir(parents=True)
    state = {"tokenizer": {"level": args["task.level"], "subword": tokenizer.to_str()}}
    (entry / "meta.json").write_text(json.dumps({"task_state": state}))
else:
    assert args["trainer.max_steps"] == "5"
    print("[rnnzoo][INFO] - first training batch done 1.25 s after the process started")
'''


def test_a_level_and_size_end_to_end_on_a_stub_rnnzoo(bench: ModuleType, tmp_path: Path) -> None:
    """The commands, environment, log parsing and HF comparison, on a stand-in for `python -m rnnzoo`."""
    pytest.importorskip("tokenizers")
    (tmp_path / "stub" / "rnnzoo").mkdir(parents=True)
    (tmp_path / "stub" / "rnnzoo" / "__init__.py").write_text("")
    (tmp_path / "stub" / "rnnzoo" / "__main__.py").write_text(STUB_MAIN)
    corpus, work = tmp_path / "corpus.txt", tmp_path / "work"
    corpus.write_text("to be or not\n" * 1000)
    work.mkdir()
    row = bench.Bench(bench.Code(sys.executable, tmp_path / "stub"), work, prepare=True).measure("bpe", 0.013, corpus)
    assert row.prepare.returncode == 0 and row.run.returncode == 0 and row.first_step_s == 1.25
    assert row.hf_mb_s > 0 and row.prepare_mb_s > 0 and row.run.rss_kb > 0
    args = bench.parse_args(["--sizes", "0.013", "--levels", "bpe"])
    text = bench.report(args, bench.Code(sys.executable, tmp_path / "stub"), "stub", {"bpe": [row]})
    assert "#### bpe" in text and "#### Subword preparation" in text and "#### Targets" in text
