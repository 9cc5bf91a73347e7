"""The examples the readers return, one dataclass per kind of data.

    kind      example                      read by
    text      a plain `str` per split      read_text
    tagged    TaggedSentence               read_conll, read_conllu
    labeled   LabeledText                  read_labeled
    parallel  ParallelPair                 read_parallel, read_tsv_pairs

The kind is also the trait a dataset registers with (`traits={"tagged"}`), and what a task
lists in `reads`.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("text", "tagged", "labeled", "parallel")


@dataclass
class TaggedSentence:
    """One sentence with one tag per token (POS, chunk or NER tags)."""

    tokens: list[str]
    tags: list[str]


@dataclass
class LabeledText:
    """A text and its class; `tokens` are the whitespace tokens of the text."""

    label: str
    tokens: list[str]


@dataclass
class ParallelPair:
    """A sentence and its translation, raw (untokenized) as the files hold them."""

    source: str
    target: str
