"""Reading a large text file in chunks, with bounded memory, as `read_text` would read it whole.

    TextSpan            a split of a text dataset: a file and a range of its characters
    TextLength          a text known only by its length, which a contiguous cut slices into spans
    iter_chunks         the span's text, a chunk at a time (line endings normalized as
                        `read_text` does; decoding errors name the file and line)
    count_chars         how many characters the file holds (what a contiguous cut needs)
    iter_lines_of       the span's text as whole lines, a buffer of lines at a time
    sample_lines        evenly spaced whole lines of a file, about `limit` bytes: what the
                        vocabulary of a huge corpus is trained on (`dataset.vocab_sample_mb`)

Concatenating `iter_chunks(span)` gives exactly `read_text(path)[start:stop]`: a `\\r\\n` cut
between two chunks is still one line break, and a character split across chunks is decoded
whole (an incremental decoder).
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .readers import line_error, open_bytes, unreadable

CHUNK_BYTES = 1 << 24  # 16 MiB read at a time
PROGRESS_MIN_BYTES = 32 << 20  # files at least this large show a progress bar while prepared


@dataclass(frozen=True)
class TextSpan:
    """Characters [start, stop) of a text file after line-ending normalization (stop None: to the end)."""

    path: Path
    encoding: str = "utf-8"
    start: int = 0
    stop: int | None = None


class TextLength:
    """A text of `n` characters seen only through its length: slicing it gives (start, stop)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, part: slice) -> tuple[int, int]:
        start, stop, _ = part.indices(self.n)
        return start, stop


def iter_chunks(span: TextSpan, chunk_bytes: int = CHUNK_BYTES,
                on_bytes: Callable[[int], None] | None = None) -> Iterator[str]:
    """The span's text a chunk at a time; `on_bytes(n)` is told of every n bytes read."""
    position = 0  # characters of normalized text seen so far
    for text in _normalized_chunks(span.path, span.encoding, chunk_bytes, on_bytes):
        end = position + len(text)
        lo, hi = max(span.start - position, 0), len(text) if span.stop is None else min(span.stop - position, len(text))
        if lo < hi:
            yield text[lo:hi]
        position = end
        if span.stop is not None and position >= span.stop:
            return


def _normalized_chunks(path: Path, encoding: str, chunk_bytes: int,
                       on_bytes: Callable[[int], None] | None) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder(encoding)()
    lineno, held_cr = 1, False
    with open_bytes(path) as stream:
        while True:
            raw = stream.read(chunk_bytes)
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as error:
                bad = raw[max(error.start, 0):max(error.start, 0) + 1]
                raise line_error(path, lineno + raw.count(b"\n", 0, max(error.start, 0)),
                                 f"{encoding} text (byte {bad!r} is not)") from None
            if on_bytes is not None:
                on_bytes(len(raw))
            lineno += raw.count(b"\n")
            if held_cr:  # a '\r' that ended the last chunk: one line break with a '\n' starting this one
                text = "\r" + text
            held_cr = text.endswith("\r") and bool(raw)
            if held_cr:
                text = text[:-1]
            if text:
                yield text.replace("\r\n", "\n").replace("\r", "\n")
            if not raw:
                return


def count_chars(path: Path, encoding: str = "utf-8") -> tuple[int, list[tuple[int, int]]]:
    """(characters of the file as `read_text` returns it, marks): one streaming pass.

    marks: (characters, bytes) read before each chunk, so a character position can be turned
    into a byte offset at or before it (what `sample_lines` seeks to)."""
    marks, chars, read = [(0, 0)], 0, 0

    def count(n: int) -> None:
        nonlocal read
        read += n

    for chunk in iter_chunks(TextSpan(Path(path), encoding), on_bytes=count):
        chars += len(chunk)
        marks.append((chars, read))
    return chars, marks


def byte_floor(marks: list[tuple[int, int]], position: int) -> int:
    """A byte offset whose text lies wholly before character `position`."""
    return max((read for chars, read in marks if chars <= position), default=0)


def iter_lines_of(span: TextSpan, on_bytes: Callable[[int], None] | None = None) -> Iterator[list[str]]:
    """The span's lines (without their '\\n'), a chunk's worth at a time, as `str.splitlines` on
    '\\n' would give them: a text ending in '\\n' has no empty last line."""
    rest = ""
    for chunk in iter_chunks(span, on_bytes=on_bytes):
        chunk = rest + chunk
        cut = chunk.rfind("\n")
        if cut < 0:
            rest = chunk
            continue
        rest = chunk[cut + 1:]
        yield chunk[:cut].split("\n")
    if rest:
        yield [rest]


def sample_lines(span: TextSpan, limit: int, byte_stop: int, blocks: int = 64) -> list[str] | None:
    """About `limit` bytes of whole lines from the first `byte_stop` bytes of the span's file, as
    `blocks` evenly spaced runs of lines; None when the file is small enough to read whole, or
    its encoding is not one where a b'\\n' byte always ends a line (then read the span)."""
    if byte_stop <= limit or span.start != 0 or codecs.lookup(span.encoding).name not in ASCII_COMPATIBLE:
        return None
    block = max(limit // blocks, 1)
    picked: list[str] = []
    with open(span.path, "rb") as stream:
        for i in range(blocks):
            stream.seek((byte_stop - block) * i // max(blocks - 1, 1))
            raw = stream.read(block)
            first = -1 if stream.tell() == len(raw) else raw.find(b"\n")  # a block at 0 starts a line
            last = raw.rfind(b"\n")
            if first < last:
                text = raw[first + 1:last].decode(span.encoding, errors="replace")
                picked += text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return picked


ASCII_COMPATIBLE = {"utf-8", "ascii", "latin-1", "iso8859-1", "iso8859-15", "cp1252"}


def file_size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError as error:
        raise unreadable(path, error) from None
