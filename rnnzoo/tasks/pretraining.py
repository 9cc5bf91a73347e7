"""Masked-language-model pretraining: BERT's first stage (Devlin et al. 2019, §3.1 and Appendix A).

A model that sees the whole sentence (BERT) cannot learn to predict the next word; it learns
instead to restore words that were hidden, from both sides (the "cloze" task). No labels are
needed, so any text will do; a classifier or tagger then starts from the pretrained weights
(`model.init_from=<this run>/checkpoints/best.pt`; its tokenizer comes along).

**Text.** Any text dataset: a text file is read line by line; labelled, tagged and parallel
datasets are read as their sentences (their labels and tags unused; both sides of a pair).
`task.more_text=[ud_english_ewt,multi30k]` adds the training splits of more registered datasets
to the training text (BERT read two corpora, books and Wikipedia); validation and test stay the
main dataset's, so the held-out masked-LM numbers measure the text that fine-tuning will see.
The tokenizer, WordPiece (BERT's, default) or byte-level BPE, is trained on all the training
text and nothing else.
Sentences are packed in corpus order into sequences of at most `max_length` tokens:

    <bos> s_1 <eos> s_2 <eos> ... s_k <eos>          ([CLS] s_1 [SEP] s_2 [SEP] ...)

as RoBERTa's FULL-SENTENCES packing (Liu et al. 2019), so few positions are padding; a
sentence longer than `max_length - 2` is cut. With next-sentence prediction (the model's
`next_sentence=true`) a sequence is BERT's pair of segments instead:

    <bos> A <eos> B <eos>            segments 0 for <bos> A <eos>, 1 for B <eos>

A holds the sentences from some point on, up to half the room; B the sentences that follow
(IsNext, label 1) with probability 1/2, else sentences from a random place of the corpus
(NotNext, 0; the real continuation then opens the next pair, as BERT puts back the unused
segments). Pairs are drawn once per split from (seed, split), as BERT's data script draws its
instances once. Note that NSP means something only on running text (a book, a play); the
sentences of SST-2 are unrelated reviews, and RoBERTa found NSP useless anyway (off by default).

**Masking** (§3.1, "Task #1"): each non-special token is chosen with probability
`mask_prob` = 15%; a chosen token becomes

    <mask>                  80% of the time
    a random token          10%  (any non-special one)
    itself                  10%

so the model must keep a good representation of every token (it cannot tell which are
corrupted), and it sees real words at the positions it predicts, as it will in fine-tuning
where no <mask> ever appears. The loss is the cross-entropy over the chosen positions only.
Choosing each token independently is HuggingFace's DataCollatorForLanguageModeling; BERT's
script chooses round(15% n) tokens per sequence, the same in expectation. Masks are drawn per
batch from (seed, split, epoch, batch index): a new masking every epoch (RoBERTa's dynamic
masking), and the same fixed one for validation and test at every evaluation.

Only the chosen positions reach the output layer: their hidden states are gathered first,
(N, H) with N about 15% of the tokens, and the V-wide softmax costs 15% of a full one.

**Metrics**: loss (cross-entropy per chosen token; plus the NSP cross-entropy per pair when on,
the sum being what is trained), ppl = exp(masked-LM loss), mlm_accuracy (% of chosen tokens
restored); with NSP also mlm_loss, nsp_loss and nsp_accuracy (%). `rnnzoo predict` fills in
every <mask> of each input line (a cloze test of the model).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any, Iterable, Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..data import SPECIALS, LabeledText, ParallelPair, TaggedSentence, Tokenizer, open_dataset, pad_sequences
from ..data.tokenize import SUBWORD_LEVELS
from ..errors import RnnzooError
from ..registry import DATASETS, TASKS, help_field
from .base import StepOutput, seeded_generator
from .lengths import position_limit
from .text import SPLIT_CODES, TextBatch, TextDataConfig, TextTask, pad_size, reads_token_ids

log = logging.getLogger("rnnzoo")

MASK_SHARE, RANDOM_SHARE = 0.8, 0.1  # of the chosen tokens; the rest stay as they are

Example = LabeledText | TaggedSentence | ParallelPair
Item = tuple[list[int], list[int] | None, int | None]  # (ids, segments or None, is_next or None)


@dataclass
class PretrainingConfig(TextDataConfig):
    batch_size: int = help_field(32, "sequences per training batch (bucketed by length)", ge=1)
    eval_batch_size: int = help_field(64, "sequences per evaluation batch", ge=1)
    tokenizer: str = help_field("wordpiece", "wordpiece (BERT's) or bpe (byte-level), trained on the training "
                                             "split; fine-tuning runs inherit it")
    max_length: int = help_field(128, "tokens per packed sequence, <bos> and <eos> included (BERT: 128 for 90% "
                                      "of its steps, then 512)", ge=8)
    mask_prob: float = help_field(0.15, "share of the non-special tokens chosen for prediction (80% of them "
                                        "masked, 10% replaced by a random token, 10% kept)", gt=0, lt=1)
    more_text: list[str] = help_field([], "registered datasets whose training sentences join the training text "
                                          "(their own configs' defaults; labels unused), "
                                          "e.g. [ud_english_ewt,multi30k]")


@dataclass
class PretrainingBatch(TextBatch):
    """Packed sequences: inputs (B, T) with the chosen tokens corrupted, targets (B, T) the
    original ids, mask (B, T) the chosen positions (the only ones scored); segments (B, T) 0 / 1
    (None: all segment A); is_next (B,) 1 where B follows A (None without next-sentence prediction)."""

    segments: Tensor | None = None
    is_next: Tensor | None = None


class MaskedLanguageModel(nn.Module):
    """The pretraining network: the model alone, its heads being its own. It sits under `body`,
    as in every task network, so `model.init_from` finds its tensors there."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, batch: PretrainingBatch) -> Tensor:
        hidden, _ = self.body(batch.inputs, batch.lengths, None, batch.segments)
        return hidden  # (B, T, H)


@TASKS.register("pretraining", config=PretrainingConfig,
                summary="Masked-LM pretraining (BERT, Devlin et al. 2019) on any text; fine-tune with "
                        "model.init_from=")
class PretrainingTask(TextTask):
    """BERT's masked language model (and optionally next-sentence prediction) on any text dataset."""

    requires = frozenset({"masked_lm"})
    reads = frozenset({"text", "labeled", "tagged", "parallel"})
    accepts = frozenset({"token_input"})
    monitor = "loss"

    def __init__(self, config: PretrainingConfig, seed: int, dataset: dict[str, Any] | None = None) -> None:
        if config.tokenizer not in SUBWORD_LEVELS:
            raise ValueError(f"task.tokenizer must be one of {', '.join(SUBWORD_LEVELS)} (subwords leave no word of "
                             f"the fine-tuning data out of the vocabulary), got {config.tokenizer!r}")
        check_more_text(config.more_text)
        super().__init__(config, seed, dataset)
        self._sentences: dict[str, list[str]] = {}
        self.next_sentence = False  # pairs and NSP labels: set by `build_network` from the model

    # --- the text and the tokenizer ------------------------------------------------------
    def sentences(self, split: str) -> list[str]:
        """The split's sentences; for training, those of `more_text`'s datasets after the main one's
        (read once: the tokenizer and the packing both want them)."""
        if split not in self._sentences:
            sentences = sentences_of(self.load(split))
            for name in self.config.more_text if split == "train" else ():
                more = sentences_of(open_dataset(name).load("train"))
                log.info("task.more_text: %d sentences of %s join the training text", len(more), name)
                sentences += more
            self._sentences[split] = sentences
        return self._sentences[split]

    def vocab_ready(self) -> bool:
        return self.tokenizer is not None  # else inherited (pretraining on from a checkpoint)

    def build_vocab(self, data: str | list[Example]) -> None:
        self.tokenizer = self.train_tokenizer([self.normalize(s) for s in self.sentences("train")])

    def extra_datasets(self) -> list[dict[str, Any]]:
        return [{"name": name} for name in self.config.more_text]

    def encoding_key(self) -> dict[str, Any]:
        """Sentence pairs for next-sentence prediction are drawn from the seed."""
        return {**super().encoding_key(), "next_sentence": self.next_sentence,
                "seed": self.seed if self.next_sentence else None}

    def state_dict(self) -> dict[str, Any]:
        self.ensure_vocab()
        return {"tokenizer": self.tokenizer.state_dict(), "lowercase": self.config.lowercase}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tokenizer = Tokenizer.from_state_dict(state["tokenizer"])

    def model_sizes(self) -> dict[str, int]:
        self.ensure_vocab()
        return {"vocab_size": len(self.tokenizer), **pad_size(self.tokenizer)}

    # --- sequences ----------------------------------------------------------------------
    def encode_split(self, split: str) -> list[Item]:
        """The split's sentences as packed sequences (or NSP pairs)."""
        sentences = [ids for ids in (self.tokenizer.encode(self.normalize(s)) for s in self.sentences(split)) if ids]
        self._sentences.pop(split, None)  # read once for the tokenizer and the packing: no longer needed
        vocab, c = self.tokenizer.vocab, self.config
        if self.next_sentence:
            generator = seeded_generator(self.seed, SPLIT_CODES[split])
            items = pair_sentences(sentences, c.max_length, vocab.bos_id, vocab.eos_id, generator)
        else:
            items = pack_sentences(sentences, c.max_length, vocab.bos_id, vocab.eos_id)
        if not items:
            raise RnnzooError(f"the {split} split holds no text to pretrain on")
        return items

    def cut_item(self, item: Item, sizes: tuple[int, ...]) -> Item:
        """A packed sequence's first sizes[0] tokens (packing keeps them within max_length; the
        memory guard measures shorter ones)."""
        ids, segments, is_next = item
        return list(ids[:sizes[0]]), None if segments is None else list(segments[:sizes[0]]), is_next

    def collate(self, items: list[Item]) -> PretrainingBatch:
        """Padded, not yet masked (`finish_batch` masks)."""
        ids, segments, is_next = zip(*items)
        # padded with the pad token (a special: never chosen), which a BERT vocab.txt may hold at any id
        inputs, lengths = pad_sequences(ids, self.tokenizer.vocab.pad_id)  # (B, T), (B,)
        batch = PretrainingBatch(inputs, inputs, torch.zeros_like(inputs, dtype=torch.bool), lengths)
        if self.next_sentence:
            batch.segments, _ = pad_sequences(segments, 0)  # (B, T)
            batch.is_next = torch.tensor(is_next, dtype=torch.long)  # (B,)
        return batch

    def finish_batch(self, batch: PretrainingBatch, split: str, epoch: int, index: int) -> PretrainingBatch:
        generator = seeded_generator(self.seed, SPLIT_CODES[split], epoch, index)
        vocab = self.tokenizer.vocab
        corrupted, chosen = mask_tokens(batch.inputs, self.config.mask_prob, len(vocab), vocab.mask_id, generator,
                                        sorted(vocab.special_ids))
        return replace(batch, inputs=corrupted, targets=batch.inputs, mask=chosen)

    # --- model, loss, metrics -------------------------------------------------------------
    def build_network(self, body: nn.Module) -> MaskedLanguageModel:
        if not reads_token_ids(body):
            raise RnnzooError(f"pretraining feeds token ids to a model that embeds them itself (bert); "
                              f"{type(body).__name__} does not")
        max_positions = position_limit(body)
        if max_positions is not None and self.config.max_length > max_positions:
            raise RnnzooError(f"task.max_length={self.config.max_length} exceeds model.max_positions={max_positions}: "
                              "lower the one or raise the other")
        next_sentence = bool(body.next_sentence)  # trait masked_lm: whether it has the next-sentence head
        if next_sentence != self.next_sentence:  # sequences become pairs, or pairs sequences
            self.next_sentence = next_sentence
            self._encoded.clear()
            self._eval_batches.clear()
        return MaskedLanguageModel(body)

    def step(self, network: MaskedLanguageModel, batch: PretrainingBatch, state: Any = None) -> StepOutput:
        body = network.body
        hidden = network(batch)  # (B, T, H)
        targets = batch.targets[batch.mask]  # (N,): the chosen tokens' true ids
        logits = body.mlm_logits(hidden[batch.mask])  # (N, V): the chosen positions only
        loss_sum = F.cross_entropy(logits.float(), targets, reduction="sum")
        count = batch.mask.sum()
        loss = loss_sum / count.clamp(min=1)
        stats = {"loss_sum": loss_sum.detach(), "count": count, "correct": (logits.argmax(-1) == targets).sum()}
        if batch.is_next is not None:
            nsp_logits = body.nsp_logits(hidden)  # (B, 2)
            nsp_sum = F.cross_entropy(nsp_logits.float(), batch.is_next, reduction="sum")
            loss = loss + nsp_sum / len(batch.is_next)  # BERT trains on the sum of the two mean losses
            stats.update({"nsp_loss_sum": nsp_sum.detach(), "pairs": torch.tensor(len(batch.is_next)),
                          "nsp_correct": (nsp_logits.argmax(-1) == batch.is_next).sum()})
        return StepOutput(loss, count, stats)

    def metrics(self, totals: dict[str, float]) -> dict[str, float]:
        mlm = totals["loss_sum"] / max(totals["count"], 1)
        metrics = {"loss": mlm, "ppl": math.exp(min(mlm, 700.0)),
                   "mlm_accuracy": 100 * totals["correct"] / max(totals["count"], 1)}
        if "pairs" in totals:
            nsp = totals["nsp_loss_sum"] / max(totals["pairs"], 1)
            metrics.update({"loss": mlm + nsp, "mlm_loss": mlm, "nsp_loss": nsp,
                            "nsp_accuracy": 100 * totals["nsp_correct"] / max(totals["pairs"], 1)})
        return metrics

    # --- rnnzoo predict: a cloze test --------------------------------------------------------
    def predict(self, network: MaskedLanguageModel, lines: Iterable[str], device: torch.device) -> Iterator[str]:
        """Each line with every <mask> replaced by the model's most likely token."""
        network.eval()
        vocab = self.tokenizer.vocab

        mask = vocab.roles["mask"]  # its spelling: <mask>, or [MASK] that lower-casing would unmake

        def fill(batch_lines: list[str]) -> list[str]:
            texts = [mask.join(self.normalize(part) for part in line.split(mask)) for line in batch_lines]
            ids = [[vocab.bos_id, *self.tokenizer.encode(text), vocab.eos_id] for text in texts]
            inputs, lengths = pad_sequences(ids, vocab.pad_id)  # (B, T), (B,); decode leaves pads out
            inputs = inputs.to(device)
            hidden, _ = network.body(inputs, lengths)  # (B, T, H)
            masked = inputs == vocab.mask_id  # (B, T)
            filled = inputs.masked_scatter(masked, network.body.mlm_logits(hidden[masked]).argmax(-1))
            return [self.tokenizer.decode(row) for row in filled.tolist()]

        yield from self.predict_lines(lines, fill)


# --- the text, the sequences and the masks ---------------------------------------------------
def check_more_text(names: list[str]) -> None:
    """RnnzooError for a name in task.more_text that is no dataset with files."""
    for name in names:
        if name not in DATASETS:
            raise RnnzooError(f"task.more_text: {DATASETS.unknown_message(name)}")
        if not hasattr(DATASETS.get(name), "load"):
            with_files = ", ".join(n for n in DATASETS.names() if hasattr(DATASETS.get(n), "load"))
            raise RnnzooError(f"task.more_text: dataset '{name}' has no text to add (its task generates its data); "
                              f"choices with files: {with_files}")


def sentences_of(data: str | list[Example]) -> list[str]:
    """The sentences of a split of any kind: the non-empty lines of a text, the words of labelled
    and tagged examples (labels and tags dropped), both sides of parallel pairs."""
    if isinstance(data, str):
        return [line.strip() for line in data.splitlines() if line.strip()]
    sentences = []
    for example in data:
        if isinstance(example, ParallelPair):
            sentences += [example.source, example.target]
        else:
            sentences.append(" ".join(example.tokens))
    return [s for s in sentences if s.strip()]


def cut(ids: list[int], size: int) -> list[list[int]]:
    """ids in consecutive pieces of at most `size`."""
    return [ids[start:start + size] for start in range(0, len(ids), size)]


def pack_sentences(sentences: list[list[int]], max_length: int, bos: int, eos: int) -> list[Item]:
    """<bos> s_1 <eos> s_2 <eos> ...: greedily, in order, at most max_length tokens each."""
    sequences: list[list[int]] = []
    current = [bos]
    for sentence in sentences:
        for piece in cut(sentence, max_length - 2):
            if len(current) + len(piece) + 1 > max_length:
                sequences.append(current)
                current = [bos]
            current += [*piece, eos]
    if len(current) > 1:
        sequences.append(current)
    return [(ids, None, None) for ids in sequences]


def pair_sentences(sentences: list[list[int]], max_length: int, bos: int, eos: int,
                   generator: torch.Generator) -> list[Item]:
    """BERT's pairs <bos> A <eos> B <eos> with segments and IsNext labels (see the module docstring)."""
    room = max_length - 3
    pieces = [piece for sentence in sentences for piece in cut(sentence, room // 2)]
    if len(pieces) < 2:
        raise RnnzooError("next-sentence prediction needs two sentences or more in every split")
    pairs = []
    i = 0
    while i < len(pieces):
        a, j = take(pieces, i, room // 2)
        others = len(pieces) - (j - i) - 1  # sentences neither in A nor A's true successor
        follows = j < len(pieces) and (others <= 0 or bool(torch.rand(1, generator=generator) < 0.5))
        if follows:
            b, i = take(pieces, j, room - len(a))
        else:  # a random place outside A and its successor; the successor opens the next pair
            start = int(torch.randint(0, max(others, 1), (1,), generator=generator))
            start = start + (j - i) + 1 if start >= i else start
            b, _ = take(pieces, min(start, len(pieces) - 1), room - len(a))
            i = j
        ids = [bos, *a, eos, *b, eos]
        pairs.append((ids, [0] * (len(a) + 2) + [1] * (len(b) + 1), int(follows)))
    return pairs


def take(pieces: list[list[int]], start: int, limit: int) -> tuple[list[int], int]:
    """The pieces from `start` on, joined, while they fit in `limit` (the first always does): (ids, next index)."""
    ids, end = list(pieces[start]), start + 1
    while end < len(pieces) and len(ids) + len(pieces[end]) <= limit:
        ids += pieces[end]
        end += 1
    return ids, end


def mask_tokens(ids: Tensor, mask_prob: float, vocab_size: int, mask_id: int, generator: torch.Generator,
                specials: int | list[int] = len(SPECIALS)) -> tuple[Tensor, Tensor]:
    """BERT's corruption of ids (B, T): (the corrupted ids (B, T), the chosen positions (B, T) bool).

    The special ids (`specials`: a list, or an int for the ids below it, <pad> <unk> <bos> <eos>
    <mask> = 0..4 in every vocabulary rnnzoo builds; [PAD] [UNK] [CLS] [SEP] [MASK] wherever a
    BERT's vocab.txt has them) are never chosen, nor drawn as random replacements."""
    regular = torch.ones(vocab_size, dtype=torch.bool)  # (V,)
    regular[list(range(specials)) if isinstance(specials, int) else specials] = False
    pool = regular.nonzero().squeeze(1)  # (V - S,) the ids a random replacement is drawn from
    chosen = regular[ids] & (torch.rand(ids.shape, generator=generator) < mask_prob)  # (B, T)
    fate = torch.rand(ids.shape, generator=generator)  # (B, T): < 0.8 mask, < 0.9 random, else keep
    random_ids = pool[torch.randint(0, len(pool), ids.shape, generator=generator)]  # (B, T)
    corrupted = torch.where(chosen & (fate < MASK_SHARE), torch.full_like(ids, mask_id), ids)
    randomized = chosen & (fate >= MASK_SHARE) & (fate < MASK_SHARE + RANDOM_SHARE)
    return torch.where(randomized, random_ids, corrupted), chosen
