"""What the text tasks share: a padded batch, vocabularies from the training split, bucketing.

    TextBatch        padded token ids with their real lengths (recurrent models pack on them)
    TextDataConfig   the options every text task takes (batch sizes, tokenizer, vocabulary)
    TextConfig       ... and those of the task's own embedding (width, dropout)
    TextTask         reads splits lazily through `rnnzoo.data.open_dataset`, builds its tokenizer
                     from the training split only (subclasses keep it in `state_dict` as plain
                     data) or inherits a pretraining run's, and cuts examples into
                     length-bucketed batches
    (their input layers, TextEmbedding, CharCNN and TokenIds, are in rnnzoo.nn.embedding)
    pad_batch, pad_chars, masked_mean, masked_max   padding helpers; pads never count

A task subclass says how an example becomes (token ids, target) and what its network is; the
batching, vocabularies and the line-by-line `predict` plumbing live here, so tagging,
classification and generation read their data the same way.

Models that read token ids (trait `token_input`, BERT) get them as they are, framed as BERT
frames a sentence, [CLS] tokens [SEP], spelled <bos> ... <eos> here (`TextTask.input_layer`
decides, and `frame` frames); recurrent models keep the task's embeddings and unframed ids.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..data import Tokenizer, bucket_batches, open_dataset, pad_sequences
from ..data.arrays import Examples
from ..errors import RnnzooError
from ..models.traits import traits_of
from ..nn.embedding import CharCNN, TextEmbedding, TokenIds
from ..registry import help_field
from .base import Task, seeded_generator
from .batch import DataclassBatch
from .data_cache import cache_of, cached_examples, cached_vocab
from .embeddings import VectorOptions, VectorSide, id_counts
from .lengths import LengthLimits

log = logging.getLogger("rnnzoo")

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


@dataclass
class TextBatch(DataclassBatch):
    """Right-padded sentences, batch first.

    inputs: (B, T) token ids, 0 at pads; targets: (B, T) per-token ids or (B,) one per
    sentence; mask: (B, T) bool, the real tokens; lengths: (B,) real lengths, kept on the CPU
    for `pack_padded_sequence`; chars: (B, T, C) character ids of each word, or None.

    Subword tagging labels words, not pieces: then `starts` (B, W) holds the position of each
    word's first piece (0 at pads), and targets and mask are (B, W), one per word.
    """

    inputs: Tensor
    targets: Tensor
    mask: Tensor
    lengths: Tensor
    chars: Tensor | None = None
    starts: Tensor | None = None

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())

    def windows(self, size: int | None) -> list["TextBatch"]:
        """Sentences train whole: truncated BPTT has nothing to cut here."""
        if size is not None and size < self.inputs.shape[1]:
            raise RnnzooError("text tasks train on whole sentences: set trainer.tbptt_steps=null")
        return [self]


@dataclass
class TextDataConfig(VectorOptions):
    batch_size: int = help_field(32, "sentences per training batch (bucketed by length)", ge=1)
    eval_batch_size: int = help_field(256, "sentences per evaluation batch", ge=1)
    tokenizer: str = help_field("word", "token level: word (whitespace), char, bpe or wordpiece (trained on "
                                        "the training split; with model.init_from the pretraining run's)")
    vocab_size: int = help_field(8000, "subword vocabulary size for bpe/wordpiece", ge=1)
    min_freq: int = help_field(1, "words seen fewer times in the training split become <unk>", ge=1)
    max_vocab: int | None = help_field(None, "keep at most this many words besides the specials (null: all)", ge=1)
    lowercase: bool = help_field(False, "lower-case words before looking them up")
    target: float | None = help_field(None, "stop when the monitored validation metric reaches this (null: never)",
                                      unbounded=True)


@dataclass
class TextConfig(TextDataConfig):
    embedding_dim: int = help_field(100, "width of the task's word embeddings (the model's input_size; unused "
                                         "by models that embed tokens themselves, as bert)", ge=1)
    dropout: float = help_field(0.5, "dropout on the embeddings and on the features before the head", ge=0, lt=1)
    max_length: int = help_field(256, "longest example in tokens the model reads (<bos>/<eos> included where the "
                                      "model frames them): longer training examples are cut (one log line counts "
                                      "them); `rnnzoo predict` cuts a longer line with a warning", ge=3)


class TextTask(LengthLimits, Task):
    """A task reading a file dataset; subclasses write `encode`, `collate` and the network.

    Lengths are bounded where examples are read (`within_limits`, one place for every task; see
    rnnzoo.tasks.lengths): a longer example is cut, or dropped from training where `drops_long`.
    """

    gold_noun = "labels"  # what the unseen-gold warning names

    def __init__(self, config: TextDataConfig, seed: int, dataset: dict[str, Any] | None = None) -> None:
        super().__init__(config, seed, dataset)
        self._splits: dict[str, list] = {}
        self._encoded: dict[str, list] = {}
        self._eval_batches: dict[str, list[TextBatch]] = {}
        self.tokenizer: Tokenizer | None = None
        self.framed = False  # <bos> ... <eos> around each sentence: set by `input_layer` for token-input models
        self.max_positions: int | None = None  # the model's position limit: set by `fit_positions`
        for option in self.length_options:
            if getattr(config, option) < 1:
                raise RnnzooError(f"task.{option} must be >= 1, got {getattr(config, option)}")

    # --- data -------------------------------------------------------------------------
    def load(self, split: str) -> list:
        """The examples of a split, read once (the dataset's readers name file and line on errors)."""
        if split not in self._splits:
            self._splits[split] = open_dataset(self.dataset_config).load(split)
            if not self._splits[split]:
                raise RnnzooError(f"dataset {self.dataset_config.get('name')}: the {split} split is empty")
        return self._splits[split]

    def normalize(self, word: str) -> str:
        return word.lower() if self.config.lowercase else word

    def train_tokenizer(self, texts: list[str]) -> Tokenizer:
        """The task's tokenizer, trained on (normalized) training texts only."""
        c = self.config
        try:
            return Tokenizer.train(c.tokenizer, texts, vocab_size=c.vocab_size, min_freq=c.min_freq,
                                   max_size=c.max_vocab)
        except ValueError as error:
            raise RnnzooError(f"task.tokenizer={c.tokenizer}: {error}") from None

    def ensure_vocab(self) -> None:
        """The vocabularies: from a checkpoint, else from the token cache, else built from the
        training split (and kept in the cache for the next run)."""
        if self.vocab_ready():
            return
        if cache_of(self) is None:
            self.build_vocab(self.load("train"))
            return
        inherited = self.tokenizer.state_dict() if self.tokenizer is not None else None
        self.load_state_dict(cached_vocab(self, self._build_vocab_state, inherited))

    def _build_vocab_state(self) -> dict[str, Any]:
        self.build_vocab(self.load("train"))
        return self.state_dict()

    def vocab_ready(self) -> bool:
        """Whether every vocabulary exists; a task with its own (labels, tags) says so."""
        return self.tokenizer is not None

    def build_vocab(self, examples: list) -> None:
        """Build what `vocab_ready` misses; a tokenizer already there (inherited) is kept."""
        raise NotImplementedError

    def inherit_tokenizer(self, state: dict[str, Any]) -> None:
        """The pretraining run's tokenizer (its task state), kept instead of one trained here;
        `build_vocab` then builds only this task's own vocabularies (labels, tags)."""
        if "tokenizer" not in state:
            raise RnnzooError("model.init_from: that checkpoint's task keeps no tokenizer to start from")
        tokenizer = Tokenizer.from_state_dict(state["tokenizer"])
        # a tokenizer that lower-cases itself (an uncased BERT's) sees the same text either way
        if not tokenizer.lowercases and state.get("lowercase", self.config.lowercase) != self.config.lowercase:
            raise RnnzooError(f"task.lowercase={str(self.config.lowercase).lower()}, but the pretraining run had "
                              f"task.lowercase={str(state['lowercase']).lower()} (its tokenizer is cased): give the "
                              "same, or the pretrained tokenizer sees text it never saw")
        self.tokenizer = tokenizer
        log.info("task: the pretrained %s tokenizer (%d tokens) replaces task.tokenizer=%s", self.tokenizer.level,
                 len(self.tokenizer), self.config.tokenizer)

    def model_sizes(self) -> dict[str, int]:
        """The input width, and the vocabulary size and padding id for models that embed tokens themselves."""
        self.ensure_vocab()
        return {**super().model_sizes(), "vocab_size": len(self.tokenizer), **pad_size(self.tokenizer)}

    def encode(self, example: Any) -> Any:
        """One example as what `collate` takes (ids and targets)."""
        raise NotImplementedError

    def collate(self, items: list) -> TextBatch:
        raise NotImplementedError

    def encoding_key(self) -> dict[str, Any]:
        key: dict[str, Any] = {"framed": self.framed}
        if self.max_positions is not None:  # lowers the length limits: what is cut differs
            key["max_positions"] = self.max_positions
        return key

    def frame(self, ids: list[int]) -> list[int]:
        """BERT's [CLS] ids [SEP] (<bos> ids <eos>) for a token-input model; ids as they are otherwise."""
        if not self.framed:
            return ids
        vocab = self.tokenizer.vocab
        return [vocab.bos_id, *ids, vocab.eos_id]

    def finish_batch(self, batch: TextBatch, split: str, epoch: int, index: int) -> TextBatch:
        """A collated batch made final; a task drawing something at random per batch (masked
        tokens) does it here, from (seed, split, epoch, batch index) alone. As is by default."""
        return batch

    def encode_split(self, split: str) -> Iterable[Any]:
        """The split's examples, each as `encode` makes it, one at a time, within the length limits."""
        return self.within_limits(split, (self.encode(example) for example in self.load(split)))

    def memory_probe(self, probe_tokens: Sequence[int]) -> tuple[int, int, list[tuple[float, Any]]]:
        """For the memory guard (`rnnzoo.training.memory`): (the batch size of the longest training
        example's bucket, that example's longest size, [(fraction, the example cut to that
        fraction of its sizes as a one-example batch)] for the fractions that bring its longest
        side to each of `probe_tokens`, or [(1.0, the whole example)] where it is no longer)."""
        items = self.encoded("train")
        longest = items[int(np.argmax(item_lengths(items)))]
        sizes = self.item_sizes(longest)
        top = max(sizes)
        fractions = [1.0] if top <= max(probe_tokens) else [q / top for q in probe_tokens]
        probes = []
        for fraction in fractions:
            cut = self.cut_item(longest, tuple(max(1, math.ceil(fraction * size)) for size in sizes))
            probes.append((fraction, self.finish_batch(self.collate([cut]), "train", 0, 0)))
        return min(self.config.batch_size, len(items)), top, probes

    def encoded(self, split: str) -> Sequence[Any]:
        """The split's encoded examples: memory-mapped from the token cache (written on first
        use), or a list in memory where the dataset keeps no cache."""
        if split not in self._encoded:
            self.ensure_vocab()
            cached = cached_examples(self, split, lambda: self.encode_split(split))
            self._encoded[split] = cached if cached is not None else list(self.encode_split(split))
            self._splits.pop(split, None)  # the raw examples are not needed any more
        return self._encoded[split]

    def prepare_splits(self) -> None:
        for split in SPLIT_CODES:
            self.encoded(split)

    def train_batches(self, epoch: int, start: int = 0) -> Iterator[TextBatch]:
        items = self.encoded("train")
        generator = seeded_generator(self.seed, SPLIT_CODES["train"], epoch)
        order = bucket_batches(item_lengths(items), self.config.batch_size, True, generator)
        for index in range(start, len(order)):
            yield self.finish_batch(self.collate([items[i] for i in order[index]]), "train", epoch, index)

    def eval_batches(self, split: str) -> list[TextBatch]:
        if split not in ("val", "test"):
            raise ValueError(f"split must be val or test, got {split!r}")
        if split not in self._eval_batches:  # fixed batches, collated once
            items = self.encoded(split)
            self.warn_unseen(split, items)
            order = bucket_batches(item_lengths(items), self.config.eval_batch_size, False)
            self._eval_batches[split] = [self.finish_batch(self.collate([items[i] for i in indices]), split, 0, index)
                                         for index, indices in enumerate(order)]
        return self._eval_batches[split]

    def unseen_gold(self, items: Sequence[Any]) -> dict[str, int]:
        """Gold symbols of an evaluation split that training never saw, with their counts (tags,
        labels: the subclass counts them); none by default."""
        return {}

    def warn_unseen(self, split: str, items: Sequence[Any]) -> None:
        """One warning naming the gold symbols of `split` unseen in training: they are scored as
        themselves, so the model, which cannot output them, is counted wrong on each."""
        unseen = self.unseen_gold(items)
        if unseen:
            named = ", ".join(f"{name} ({count:,})" for name, count in sorted(unseen.items(), key=lambda kv: -kv[1]))
            log.warning("the %s split holds %d gold %s never seen in training, scored as themselves (the model "
                        "cannot predict them): %s", split, len(unseen), self.gold_noun, named)

    # --- the network's input ------------------------------------------------------------
    def input_layer(self, body: nn.Module, chars: CharCNN | None = None) -> nn.Module:
        """What turns a batch into the model's input: the task's word embeddings (+ `chars`), or
        for a model that embeds token ids itself (trait token_input) the ids, then framed as BERT
        frames a sentence (every later `encode` adds <bos> ... <eos>)."""
        self.ensure_vocab()
        self.fit_positions(body)
        framed = reads_token_ids(body)
        if framed != self.framed:  # anything encoded so far was framed the other way
            self.framed = framed
            self._encoded.clear()
            self._eval_batches.clear()
        if not framed:
            vocab = self.tokenizer.vocab
            return TextEmbedding(len(vocab), self.config.embedding_dim, self.config.dropout, chars, vocab.unk_id)
        if chars is not None:
            raise RnnzooError(f"character features join the task's word embeddings, which {type(body).__name__} "
                              "replaces with its own (it reads token ids): set task.char_dim=0")
        return TokenIds()

    # --- pretrained word vectors (rnnzoo.tasks.embeddings applies them) -------------------
    def vector_sides(self) -> list[VectorSide]:
        """The word vocabulary `task.pretrained_embeddings` fills, with its training token counts."""
        self.ensure_vocab()

        def counts() -> Any:
            return id_counts((item[0] for item in self.encoded("train")), len(self.tokenizer))

        return [VectorSide("words", self.tokenizer, self.config.pretrained_embeddings, "task.embedding_dim", counts,
                           self.config.lowercase)]

    def word_embeddings(self, network: nn.Module) -> dict[str, nn.Embedding]:
        """The network's word table by side (none where the model reads token ids itself)."""
        embed = getattr(network, "embed", None)
        return {"words": embed.words} if isinstance(embed, TextEmbedding) else {}

    # --- prediction from lines ----------------------------------------------------------
    def predict_lines(self, lines: Iterable[str], predict_batch: Callable[[list[str]], list[str]]
                      ) -> Iterator[str]:
        """Answers in input order, computed `eval_batch_size` lines at a time (empty lines -> "")."""
        pending: list[str] = []
        for line in lines:
            pending.append(line)
            if len(pending) == self.config.eval_batch_size:
                yield from _answer(pending, predict_batch)
                pending = []
        if pending:
            yield from _answer(pending, predict_batch)


# --- gold symbols unseen in training (tags, labels) -----------------------------------------
# A tag or label of val/test that training never saw cannot be predicted, but it must still be
# scored as itself: read as O, an unseen chunk type's gold chunks would drop out of the F1 count,
# which conlleval and seqeval keep. Such symbols get gold ids -2, -3, ... (their names kept with
# the vocabularies, so the token cache and checkpoints agree); -1 is a symbol of no known name.
def unseen_symbols(symbols: Callable[[str], Iterable[str]], vocab: Any) -> list[str]:
    """The symbols of the val and test splits (`symbols(split)`) missing from `vocab`, sorted."""
    return sorted({s for split in ("val", "test") for s in symbols(split) if s not in vocab.stoi})


def gold_id(symbol: str, vocab: Any, unseen: Sequence[str]) -> int:
    """The id of a gold symbol: its vocabulary id, else -2 - its index in `unseen`, else -1."""
    if symbol in vocab.stoi:
        return vocab.stoi[symbol]
    return -2 - unseen.index(symbol) if symbol in unseen else -1


def gold_name(index: int, unseen: Sequence[str], nameless: str) -> str:
    """The name of a negative gold id (`nameless` for -1)."""
    return unseen[-2 - index] if 0 <= -2 - index < len(unseen) else nameless


def count_unseen(ids: Iterable[int], unseen: Sequence[str]) -> dict[str, int]:
    """{name: count} of the unseen symbols among gold ids."""
    counts: dict[str, int] = {}
    for i in ids:
        if i <= -2:
            name = gold_name(int(i), unseen, "?")
            counts[name] = counts.get(name, 0) + 1
    return counts


def pad_size(tokenizer: Tokenizer) -> dict[str, int]:
    """{"pad_id": the padding token's id} for a model config that has the field (bert: its
    padding embedding row); {} for a vocabulary without one."""
    pad = tokenizer.vocab.pad_id
    return {} if pad is None else {"pad_id": pad}


def item_lengths(items: Sequence[Any]) -> np.ndarray:
    """(N,) lengths of the encoded examples' first field (the token ids), what buckets go by;
    from the offsets alone for memory-mapped examples."""
    if isinstance(items, Examples):
        return items.lengths()
    return np.fromiter((len(item[0]) for item in items), np.int64, len(items))


def _answer(lines: list[str], predict_batch: Callable[[list[str]], list[str]]) -> list[str]:
    answers = [""] * len(lines)
    real = [i for i, line in enumerate(lines) if line.split()]
    if real:
        for i, answer in zip(real, predict_batch([lines[i] for i in real])):
            answers[i] = answer
    return answers


def pad_batch(sequences: Sequence[Sequence[int]], targets: Tensor) -> TextBatch:
    """A TextBatch from id sequences (pad id 0) and already-built targets."""
    inputs, lengths = pad_sequences(sequences, 0)  # (B, T), (B,)
    mask = torch.arange(inputs.shape[1]) < lengths.unsqueeze(1)  # (B, T)
    return TextBatch(inputs, targets, mask, lengths)


def pad_chars(words: Sequence[Sequence[Sequence[int]]], max_len: int = 20) -> Tensor:
    """(B, T, C) character ids of each word, 0 at pads; words longer than max_len are cut."""
    B, T = len(words), max(len(sentence) for sentence in words)
    C = max(1, min(max_len, max((len(w) for sentence in words for w in sentence), default=1)))
    chars = torch.zeros(B, T, C, dtype=torch.long)
    for b, sentence in enumerate(words):
        for t, word in enumerate(sentence):
            word = word[:C]
            chars[b, t, :len(word)] = torch.as_tensor(word, dtype=torch.long)
    return chars


def masked_mean(features: Tensor, mask: Tensor) -> Tensor:
    """(B, T, H), (B, T) -> (B, H): the mean over real steps."""
    weights = mask.unsqueeze(-1).to(features.dtype)  # (B, T, 1)
    return (features * weights).sum(1) / weights.sum(1).clamp(min=1)


def masked_max(features: Tensor, mask: Tensor) -> Tensor:
    """(B, T, H), (B, T) -> (B, H): the max over real steps."""
    return features.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)


def reads_token_ids(body: nn.Module) -> bool:
    """Whether a model embeds token ids itself (trait token_input) rather than read the task's vectors."""
    return "token_input" in traits_of(body)
