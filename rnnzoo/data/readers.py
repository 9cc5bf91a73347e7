"""Readers for the file formats users already have; every named dataset reads through these.

    read_text        plain text, as is (character- or word-level LM corpora)
    read_conll       CoNLL columns: one token per line, tag in a column, blank line between
                     sentences (CoNLL-2000 chunking `WORD POS CHUNK`, WNUT-17 `WORD<TAB>TAG`)
    read_conllu      CoNLL-U (Universal Dependencies, https://universaldependencies.org/format.html)
    read_labeled     `label<TAB>text` or `label text` lines (SST-2 `1 a stirring ...`,
                     TREC `NUM:dist How far ...`)
    read_parallel    two files, line i of one translating line i of the other (Multi30k)
    read_tsv_pairs   `source<TAB>target` lines (Tatoeba / manythings.org pairs)

A file that cannot be read as its format says raises `DataError` with the file, the 1-based
line number and what was expected there, so a user can fix the line rather than guess.
Files are read as bytes and decoded line by line, so that one badly encoded line (TREC's
line 66 is latin-1 in a file read as UTF-8) is reported, or decoded with a fallback, without
giving up on the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Iterator

from ..errors import RnnzooError, excerpt
from .examples import LabeledText, ParallelPair, TaggedSentence

PathLike = str | Path

CONLLU_TAG_COLUMNS = {"upos": 3, "xpos": 4}  # 0-based: UPOS is column 4, XPOS column 5
CONLLU_WIDTH = 10


class DataError(RnnzooError):
    """A data file that is missing, malformed, or fails its checksum; the message says where."""


def line_error(path: PathLike, lineno: int, expected: str, line: str | None = None) -> DataError:
    """`FILE, line N: expected WHAT; got 'LINE'`."""
    got = "" if line is None else f"; got {excerpt(line)}"
    return DataError(f"{path}, line {lineno}: expected {expected}{got}")


def unreadable(path: PathLike, error: OSError) -> DataError:
    """The one way every data path says a file cannot be read: missing, a folder, or why not."""
    if isinstance(error, FileNotFoundError):
        return DataError(f"{path}: no such file")
    if isinstance(error, IsADirectoryError):
        return DataError(f"{path}: is a folder, expected a file")
    return DataError(f"{path}: cannot be read ({error.strerror or error})")


def read_bytes(path: PathLike) -> bytes:
    """The file's bytes, or a DataError that names it (never a bare OSError)."""
    with open_bytes(path) as stream:
        return stream.read()


def iter_lines(path: PathLike, encoding: str = "utf-8",
               fallback_encoding: str | None = None) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line ending) for each line of the file, read as a
    stream (the file is never held whole)."""
    with open_bytes(path) as stream:
        for lineno, raw in enumerate(stream, start=1):  # the newline that ends the last line starts none
            yield lineno, _decode_line(raw.rstrip(b"\n").rstrip(b"\r"), path, lineno, encoding, fallback_encoding)


def open_bytes(path: PathLike) -> BinaryIO:
    """The file opened for reading bytes, or a DataError that names it (never a bare OSError)."""
    path = Path(path).expanduser()
    if path.is_dir():  # open() of a folder succeeds on some systems; reading it would not
        raise unreadable(path, IsADirectoryError())
    try:
        return open(path, "rb")
    except OSError as error:
        raise unreadable(path, error) from None


def _decode_line(raw: bytes, path: PathLike, lineno: int, encoding: str, fallback: str | None) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        if fallback is not None:
            try:
                return raw.decode(fallback)
            except UnicodeDecodeError:
                pass
        hint = "" if fallback else " (a fallback_encoding such as latin-1 would read it)"
        raise line_error(path, lineno, f"{encoding} text, but byte {error.start + 1} of the line is "
                                       f"{raw[error.start:error.start + 1]!r}{hint}") from None


# --- text --------------------------------------------------------------------------------
def read_text(path: PathLike, encoding: str = "utf-8") -> str:
    """The whole file as one string, line endings normalized to '\\n' (as Python's open() does).

    Nothing else is changed: tokenizing (characters, words, subwords) and adding `<eos>` per
    line (Mikolov's PTB convention) are the task's business.
    """
    raw = read_bytes(path)
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        lineno = raw.count(b"\n", 0, error.start) + 1
        raise line_error(path, lineno, f"{encoding} text (byte {raw[error.start:error.start + 1]!r} "
                                       f"is not)") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- tagged sentences ----------------------------------------------------------------------
class _SentenceBuilder:
    """Collects (token, tag) pairs; a blank line or the end of the file closes a sentence."""

    def __init__(self) -> None:
        self.sentences: list[TaggedSentence] = []
        self.tokens: list[str] = []
        self.tags: list[str] = []

    def add(self, token: str, tag: str) -> None:
        self.tokens.append(token)
        self.tags.append(tag)

    def close(self) -> None:
        if self.tokens:
            self.sentences.append(TaggedSentence(self.tokens, self.tags))
            self.tokens, self.tags = [], []


def read_conll(path: PathLike, token_column: int = 0, tag_column: int = -1,
               separator: str | None = None) -> list[TaggedSentence]:
    """Sentences from CoNLL column files: one token per line, blank line between sentences.

    Columns are 0-based and may count from the end (-1: the last, as CoNLL-2000's chunk tag
    and CoNLL-2003's NER tag are). `separator` None splits on any whitespace; pass "\\t" for
    files whose tokens may hold spaces. Every token line must have as many columns as the
    first one: a token containing the separator shows up here rather than as a shifted tag.
    `-DOCSTART-` lines (CoNLL-2003 document markers) are skipped.
    """
    builder = _SentenceBuilder()
    width, width_line = 0, 0
    for lineno, line in iter_lines(path):
        if not line.strip():
            builder.close()
            continue
        fields = [field.strip() for field in line.split(separator)]
        if fields[0] == "-DOCSTART-":
            continue
        if not width:
            width, width_line = len(fields), lineno
            _check_columns(path, lineno, line, width, token_column, tag_column)
        elif len(fields) != width:
            raise line_error(path, lineno, f"{width} columns like line {width_line}, found {len(fields)}", line)
        builder.add(fields[token_column], fields[tag_column])
    builder.close()
    return builder.sentences


def _check_columns(path: PathLike, lineno: int, line: str, width: int, token_column: int, tag_column: int) -> None:
    if not (-width <= token_column < width and -width <= tag_column < width) \
            or token_column % width == tag_column % width:
        raise line_error(path, lineno, f"distinct token column {token_column} and tag column {tag_column}, "
                                       f"found {width} column(s)", line)


def read_conllu(path: PathLike, tagset: str = "upos") -> list[TaggedSentence]:
    """Sentences of FORM and UPOS (or XPOS) tags from a CoNLL-U file.

    Skipped, as POS taggers do: `#` comment lines, multiword-token ranges (ID `1-2`: the
    surface token whose words follow on their own lines) and empty nodes (ID `8.1`: enhanced
    dependencies only). Lines must have the format's 10 tab-separated columns.
    """
    if tagset not in CONLLU_TAG_COLUMNS:
        raise DataError(f"tagset must be one of {', '.join(CONLLU_TAG_COLUMNS)}, got {tagset!r}")
    column = CONLLU_TAG_COLUMNS[tagset]
    builder = _SentenceBuilder()
    for lineno, line in iter_lines(path):
        if not line.strip():
            builder.close()
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != CONLLU_WIDTH:
            raise line_error(path, lineno, f"{CONLLU_WIDTH} tab-separated columns (CoNLL-U), found {len(fields)}",
                             line)
        word_id = fields[0]
        if "-" in word_id or "." in word_id:
            continue
        if not word_id.isdigit():
            raise line_error(path, lineno, "a word ID (1, 2, ...; or a range 1-2, or an empty node 8.1) "
                                           "in column 1", line)
        builder.add(fields[1], fields[column])
    builder.close()
    return builder.sentences


# --- labeled texts -------------------------------------------------------------------------
def read_labeled(path: PathLike, separator: str | None = None, encoding: str = "utf-8",
                 fallback_encoding: str | None = "latin-1") -> list[LabeledText]:
    """`label<TAB>text` or `label text` lines: the label, then the text's whitespace tokens.

    `separator` None looks at each line: a tab if it has one, else the first run of
    whitespace (SST-2's `1 a stirring ...`, TREC's `NUM:dist How far ...`). Blank lines are
    skipped. A line that does not decode as `encoding` is decoded as `fallback_encoding`
    (TREC's train_5500.label has one latin-1 byte on line 66); None makes that an error.
    """
    examples = []
    for lineno, line in iter_lines(path, encoding, fallback_encoding):
        if not line.strip():
            continue
        split_on = separator if separator is not None else ("\t" if "\t" in line else None)
        parts = line.split(split_on, 1)
        label = parts[0].strip()
        tokens = parts[1].split() if len(parts) == 2 else []
        if not label or not tokens:
            raise line_error(path, lineno, "'label<TAB>text' or 'label text' (a label, then a non-empty text)",
                             line)
        examples.append(LabeledText(label, tokens))
    return examples


# --- parallel sentences --------------------------------------------------------------------
def read_parallel(source_path: PathLike, target_path: PathLike, encoding: str = "utf-8") -> list[ParallelPair]:
    """Pairs from two aligned files: line i of `source_path` translates line i of `target_path`.

    Different line counts, or an empty line on either side, break the alignment and raise.
    """
    sources = list(iter_lines(source_path, encoding))
    targets = list(iter_lines(target_path, encoding))
    if len(sources) != len(targets):
        raise DataError(f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}: "
                        "parallel files need line i of one to translate line i of the other")
    pairs = []
    for (lineno, source), (_, target) in zip(sources, targets):
        for path, sentence in ((source_path, source), (target_path, target)):
            if not sentence.strip():
                raise line_error(path, lineno, "a sentence (parallel files have no empty lines)", sentence)
        pairs.append(ParallelPair(source.strip(), target.strip()))
    return pairs


def read_tsv_pairs(path: PathLike, encoding: str = "utf-8") -> list[ParallelPair]:
    """Pairs from `source<TAB>target` lines; further columns (Tatoeba's attribution) are ignored."""
    pairs = []
    for lineno, line in iter_lines(path, encoding):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            raise line_error(path, lineno, "'source<TAB>target'", line)
        pairs.append(ParallelPair(fields[0].strip(), fields[1].strip()))
    return pairs
