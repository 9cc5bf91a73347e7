"""Pretrained word vectors (GloVe, word2vec, fastText) in a word-level task's embeddings.

    VectorOptions          the task options (`task.pretrained_embeddings`, ...), a config mixin
    VectorSide             one vocabulary a task embeds, and the file its vectors come from
    read_task_vectors      before the model is sized: read each side's file (streamed, only the
                           vocabulary's words kept) and grow the vocabulary where asked
    init_embeddings        after the network is built: copy the vectors in, log the coverage,
                           freeze the embeddings or scale their learning rate

A task lists its sides (`vector_sides()`: tagging and classification their words, generation
its tokens, translation source and target) and their tables (`word_embeddings(network)`);
`rnnzoo.build.build_run` calls the two functions here, so this module is the one place that
applies vectors. Only a fresh run reads the file: a checkpoint holds the vectors in its
weights and the grown vocabulary in its task state, so `rnnzoo predict`, `eval` and resuming
never need the file again (the freezing and the learning-rate scale are re-applied from the
config on every build, so a resumed run trains as it started).

Initialization follows Kim (2014) and Collobert et al. (2011): the rows of words with a vector
take it, the other rows keep their random init rescaled to the vectors' standard deviation (so
the two kinds of rows are of one scale), the padding row stays 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..data import Tokenizer
from ..data.vectors import Vectors, match_words, read_vectors
from ..data.vocab import Vocabulary
from ..errors import RnnzooError
from ..registry import help_field

log = logging.getLogger("rnnzoo")


@dataclass
class VectorOptions:
    pretrained_embeddings: str | None = help_field(
        None, "word vectors to start the embeddings from: GloVe/word2vec text (with or without a 'COUNT DIM' "
              "header), fastText .vec or word2vec binary, told apart by content; word tokens only; read once, "
              "at the start of a fresh run (checkpoints hold the vectors)")
    extend_vocab_from_vectors: int = help_field(
        0, "add up to this many words of the vectors file the vocabulary lacks, in file order (most frequent "
           "first in published files), so words unseen in training keep their vectors (0: none)", ge=0)
    freeze_embeddings: bool = help_field(False, "keep the word embeddings fixed in training (Kim 2014's "
                                                "'static'); a tied output layer freezes with them")
    embedding_lr_scale: float = help_field(1.0, "learning-rate multiplier of the word embeddings (0: frozen)", ge=0)


VECTOR_FILE_OPTIONS = ("pretrained_embeddings", "pretrained_target_embeddings")  # task options naming a file


@dataclass
class VectorSide:
    """One embedded vocabulary: its name (words, source, target), tokenizer, vectors file (or
    None), the option that sets its width (for errors) and its training token counts, (V,)."""

    name: str
    tokenizer: Tokenizer
    path: str | None
    width_option: str
    counts: Callable[[], np.ndarray]
    lowercase: bool = False


def id_counts(sequences: Any, vocab_size: int) -> np.ndarray:
    """(V,) how often each id occurs in `sequences` (id lists)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for ids in sequences:
        counts += np.bincount(np.asarray(ids, dtype=np.int64), minlength=vocab_size)[:vocab_size]
    return counts


def read_task_vectors(task: Any) -> dict[str, Vectors]:
    """{side name: its vectors} for the sides that name a file, each file read once per
    vocabulary; with `extend_vocab_from_vectors` the vocabulary is grown here, before the model
    is sized from it. Empty where no side names a file, without touching the data (listing the
    sides builds the vocabularies: a run that is refused for its model must not read a corpus first)."""
    if not any(getattr(task.config, option, None) for option in VECTOR_FILE_OPTIONS):
        return {}
    sides = [side for side in getattr(task, "vector_sides", list)() if side.path]
    read: dict[tuple[str, int], Vectors] = {}
    for side in sides:
        if side.tokenizer.level != "word":
            raise RnnzooError(f"task.pretrained_embeddings gives one vector per word, but the {side.name} side is "
                              f"cut into {side.tokenizer.level} tokens: set task.tokenizer=word (generation: "
                              "task.level=word)")
        key = (side.path, id(side.tokenizer))
        if key not in read:
            read[key] = read_side(task, side)
    return {side.name: read[(side.path, id(side.tokenizer))] for side in sides}


def read_side(task: Any, side: VectorSide) -> Vectors:
    """One side's vectors, its vocabulary grown by up to `extend_vocab_from_vectors` words."""
    vocab = side.tokenizer.vocab
    vectors = read_vectors(side.path, vocab.itos[len(vocab.specials):], task.config.extend_vocab_from_vectors,
                           side.lowercase)
    if vectors.extra:  # new ids after the old ones: a shared tokenizer (translation) grows once for both sides
        side.tokenizer.vocab = Vocabulary([*vocab.itos[len(vocab.specials):], *vectors.extra], vocab.specials)
        log.info("task: %s vocabulary grown by %d words of %s, to %d", side.name, len(vectors.extra),
                 side.path, len(side.tokenizer.vocab))
    return vectors


def init_embeddings(task: Any, network: nn.Module, read: dict[str, Vectors]) -> None:
    """The vectors of `read` copied into the network's tables (with the coverage logged), then
    every table frozen or its learning rate scaled as the task's options say."""
    tables = task.word_embeddings(network) if hasattr(task, "word_embeddings") else {}
    sides = {side.name: side for side in task.vector_sides()} if read else {}
    for name, vectors in read.items():
        if name not in tables:
            raise RnnzooError(f"task.pretrained_embeddings: this network has no {name} embedding table to start "
                              f"from vectors ({type(getattr(network, 'body', network)).__name__} embeds token ids "
                              "itself, or the inputs are one-hot)")
        copy_vectors(tables[name], sides[name], vectors)
    scale = 0.0 if getattr(task.config, "freeze_embeddings", False) else getattr(task.config, "embedding_lr_scale", 1.0)
    if scale != 1.0:
        for table in {id(t): t for t in tables.values()}.values():  # a shared table once
            set_lr_scale(table.weight, scale)


def copy_vectors(table: nn.Embedding, side: VectorSide, vectors: Vectors) -> None:
    """Rows of the words found take their vector; the others are rescaled to the vectors' std."""
    if table.embedding_dim != vectors.dim:
        raise RnnzooError(f"{vectors.path} holds {vectors.dim}-dimensional vectors, but the {side.name} embedding is "
                          f"{table.embedding_dim} wide: set {side.width_option} to {vectors.dim}")
    itos = side.tokenizer.vocab.itos
    first = len(side.tokenizer.vocab.specials)
    match = match_words(itos, vectors.vectors, first)
    with torch.no_grad():
        weight = table.weight  # (V, D)
        if match.ids:
            found = torch.as_tensor(np.stack([vectors.vectors[key] for key in match.keys]))  # (F, D)
            rest = torch.ones(len(itos), dtype=torch.bool)
            rest[match.ids] = False
            if table.padding_idx is not None:
                rest[table.padding_idx] = False
            if rest.any() and weight[rest].std() > 0:
                weight[rest] *= found.std() / weight[rest].std()
            weight[match.ids] = found.to(weight.dtype)
    log_coverage(side, vectors, match.ids, match.lowered, first)


def log_coverage(side: VectorSide, vectors: Vectors, ids: list[int], lowered: int, first: int) -> None:
    """One line: the share of the vocabulary's types (those it had before growing) and of the
    training tokens (<unk> included, the other specials not) that have a vector."""
    vocab = side.tokenizer.vocab
    counts = side.counts()[:len(vocab)]  # (V,)
    has = np.zeros(len(vocab), dtype=bool)
    has[ids] = True
    types = len(vocab) - len(vectors.extra) - first
    found_types = int(has[first:first + types].sum())
    tokens = int(counts[first:].sum()) + (int(counts[vocab.unk_id]) if vocab.unk_id is not None else 0)
    found_tokens = int(counts[has].sum())
    log.info("task: %s vectors from %s (%s, %d-dim): %d of %d vocabulary types found (%.1f%%, %d by lower case); "
             "%d of %d training tokens (%.1f%%); %d words added from the file", side.name, vectors.path,
             vectors.format, vectors.dim, found_types, types, 100 * found_types / max(types, 1), lowered,
             found_tokens, tokens, 100 * found_tokens / max(tokens, 1), len(vectors.extra))


def set_lr_scale(parameter: nn.Parameter, scale: float) -> None:
    """Mark a parameter for `rnnzoo.training.optim.build_optimizer`: its learning rate times
    `scale`; 0 freezes it (requires_grad=False, so no optimizer holds it)."""
    if scale == 0:
        parameter.requires_grad_(False)
    else:
        parameter.lr_scale = scale  # type: ignore[attr-defined]
