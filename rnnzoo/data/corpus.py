"""A text span as a language model's token stream, in chunks: vocabularies and ids with bounded memory.

Exactly what `GenerationTask` computes from the whole text as one string, computed a chunk
at a time (tests check the ids are identical):

    level       vocabulary from                            ids
    char        code point counts (numpy bincount), all     a lookup table over code points
                the training text however large
    word        whitespace tokens of every line             dict look-ups, `<eos>` after each line
    wordpiece   HF WordPiece trained on the lines           HF `encode_batch` on lines (all cores),
                                                            `<eos>` after each line
    bpe         HF byte-level BPE trained on the text       HF `encode_batch` on pieces of the text
                                                            cut where the pre-tokenizer cuts anyway

For word and subword levels a split larger than `dataset.vocab_sample_mb` trains its
vocabulary on evenly spaced lines of that size (`streaming.sample_lines`), as fairseq and
sentencepiece train on a sample; char vocabularies always count everything (cheap, and a
character never seen becomes `<unk>`).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Iterable, Iterator

import numpy as np

from .streaming import TextSpan, iter_chunks, iter_lines_of, sample_lines
from .tokenize import SUBWORD_LEVELS, Tokenizer
from .vocab import EOS, Vocabulary

LINE_LEVELS = ("word", "wordpiece")  # tokenized line by line, `<eos>` closing each line
UNICODE = 0x110000
ENCODE_BATCH = 1 << 12  # lines handed to HF `encode_batch` at once
PIECE_CHARS = 1 << 16  # characters per piece of text for byte-level BPE
PIECE_BATCH = 1 << 6  # pieces handed to `encode_batch` at once: 4 MB of text (HF holds every token's
                      # Encoding of a batch at once: 4,096 pieces of 64 KB peaked at 4 GB)
# Where byte-level BPE may cut a text: after a line break between two non-space characters.
# GPT-2's pre-tokenizer ends a token at such a '\n' and starts one after it, whatever follows,
# so encoding the pieces gives the ids of the whole (a cut next to other whitespace would not).
SAFE_CUT = re.compile(r"(?<=\S\n)(?=\S)")

Progress = Callable[[int], None]


# --- vocabularies --------------------------------------------------------------------------------
def train_tokenizer(level: str, span: TextSpan, byte_stop: int, sample_bytes: int | None, vocab_size: int,
                    min_freq: int, max_size: int | None) -> Tokenizer:
    """The tokenizer `GenerationTask` would train on the span's text, built from chunks."""
    if level == "char":
        return Tokenizer("char", Vocabulary.from_counts(char_counts(span), min_freq, max_size))
    lines = None if sample_bytes is None else sample_lines(span, sample_bytes, byte_stop)
    texts: Iterable[str]
    if level in LINE_LEVELS:
        texts = lines if lines is not None else (line for chunk in iter_lines_of(span) for line in chunk)
    else:  # bpe reads the text whole: pieces where its pre-tokenizer cuts anyway (HF's trainer holds
        # what it is given at once, so one 50 MB string would cost it gigabytes)
        texts = bpe_pieces(["\n".join(lines)] if lines is not None else iter_chunks(span))
    if level == "word":
        counts: Counter[str] = Counter()
        for line in texts:
            counts.update(line.split())
        return Tokenizer("word", Vocabulary.from_counts(counts, min_freq, max_size))
    return Tokenizer.train(level, texts, vocab_size=vocab_size, min_freq=min_freq, max_size=max_size)


def char_counts(span: TextSpan) -> Counter[str]:
    totals = np.zeros(UNICODE, dtype=np.int64)
    for chunk in iter_chunks(span):
        counts = np.bincount(code_points(chunk))
        totals[:len(counts)] += counts
    return Counter({chr(int(point)): int(totals[point]) for point in np.flatnonzero(totals)})


def code_points(text: str) -> np.ndarray:
    """The text's code points: one byte each for ASCII text (4x less to convert), else uint32."""
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


# --- ids -----------------------------------------------------------------------------------------
def stream_ids(tokenizer: Tokenizer, span: TextSpan, on_bytes: Progress | None = None) -> Iterator[np.ndarray]:
    """The span's token ids, a chunk at a time, as `GenerationTask.encode` gives them for the whole."""
    level = tokenizer.level
    if level == "char":
        table = char_table(tokenizer.vocab)
        for chunk in iter_chunks(span, on_bytes=on_bytes):
            yield table[code_points(chunk)]
    elif level in LINE_LEVELS:
        eos = tokenizer.vocab.stoi[EOS]
        for lines in iter_lines_of(span, on_bytes=on_bytes):
            for start in range(0, len(lines), ENCODE_BATCH):
                yield with_eos(tokenizer.encode_batch(lines[start:start + ENCODE_BATCH]), eos)
    else:
        pieces: list[str] = []
        for piece in bpe_pieces(iter_chunks(span, on_bytes=on_bytes)):
            pieces.append(piece)
            if len(pieces) == PIECE_BATCH:
                yield flat(tokenizer.encode_batch(pieces))
                pieces = []
        if pieces:
            yield flat(tokenizer.encode_batch(pieces))


def char_table(vocab: Vocabulary) -> np.ndarray:
    """(0x110000,) id of every code point: its character's id, else <unk>'s."""
    table = np.full(UNICODE, vocab.unk_id if vocab.unk_id is not None else 0, dtype=np.int64)
    for token, index in vocab.stoi.items():
        if len(token) == 1 and token not in vocab.specials:
            table[ord(token)] = index
    return table


def with_eos(rows: list[list[int]], eos: int) -> np.ndarray:
    """Each row's ids then `eos`, concatenated."""
    if not rows:
        return np.empty(0, np.int64)
    lengths = np.fromiter((len(row) + 1 for row in rows), np.int64, len(rows))
    out = np.full(int(lengths.sum()), eos, dtype=np.int64)
    ends = np.cumsum(lengths) - 1  # where each row's <eos> goes
    keep = np.ones(len(out), dtype=bool)
    keep[ends] = False
    out[keep] = np.fromiter((i for row in rows for i in row), np.int64, len(out) - len(rows))
    return out


def flat(rows: list[list[int]]) -> np.ndarray:
    return np.fromiter((i for row in rows for i in row), np.int64)


def bpe_pieces(chunks: Iterable[str]) -> Iterator[str]:
    """Pieces of about PIECE_CHARS characters or more, cut only at `SAFE_CUT` places. The last two
    characters of a chunk are held back: whether a cut there is safe depends on the next chunk."""
    held = ""
    for chunk in chunks:
        text, start = held + chunk, 0
        limit = len(text) - 2
        while start + PIECE_CHARS < limit:
            match = SAFE_CUT.search(text, start + PIECE_CHARS, limit)
            if match is None:
                break
            yield text[start:match.start()]
            start = match.start()
        held = text[start:]
    if held:
        yield held


def is_subword(level: str) -> bool:
    return level in SUBWORD_LEVELS
