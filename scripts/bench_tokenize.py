"""rnnzoo's subword tokenizing against HF `tokenizers`' own `encode_batch`, interleaved in one process.

`scripts/bench_data.py` times a whole `rnnzoo prepare` and then HF's `encode_batch` over the
same file, one after the other; on a shared machine the load changes between the two and the
ratio with it (it read 0.65x to 1.56x for the same code). Here both run in one process, on the
same tokenizer, block by block: the corpus is cut into blocks of about `--block-mb` MB at line
ends, and each block is tokenized by rnnzoo's path (`rnnzoo.data.corpus.stream_ids`: reading
the block's file, decoding, HF's batch encoding of pieces or lines, ids into numpy) and by HF's
`encode_batch` over its lines (from memory, 10,000 lines a batch), the order alternating from
block to block. The ratio of the two totals is the figure issue 15's target names (>= 0.8x).

    python -m scripts.bench_tokenize --corpus /tmp/rnnzoo_bench_data/corpus_100MB.txt [--levels bpe,wordpiece]
                                      [--blocks 20] [--block-mb 4] [--out docs/bench_data.md]

The tokenizer is trained by rnnzoo on the corpus's first `--train-mb` MB, as `rnnzoo prepare`
would train it on a sample (task.vocab_size=8000).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rnnzoo.data import corpus
from rnnzoo.data.streaming import TextSpan
from rnnzoo.data.tokenize import Tokenizer
from scripts.bench_data import machine, write_section

MB = 10**6
HF_BATCH_LINES = 10_000


def blocks_of(path: Path, block_bytes: int, count: int) -> list[bytes]:
    """The first `count` blocks of about `block_bytes` bytes, each ending at a line end."""
    blocks, rest = [], b""
    with open(path, "rb") as stream:
        while len(blocks) < count:
            raw = stream.read(block_bytes)
            if not raw:
                break
            raw = rest + raw
            cut = raw.rfind(b"\n") + 1
            blocks.append(raw[:cut])
            rest = raw[cut:]
    return blocks


def rnnzoo_seconds(tokenizer: Tokenizer, block: bytes, scratch: Path) -> float:
    path = scratch / "block.txt"
    path.write_bytes(block)
    start = time.perf_counter()
    ids = np.concatenate(list(corpus.stream_ids(tokenizer, TextSpan(path))))
    seconds = time.perf_counter() - start
    assert len(ids) > 0
    return seconds


def hf_seconds(tokenizer: Tokenizer, block: bytes) -> float:
    subword = tokenizer.state_dict()["subword"]
    from tokenizers import Tokenizer as HFTokenizer
    hf = HFTokenizer.from_str(subword)
    lines = block.decode("utf-8").split("\n")
    start = time.perf_counter()
    for i in range(0, len(lines), HF_BATCH_LINES):
        hf.encode_batch(lines[i:i + HF_BATCH_LINES])
    return time.perf_counter() - start


def measure(level: str, corpus_path: Path, args: argparse.Namespace) -> tuple[float, float, float]:
    """(MB tokenized, rnnzoo MB/s, HF MB/s), interleaved block by block."""
    sample = TextSpan(corpus_path, "utf-8", 0, int(args.train_mb * MB))
    tokenizer = corpus.train_tokenizer(level, sample, int(args.train_mb * MB), None, 8000, 1, None)
    blocks = blocks_of(corpus_path, int(args.block_mb * MB), args.blocks)
    ours = theirs = 0.0
    with tempfile.TemporaryDirectory() as scratch:
        for i, block in enumerate(blocks):
            if i % 2 == 0:
                ours += rnnzoo_seconds(tokenizer, block, Path(scratch))
                theirs += hf_seconds(tokenizer, block)
            else:
                theirs += hf_seconds(tokenizer, block)
                ours += rnnzoo_seconds(tokenizer, block, Path(scratch))
    size = sum(len(block) for block in blocks) / MB
    return size, size / ours, size / theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--levels", default="bpe,wordpiece")
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--block-mb", type=float, default=4.0)
    parser.add_argument("--train-mb", type=float, default=10.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = ["| level | MB tokenized | rnnzoo MB/s | HF encode_batch MB/s | ratio |", "|---|---|---|---|---|"]
    for level in args.levels.split(","):
        size, ours, theirs = measure(level, args.corpus, args)
        rows.append(f"| {level} | {size:.0f} | {ours:.2f} | {theirs:.2f} | **{ours / theirs:.2f}x** |")
        print(rows[-1], flush=True)
    command = f"python -m scripts.bench_tokenize --corpus {args.corpus.name} --levels {args.levels} " \
              f"--blocks {args.blocks} --block-mb {args.block_mb:g}"
    body = "\n".join([f"Command: `{command}`; machine: {machine()}.", "", *rows, ""])
    print(body)
    if args.out:
        write_section(args.out, "tokenize", body)


if __name__ == "__main__":
    main()
