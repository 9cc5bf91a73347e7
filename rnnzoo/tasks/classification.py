"""Text classification: one label per sequence (sentiment, question type...).

    tokens (B, T) -> embeddings -> encoder -> pooling over time -> dropout -> linear -> logits (B, C)

Poolings (`task.pooling`), all blind to padding, so a sentence gets the same label alone or
in a padded batch:

    last       the state after the last real token. For a bidirectional encoder, the forward
               half at the last token and the backward half at the first token: each
               direction's summary of the whole sentence (what nn.LSTM's h_n holds).
    mean, max  over the real tokens (max: Collobert et al. 2011; Kim 2014 over its CNN)
    attention  softmax-weighted sum with one learned query (Yang et al. 2016's context vector;
               Lin et al. 2017's self-attentive sentence embedding with one hop)
    hopfield   HopfieldPooling (Ramsauer et al. 2020): learned state patterns retrieve from the
               sequence in one modern-Hopfield update
    first      the state at the first position: for BERT (model=bert) the [CLS] token (<bos>),
               through its pooler tanh(W h_[CLS]) when it has one (model.next_sentence=true),
               the way Devlin et al. (2019, §4.1) classify; for other encoders the first word's
               state, which only a bidirectional one computes from the whole sentence

BERT reads token ids itself: it gets each text as [CLS] tokens [SEP] (<bos> ... <eos>) and the
task's embedding options (embedding_dim) are unused; fine-tune a pretrained one with
`model.init_from=PATH` (its tokenizer comes along), e.g. `experiment=sst2_bert_finetune`.

Metrics: accuracy and macro-F1 (the mean of per-class F1 over the classes that occur in the
gold labels or the predictions, as scikit-learn's `f1_score(average="macro")`).
Any tokenizer level works (`task.tokenizer=word|char|bpe|wordpiece`), trained on the
training split only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn

from ..data import LabeledText, Vocabulary
from ..data.tokenize import Tokenizer
from ..models.traits import traits_of
from ..nn.hopfield import HopfieldPooling
from ..registry import TASKS, help_field
from .base import StepOutput
from .text import (
    TextBatch,
    TextConfig,
    TextTask,
    count_unseen,
    gold_id,
    masked_max,
    masked_mean,
    pad_batch,
    unseen_symbols,
)

POOLINGS = ("last", "mean", "max", "attention", "hopfield", "first")


@dataclass
class ClassificationConfig(TextConfig):
    pooling: str = help_field("last", f"how features over time become one vector: {', '.join(POOLINGS)} "
                                      "(first: BERT's [CLS])")


class Pooling(nn.Module):
    """(B, T, H) features of a padded batch -> (B, output_size), by one of POOLINGS.

    `first`: the model's own reading of its first position, (B, T, H) -> (B, H) (BERT's pooler),
    for kind "first"; None takes the features at position 0 as they are.
    """

    def __init__(self, kind: str, size: int, bidirectional: bool = False,
                 first: Callable[[Tensor], Tensor] | None = None) -> None:
        super().__init__()
        if kind not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {kind!r}")
        self.kind, self.bidirectional = kind, bidirectional
        self.first = first  # a bound method of the model, not a submodule: its weights stay the model's
        self.output_size = size
        if kind == "attention":
            self.query = nn.Parameter(torch.randn(size) * size**-0.5)  # (H,)
        if kind == "hopfield":
            self.hopfield = HopfieldPooling(input_size=size, hidden_size=size, output_size=size)

    def forward(self, features: Tensor, mask: Tensor, lengths: Tensor) -> Tensor:
        if self.kind == "last":
            return self.last(features, lengths)
        if self.kind == "mean":
            return masked_mean(features, mask)
        if self.kind == "max":
            return masked_max(features, mask)
        if self.kind == "attention":
            scores = (features @ self.query).masked_fill(~mask, float("-inf"))  # (B, T)
            return (scores.softmax(1).unsqueeze(-1) * features).sum(1)  # (B, H)
        if self.kind == "first":
            return self.first(features) if self.first is not None else features[:, 0]  # (B, H)
        return self.hopfield(features, lengths)

    def last(self, features: Tensor, lengths: Tensor) -> Tensor:
        """Forward features at the last real token; with two directions, backward at the first."""
        last = (lengths.to(features.device) - 1).clamp(min=0)  # (B,)
        rows = torch.arange(features.shape[0], device=features.device)
        final = features[rows, last]  # (B, H)
        if not self.bidirectional:
            return final
        half = features.shape[-1] // 2
        return torch.cat([final[:, :half], features[:, 0, half:]], dim=-1)  # (B, H)


class Classifier(nn.Module):
    """embedding -> encoder -> pooling -> dropout -> linear logits (B, C)."""

    def __init__(self, embed: nn.Module, body: nn.Module, pool: Pooling, num_classes: int,
                 dropout: float) -> None:
        super().__init__()
        self.embed = embed
        self.body = body
        self.pool = pool
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(pool.output_size, num_classes)

    def forward(self, batch: TextBatch) -> Tensor:
        features, _ = self.body(self.embed(batch), batch.lengths)  # (B, T, H)
        return self.head(self.dropout(self.pool(features, batch.mask, batch.lengths)))  # (B, C)


@TASKS.register("classification", config=ClassificationConfig)
class ClassificationTask(TextTask):
    """One label per text, over any sequence encoder."""

    reads = frozenset({"labeled"})
    accepts = frozenset({"token_input"})
    monitor = "accuracy"
    monitor_mode = "max"
    example_noun = "texts"

    def __init__(self, config: ClassificationConfig, seed: int, dataset: dict[str, Any] | None = None) -> None:
        if config.pooling not in POOLINGS:
            raise ValueError(f"task.pooling must be one of {', '.join(POOLINGS)}, got {config.pooling!r}")
        super().__init__(config, seed, dataset)
        self.labels: Vocabulary | None = None
        self.unseen_labels: list[str] = []  # labels of val/test never seen in training: gold ids -2, -3, ...

    # --- vocabularies ---------------------------------------------------------------------
    def text(self, tokens: list[str]) -> str:
        text = " ".join(tokens)
        return text.lower() if self.config.lowercase else text

    def vocab_ready(self) -> bool:
        return self.tokenizer is not None and self.labels is not None

    def build_vocab(self, examples: list[LabeledText]) -> None:
        if self.tokenizer is None:  # else inherited from a pretraining run
            self.tokenizer = self.train_tokenizer([self.text(e.tokens) for e in examples])
        self.labels = Vocabulary.build(([e.label] for e in examples), specials=())
        self.unseen_labels = unseen_symbols(lambda split: (e.label for e in self.load(split)), self.labels)

    def state_dict(self) -> dict[str, Any]:
        self.ensure_vocab()
        return {"tokenizer": self.tokenizer.state_dict(), "labels": self.labels.state_dict(),
                "unseen_labels": list(self.unseen_labels)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tokenizer = Tokenizer.from_state_dict(state["tokenizer"])
        self.labels = Vocabulary.from_state_dict(state["labels"])
        self.unseen_labels = list(state.get("unseen_labels", []))

    # --- data -------------------------------------------------------------------------------
    def encode(self, example: LabeledText) -> tuple[list[int], int]:
        """(token ids, label id); an empty text reads as <unk>; a label unseen in training gets a
        negative id (counted wrong): -2, -3, ... for `unseen_labels`, -1 for any other."""
        ids = self.tokenizer.encode(self.text(example.tokens)) or [self.tokenizer.vocab.unk_id]
        return self.frame(ids), gold_id(example.label, self.labels, self.unseen_labels)

    def cut_item(self, item: tuple, sizes: tuple[int, ...]) -> tuple:
        """The text's first sizes[0] tokens (framed: [CLS] .. [SEP] kept), its label."""
        return self.cut_ids(item[0], sizes[0]), item[1]

    def unseen_gold(self, items: Sequence[Any]) -> dict[str, int]:
        return count_unseen((int(item[1]) for item in items), self.unseen_labels)

    def collate(self, items: list) -> TextBatch:
        ids, labels = zip(*items)
        return pad_batch(ids, torch.tensor(labels, dtype=torch.long))

    # --- model ------------------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        return self.config.embedding_dim

    def build_network(self, body: nn.Module) -> Classifier:
        c = self.config
        self.ensure_vocab()
        traits = traits_of(body)
        pool = Pooling(c.pooling, body.output_size, "bidirectional" in traits,
                       body.pooled if "pooler" in traits else None)
        return Classifier(self.input_layer(body), body, pool, len(self.labels), c.dropout)

    def step(self, network: Classifier, batch: TextBatch, state=None) -> StepOutput:
        logits = network(batch)  # (B, C)
        targets = batch.targets.masked_fill(batch.targets < 0, -100)  # (B,)
        loss_sum = nn.functional.cross_entropy(logits, targets, reduction="sum", ignore_index=-100)
        count = (targets >= 0).sum()
        stats = {"loss_sum": loss_sum.detach(), "count": count}
        if not network.training:
            stats.update(self.prediction_stats(logits.argmax(-1), batch.targets))
        return StepOutput(loss_sum / count.clamp(min=1), count, stats)

    def prediction_stats(self, predicted: Tensor, gold: Tensor) -> dict[str, Tensor]:
        """Correct count and, per class c, true positives, predictions and gold labels (sums).
        Unseen gold labels (ids -2, -3, ...) are classes too: never predicted, their F1 is 0, as
        scikit-learn's macro average counts every class present in gold or predictions."""
        stats = {"correct": (predicted == gold).sum(), "examples": torch.tensor(len(gold))}
        for c in self.class_ids():
            stats.update({f"tp_{c}": ((predicted == c) & (gold == c)).sum(),
                          f"pred_{c}": (predicted == c).sum(), f"gold_{c}": (gold == c).sum()})
        return stats

    def class_ids(self) -> list[int]:
        """The ids scored: the training labels', then the unseen labels' (-2, -3, ...)."""
        return [*range(len(self.labels)), *(-2 - k for k in range(len(self.unseen_labels)))]

    def metrics(self, totals: dict[str, float]) -> dict[str, float]:
        metrics = {"loss": totals["loss_sum"] / max(totals["count"], 1)}
        if "examples" in totals:
            metrics["accuracy"] = totals["correct"] / max(totals["examples"], 1)
            metrics["macro_f1"] = macro_f1(totals, self.class_ids())
        return metrics

    # --- rnnzoo predict ---------------------------------------------------------------------
    def predict(self, network: Classifier, lines: Iterable[str], device: torch.device) -> Iterator[str]:
        """A text per line in, its label out."""
        network.eval()

        def classify(batch_lines: list[str]) -> list[str]:
            best = self.class_probabilities(network, batch_lines, device).argmax(-1)  # (B,)
            return [self.labels.itos[i] for i in best.tolist()]

        yield from self.predict_lines(lines, classify)

    def class_probabilities(self, network: Classifier, lines: list[str], device: torch.device) -> Tensor:
        """(B, C) softmax over `labels.itos` of each non-empty line: `rnnzoo predict` prints the
        argmax's label, `rnnzoo serve` answers with the distribution."""
        items = [self.cut_input(self.encode(LabeledText("", line.split()))) for line in lines]
        batch = self.collate([(ids, 0) for ids, _ in items]).to(device)
        return network(batch).softmax(-1).cpu()  # (B, C)


def macro_f1(totals: dict[str, float], classes: int | Iterable[int]) -> float:
    """Mean F1 over the classes (ids, or a count: 0..n-1) present in gold or predictions
    (scikit-learn's macro average)."""
    classes = range(classes) if isinstance(classes, int) else classes
    scores = [2 * totals[f"tp_{c}"] / (totals[f"pred_{c}"] + totals[f"gold_{c}"])
              for c in classes if totals[f"pred_{c}"] + totals[f"gold_{c}"] > 0]
    return sum(scores) / len(scores) if scores else 0.0
