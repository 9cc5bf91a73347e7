"""Pretrained word vectors read from a file, keeping only the words asked for.

    read_vectors(path, wanted, extra)   the vectors of `wanted` words (and of their lower-case
                                        forms), plus the first `extra` other words of the file
    match_words(words, vectors)         which vocabulary words have a vector: the word itself,
                                        else its lower-case form

The formats, told apart by their first bytes (the file name is not trusted):

    text     `word v1 ... vD` per line: GloVe (no header), word2vec's text output and fastText's
             `.vec` (a `COUNT DIM` header line; fastText ends each line with a space). A word may
             hold spaces (GloVe 840B has a few): the last D fields are the numbers.
    binary   word2vec's `-binary 1` output: the `COUNT DIM` header, then per word its bytes, a
             space and D little-endian float32 (a newline between entries in Google's files).

The file is streamed: a 1 GB file of two million words costs the memory of the words kept,
with a progress bar over its bytes when it is large. A malformed line (too few numbers, a
number that does not parse, a binary file ending inside an entry) is a DataError naming the
file and the line (the entry, in a binary file).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Collection, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from .readers import DataError, unreadable
from .streaming import PROGRESS_MIN_BYTES

HEADER = re.compile(rb"\s*(\d+)\s+(\d+)\s*")
SAMPLE_BYTES = 4096  # how much after the header tells text from binary
CHUNK = 1 << 20


@dataclass
class Vectors:
    """What `read_vectors` kept: `vectors[word]` (D,) float32, `extra` the added words in file order."""

    path: Path
    dim: int
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)
    format: str = "text"


@dataclass
class Match:
    """Vocabulary ids with a vector and the file word each takes (`lowered`: by the fallback)."""

    ids: list[int]
    keys: list[str]
    lowered: int


def read_vectors(path: str | Path, wanted: Collection[str], extra: int = 0, lowercase: bool = False) -> Vectors:
    """The vectors of the `wanted` words and of their lower-case forms (for the fallback), and of
    the first `extra` file words not among `wanted` (with `lowercase`: only words already lower-case,
    as a lower-casing task could never see another), for growing a vocabulary. A word repeated
    in the file keeps its first vector."""
    path, wanted = Path(path), set(wanted)
    keep = wanted | {word.lower() for word in wanted}
    try:
        size = path.stat().st_size
        with path.open("rb") as file, tqdm(total=size, unit="B", unit_scale=True, desc=f"reading {path.name}",
                                           disable=size < PROGRESS_MIN_BYTES, leave=False) as progress:
            kind, dim, count = sniff(file, path)
            result = Vectors(path, dim, format=kind)
            entries = binary_entries(file, path, dim, count) if kind == "binary" else text_entries(file, path, dim)
            for word, numbers, consumed in entries:
                progress.update(consumed)
                if word in result.vectors:
                    continue
                grow = len(result.extra) < extra and word not in wanted and (not lowercase or word == word.lower())
                if grow:
                    result.extra.append(word)
                if grow or word in keep:
                    result.vectors[word] = numbers()
    except OSError as error:
        raise unreadable(path, error) from None
    return result


def sniff(file: BinaryIO, path: Path) -> tuple[str, int, int | None]:
    """(format, dimension, the header's word count or None), the file left after any header."""
    first = file.readline(CHUNK)
    header = HEADER.fullmatch(first)
    if header is None:  # GloVe: no header, the first line is a vector
        fields = first.split()
        if len(fields) < 2:
            raise DataError(f"{path}:1: expected a 'COUNT DIM' header or 'word v1 ... vD', got {_show(first)}")
        file.seek(0)
        return "text", len(fields) - 1, None
    count, dim = int(header.group(1)), int(header.group(2))
    if dim < 1:
        raise DataError(f"{path}:1: the header gives dimension {dim}; vectors need 1 or more")
    start = file.tell()
    sample = file.read(SAMPLE_BYTES)
    file.seek(start)
    return ("text" if _is_text(sample) else "binary"), dim, count


def _is_text(sample: bytes) -> bool:
    """Whether bytes read as UTF-8 text (a cut character at the end allowed): float32 never do."""
    try:
        decoded = codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return not any(ord(c) < 32 and c not in "\t\n\r" for c in decoded)


def text_entries(file: BinaryIO, path: Path, dim: int) -> Iterator[tuple[str, Numbers, int]]:
    """(word, its numbers when asked for, bytes read) per line; numbers are parsed only for the
    words kept, but every line's field count is checked."""
    first = 1 if file.tell() == 0 else 2  # the header, where there is one, was line 1
    for number, raw in enumerate(file, first):
        line = raw.rstrip()
        if not line:  # a blank line (the end of some files) holds no word
            continue
        spaces = line.count(b" ")
        if spaces < dim:
            raise DataError(f"{path}:{number}: expected a word and {dim} numbers, got {spaces} field(s) after "
                            f"the first: {_show(line)}")
        word_bytes = line[:line.index(b" ")] if spaces == dim else line.rsplit(b" ", dim)[0]
        yield _decode(word_bytes, path, number), Numbers(line[len(word_bytes) + 1:], dim, path, number), len(raw)


def binary_entries(file: BinaryIO, path: Path, dim: int, count: int | None) -> Iterator[tuple[str, Numbers, int]]:
    """(word, its numbers, bytes read) per entry of word2vec's binary format."""
    width, buffer, position = 4 * dim, b"", 0
    for entry in range(1, (count or 0) + 1):
        while True:
            space = buffer.find(b" ", position)
            if space != -1 and len(buffer) >= space + 1 + width:
                break
            more = file.read(CHUNK)
            if not more:
                raise DataError(f"{path}: the file ends inside entry {entry:,} of the {count:,} its header promises "
                                f"({dim} float32 each)")
            buffer, position = buffer[position:] + more, 0
        start = position
        word = _decode(buffer[position:space].strip(b"\n"), path, entry, "entry")
        position = space + 1 + width
        yield word, Numbers(buffer[space + 1:position], dim, path, entry, binary=True), position - start


class Numbers:
    """A line's numbers, parsed only when called (most lines of a large file are skipped)."""

    def __init__(self, raw: bytes, dim: int, path: Path, number: int, binary: bool = False) -> None:
        self.raw, self.dim, self.path, self.number, self.binary = raw, dim, path, number, binary

    def __call__(self) -> np.ndarray:
        if self.binary:
            return np.frombuffer(self.raw, dtype="<f4").copy()  # (D,)
        try:
            values = np.array(self.raw.split(), dtype=np.float32)  # (D,)
        except ValueError:
            raise DataError(f"{self.path}:{self.number}: a vector's numbers must parse as floats, got "
                            f"{_show(self.raw)}") from None
        if len(values) != self.dim:
            raise DataError(f"{self.path}:{self.number}: expected {self.dim} numbers, got {len(values)}")
        return values


def match_words(words: Sequence[str], vectors: dict[str, np.ndarray], first: int = 0) -> Match:
    """Which of `words[first:]` (a vocabulary's tokens, specials before `first`) have a vector:
    the word itself, else its lower-case form (GloVe 6B and most word2vec files are lower-case)."""
    ids, keys, lowered = [], [], 0
    for index in range(first, len(words)):
        word = words[index]
        key = word if word in vectors else word.lower() if word.lower() in vectors else None
        if key is not None:
            ids.append(index)
            keys.append(key)
            lowered += key != word
    return Match(ids, keys, lowered)


def _decode(raw: bytes, path: Path, number: int, what: str = "line") -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        where = f"{path}:{number}" if what == "line" else f"{path}: entry {number:,}"
        raise DataError(f"{where}: the word is not UTF-8: {_show(raw)}") from None


def _show(raw: bytes, limit: int = 60) -> str:
    text = raw.decode("utf-8", "replace").rstrip("\n")
    return repr(text if len(text) <= limit else text[:limit] + "...")
