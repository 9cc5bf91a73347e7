"""Sequence tagging: one label per token (POS tags, chunks, named entities).

The network is the BiLSTM tagger of Huang et al. (2015), "Bidirectional LSTM-CRF Models for
Sequence Tagging", with any sequence encoder in the middle:

    words (B, T) -> embeddings [+ character CNN features, Ma & Hovy 2016] -> encoder
                 -> dropout -> linear -> emission scores (B, T, K)
                 -> softmax per token (cross-entropy), or a linear-chain CRF (`task.crf=true`,
                    trained on the sentence log-likelihood, decoded by Viterbi)

Metrics: token accuracy; and when every tag is O or B-/I-/E-/S-X (IOB, BIO, IOBES), chunk
precision, recall and F1 computed as `seqeval` (and conlleval) compute them: a chunk is right
when its type, start and end all are. Then F1 picks the best checkpoint.

Vocabularies (words, characters, tags) come from the training split and travel in the
checkpoint, so `rnnzoo predict` needs no data. Tags belong to whitespace words; with a subword
tokenizer (`task.tokenizer=bpe|wordpiece`) the encoder reads the pieces and each word is tagged
from the features of its first piece (Devlin et al. 2019's recipe for BERT's NER).

BERT (`model=bert`, which reads token ids itself) gets each sentence as [CLS] pieces [SEP]
(<bos> ... <eos>) and tags each word from its first piece, one position later for the [CLS];
with `model.init_from=PATH` the pretraining run's tokenizer replaces `task.tokenizer`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn

from ..data import TaggedSentence, Tokenizer, Vocabulary, pad_sequences
from ..errors import RnnzooError
from ..nn.crf import CRF
from ..nn.embedding import CharCNN
from ..registry import TASKS, help_field
from .base import StepOutput, masked_cross_entropy
from .text import (
    TextBatch,
    TextConfig,
    TextTask,
    count_unseen,
    gold_id,
    gold_name,
    pad_batch,
    pad_chars,
    unseen_symbols,
)

CHUNK_TAG = re.compile(r"^[BIES]-.+$")
CHAR_SPECIALS = ("<pad>", "<unk>")


@dataclass
class TaggingConfig(TextConfig):
    crf: bool = help_field(False, "a CRF output layer with Viterbi decoding (Huang et al. 2015)")
    char_dim: int = help_field(0, "character embedding width for per-word character CNN features (0: none)", ge=0)
    char_filters: int = help_field(30, "character CNN filters: features each word gets from its spelling", ge=1)
    char_width: int = help_field(3, "character CNN window", ge=1)
    max_word_chars: int = help_field(20, "characters of a word the character CNN reads", ge=1)


class Tagger(nn.Module):
    """embedding -> encoder -> dropout -> linear emission scores, with an optional CRF on top."""

    def __init__(self, embed: nn.Module, body: nn.Module, num_tags: int, dropout: float, crf: bool) -> None:
        super().__init__()
        self.embed = embed
        self.body = body
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(body.output_size, num_tags)
        self.crf = CRF(num_tags) if crf else None

    def forward(self, batch: TextBatch) -> Tensor:
        """Emission scores (B, W, K) of a padded batch's words; the encoder packs on `batch.lengths`."""
        features, _ = self.body(self.embed(batch), batch.lengths)  # (B, T, H)
        if batch.starts is not None:  # subwords: each word's first piece speaks for it
            index = batch.starts.unsqueeze(-1).expand(-1, -1, features.shape[-1])  # (B, W, H)
            features = features.gather(1, index)  # (B, W, H)
        return self.head(self.dropout(features))  # (B, W, K)

    def decode(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """Best tags (B, T): Viterbi with a CRF, else the argmax of each token."""
        return self.crf.decode(emissions, mask) if self.crf is not None else emissions.argmax(-1)


@TASKS.register("tagging", config=TaggingConfig)
class TaggingTask(TextTask):
    """One tag per word, over any sequence encoder (bidirectional welcome)."""

    reads = frozenset({"tagged"})
    accepts = frozenset({"token_input"})
    monitor_mode = "max"
    gold_noun = "tags"

    def __init__(self, config: TaggingConfig, seed: int, dataset: dict[str, Any] | None = None) -> None:
        if config.tokenizer not in ("word", "bpe", "wordpiece"):
            raise ValueError(f"tagging labels whitespace words: task.tokenizer must be word, bpe or wordpiece, "
                             f"got {config.tokenizer!r}")
        if config.tokenizer != "word" and config.char_dim > 0:
            raise ValueError("character features describe whole words: use task.char_dim=0 with subwords")
        super().__init__(config, seed, dataset)
        self.tags: Vocabulary | None = None
        self.chars: Vocabulary | None = None
        self.unseen_tags: list[str] = []  # tags of val/test never seen in training: gold ids -2, -3, ...

    @property
    def monitor(self) -> str:  # type: ignore[override]
        return "f1" if self.chunked else "accuracy"

    @property
    def chunked(self) -> bool:
        """Whether the tags are chunk tags (O, B-X, I-X...), for which chunk F1 is reported."""
        self.ensure_vocab()
        return all(tag == "O" or CHUNK_TAG.match(tag) for tag in self.tags.itos)

    # --- vocabularies ---------------------------------------------------------------------
    def vocab_ready(self) -> bool:
        return self.tokenizer is not None and self.tags is not None

    def build_vocab(self, examples: list[TaggedSentence]) -> None:
        c = self.config
        if self.tokenizer is None:  # else inherited from a pretraining run
            sentences = [[self.normalize(w) for w in s.tokens] for s in examples]
            if c.tokenizer == "word":
                self.tokenizer = Tokenizer("word", Vocabulary.build(sentences, c.min_freq, c.max_vocab))
            else:
                self.tokenizer = self.train_tokenizer([" ".join(words) for words in sentences])
        self.tags = Vocabulary.build((s.tags for s in examples), specials=())
        self.unseen_tags = unseen_symbols(lambda split: (t for s in self.load(split) for t in s.tags), self.tags)
        if c.char_dim > 0:
            self.chars = Vocabulary.build((list(w) for s in examples for w in s.tokens), specials=CHAR_SPECIALS)

    def state_dict(self) -> dict[str, Any]:
        self.ensure_vocab()
        state = {"tokenizer": self.tokenizer.state_dict(), "tags": self.tags.state_dict(),
                 "unseen_tags": list(self.unseen_tags)}
        if self.chars is not None:
            state["chars"] = self.chars.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tokenizer = Tokenizer.from_state_dict(state["tokenizer"])
        self.tags = Vocabulary.from_state_dict(state["tags"])
        self.chars = Vocabulary.from_state_dict(state["chars"]) if "chars" in state else None
        self.unseen_tags = list(state.get("unseen_tags", []))

    def inherit_tokenizer(self, state: dict[str, Any]) -> None:
        super().inherit_tokenizer(state)
        if self.tokenizer.level == "char":
            raise RnnzooError("model.init_from: that run's tokenizer reads characters, and tagging labels "
                              "whitespace words: start from a run with a word, bpe or wordpiece tokenizer")

    # --- data -------------------------------------------------------------------------------
    def encode(self, sentence: TaggedSentence) -> tuple[list[int], list[int], list | None, list[int] | None]:
        """(token ids, tag ids, char ids per word, first-piece position per word or None: one
        token per word, unframed). A tag unseen in training gets a negative id (never right):
        -2, -3, ... for `unseen_tags`, -1 for any other."""
        tags = [gold_id(tag, self.tags, self.unseen_tags) for tag in sentence.tags]
        words = [self.normalize(w) for w in sentence.tokens]
        if self.tokenizer.level != "word":
            ids, starts = self.pieces(words)
        else:
            ids, starts = self.tokenizer.vocab.encode(words), None
        chars = [self.chars.encode(w) for w in sentence.tokens] if self.chars is not None else None
        if self.framed:  # <bos> first: every word's first token moves one position on
            ids, starts = self.frame(ids), [s + 1 for s in (starts if starts is not None else range(len(words)))]
        return ids, tags, chars, starts

    def pieces(self, words: list[str]) -> tuple[list[int], list[int]]:
        """Subword ids of a sentence, and where each word's first piece is."""
        ids, starts = [], []
        for i, word in enumerate(words):
            starts.append(len(ids))
            # byte-level BPE marks a word after a space (Ġ) as in its training text
            ids += self.tokenizer.encode(word if i == 0 else " " + word) or [self.tokenizer.vocab.unk_id]
        return ids, starts

    def cut_item(self, item: tuple, sizes: tuple[int, ...]) -> tuple:
        """The first words whose tokens fit in sizes[0] (and their tags: words and tags are cut
        together); a first word longer than that alone keeps its first pieces."""
        ids, tags, chars, starts = item
        room = sizes[0] - 1 if self.framed else sizes[0]  # tokens before the final <eos>
        positions = list(starts) if starts is not None else list(range(len(ids)))
        ends = [*positions[1:], len(ids) - int(self.framed)]  # where each word's tokens end
        words = max(1, sum(end <= room for end in ends))
        ids = self.cut_ids(ids, min(ends[words - 1], room) + int(self.framed))
        return (ids, list(tags[:words]), None if chars is None else list(chars[:words]),
                None if starts is None else list(starts[:words]))

    def unseen_gold(self, items: Sequence[Any]) -> dict[str, int]:
        return count_unseen((tag for item in items for tag in item[1]), self.unseen_tags)

    def collate(self, items: list) -> TextBatch:
        ids, tags, chars, starts = zip(*items)
        targets, words = pad_sequences(tags, 0)  # (B, W); pads are masked out
        batch = pad_batch(ids, targets)
        if self.chars is not None:
            batch.chars = pad_chars(chars, self.config.max_word_chars)
        if starts[0] is not None:  # subwords or framing: words sit at given positions
            batch.starts, _ = pad_sequences(starts, 0)  # (B, W)
            batch.mask = torch.arange(batch.starts.shape[1]) < words.unsqueeze(1)  # (B, W)
        return batch

    # --- model ------------------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        c = self.config
        self.ensure_vocab()
        return c.embedding_dim + (c.char_filters if self.chars is not None else 0)

    def build_network(self, body: nn.Module) -> Tagger:
        c = self.config
        self.ensure_vocab()
        chars = None if self.chars is None else CharCNN(len(self.chars), c.char_dim, c.char_filters, c.char_width)
        return Tagger(self.input_layer(body, chars), body, len(self.tags), c.dropout, c.crf)

    def step(self, network: Tagger, batch: TextBatch, state=None) -> StepOutput:
        emissions = network(batch)  # (B, T, K)
        known = batch.mask & (batch.targets >= 0)  # (B, T) tokens whose gold tag the model can output
        if network.crf is not None:
            # the sentence log-likelihood; an unseen gold tag (eval only) is scored as tag 0
            loss_sum = -network.crf.log_likelihood(emissions, batch.targets.clamp(min=0), batch.mask).sum()
            count = batch.mask.sum()
        else:
            loss_sum, count = masked_cross_entropy(emissions, batch.targets, known)
        stats = {"loss_sum": loss_sum.detach(), "count": count}
        if not network.training:
            stats.update(self.prediction_stats(network.decode(emissions, batch.mask), batch))
        return StepOutput(loss_sum / count.clamp(min=1), count, stats)

    def prediction_stats(self, predicted: Tensor, batch: TextBatch) -> dict[str, Tensor]:
        """Summed token and chunk counts of predicted tags (B, T) against the batch's gold tags."""
        correct = (predicted == batch.targets) & batch.mask
        stats = {"correct": correct.sum(), "tokens": batch.mask.sum()}
        if self.chunked:
            found = guessed = gold = 0
            for p, g, n in zip(predicted.tolist(), batch.targets.tolist(), batch.mask.sum(1).tolist()):
                p_chunks, g_chunks = set(chunks(self.tag_names(p[:n]))), set(chunks(self.tag_names(g[:n])))
                found, guessed, gold = found + len(p_chunks & g_chunks), guessed + len(p_chunks), gold + len(g_chunks)
            stats.update({"chunks_correct": torch.tensor(found), "chunks_predicted": torch.tensor(guessed),
                          "chunks_gold": torch.tensor(gold)})
        return stats

    def tag_names(self, ids: list[int]) -> list[str]:
        """Tag strings of ids; an unseen gold tag (-2, -3, ...) reads as itself, so its chunks
        count as conlleval and seqeval count them (-1, a tag of no name, reads as O)."""
        return [self.tags.itos[i] if i >= 0 else gold_name(i, self.unseen_tags, "O") for i in ids]

    def metrics(self, totals: dict[str, float]) -> dict[str, float]:
        metrics = {"loss": totals["loss_sum"] / max(totals["count"], 1)}
        if "tokens" in totals:
            metrics["accuracy"] = totals["correct"] / max(totals["tokens"], 1)
        if "chunks_gold" in totals:
            metrics.update(chunk_scores(totals["chunks_correct"], totals["chunks_predicted"], totals["chunks_gold"]))
        return metrics

    # --- rnnzoo predict ---------------------------------------------------------------------
    def predict(self, network: Tagger, lines: Iterable[str], device: torch.device) -> Iterator[str]:
        """Whitespace-tokenized sentences in, their tags out, space-separated."""
        network.eval()

        def tag(batch_lines: list[str]) -> list[str]:
            return [" ".join(tagged["tags"]) for tagged in self.tag_lines(network, batch_lines, device)]

        yield from self.predict_lines(lines, tag)

    def tag_lines(self, network: Tagger, lines: list[str], device: torch.device) -> list[dict[str, Any]]:
        """Per non-empty line: its words, their tags and per word the softmax of the emission
        scores over `tag_set` (with a CRF the tags are Viterbi's, which the emission softmax
        need not favour: it is the per-token view, not the CRF's marginals). `rnnzoo predict`
        prints the tags; `rnnzoo serve` answers with all of it."""
        sentences = [TaggedSentence(words, [""] * len(words)) for words in map(str.split, lines)]
        items = [self.cut_input(self.encode(s)) for s in sentences]  # a longer line: its first words only
        batch = self.collate([(ids, [0] * len(tags), ch, st) for ids, tags, ch, st in items]).to(device)
        emissions = network(batch)  # (B, W, K)
        predicted = network.decode(emissions, batch.mask).tolist()
        probabilities = emissions.softmax(-1).cpu()  # (B, W, K)
        return [{"words": s.tokens[:n], "tags": self.tag_names(p[:n]), "probabilities": probabilities[i, :n].tolist(),
                 "tag_set": list(self.tags.itos)}
                for i, (s, p, n) in enumerate(zip(sentences, predicted, batch.mask.sum(1).tolist()))]


# --- chunks, as seqeval (default mode) and conlleval find them ------------------------------------
def chunks(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first, last) of each chunk in a tag sequence; seqeval's `get_entities` rules.

    A chunk starts at B-/S-, at an I-/E- after O or after a chunk that ended, or where the type
    changes; it ends before O, B-, S-, after E-/S-, or where the type changes.
    """
    found, prev_tag, prev_type, begin = [], "O", "", 0
    for i, tag in enumerate([*tags, "O"]):
        kind, chunk_type = tag[0], tag[1:].split("-", maxsplit=1)[-1] or "_"
        if _ends(prev_tag, kind, prev_type, chunk_type):
            found.append((prev_type, begin, i - 1))
        if _starts(prev_tag, kind, prev_type, chunk_type):
            begin = i
        prev_tag, prev_type = kind, chunk_type
    return found


def _ends(prev: str, tag: str, prev_type: str, chunk_type: str) -> bool:
    return (prev in "ES" or (prev in "BI" and tag in "BSO")
            or (prev not in "O." and prev_type != chunk_type))


def _starts(prev: str, tag: str, prev_type: str, chunk_type: str) -> bool:
    return (tag in "BS" or (prev in "ESO" and tag in "EI")
            or (tag not in "O." and prev_type != chunk_type))


def chunk_scores(correct: float, predicted: float, gold: float) -> dict[str, float]:
    """Micro precision, recall and F1 over chunks (0 where undefined, as seqeval)."""
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
