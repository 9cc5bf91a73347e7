"""Translation: read a source sentence, write its translation (any `encoder_decoder` model).

Data: any dataset of kind `parallel`: `multi30k` (de -> en), the user's `parallel_files`
(two aligned files, or `source<TAB>target` lines), or the built-in generated sets
(`reversal`, `sorting`, `dates`). Tokenization (`task.tokenizer`): word, char, bpe or
wordpiece, trained on the training split only; `auto` takes the dataset's own level where it
declares one (characters for dates) and words otherwise. Source and target get their own
vocabularies unless `shared_vocab=true` (one tokenizer trained on both sides).

Training (teacher forcing): the decoder reads <bos> y_1 .. y_{T-1} and predicts y_1 .. y_T
<eos>; the loss is cross-entropy per target token, with label smoothing ε (Szegedy et al.
2016) as an option: (1 - ε) NLL + ε times the mean over the vocabulary of -log p. With
`teacher_forcing` below 1, each decoder step is fed the gold previous token with that
probability and the model's own argmax otherwise (scheduled sampling, Bengio et al. 2015),
which runs the decoder step by step.

Evaluation: the teacher-forced loss, perplexity (of the unsmoothed NLL) and token accuracy,
then the model translates the split (greedy, or beam search with `beam_size` > 1) and the
detokenized output is scored with sacrebleu's BLEU and chrF against the raw references, plus
the exact-match rate (the figure that counts for the generated sets). `monitor=auto` picks
exact match for generated sets and BLEU otherwise. After each evaluation a fixed handful of
validation sentences, their translations and attention heatmaps go to TensorBoard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch
from torch import Tensor, nn

from ..data import ParallelPair, Tokenizer, pad_sequences
from ..data.vocab import BOS, EOS, MASK, PAD
from ..decoding import Hypotheses, beam_search, greedy_search, max_target_lengths
from ..errors import RnnzooError
from ..metrics import translation_scores
from ..registry import DATASETS, TASKS, help_field
from .base import StepOutput, add_stats, float_stats
from .batch import DataclassBatch
from .embeddings import VectorSide, id_counts
from .text import TextDataConfig, TextTask

MONITORS = {"bleu": "max", "chrf": "max", "exact": "max", "accuracy": "max", "loss": "min"}


@dataclass
class TranslationConfig(TextDataConfig):
    """The text tasks' data options (batch sizes, vocabularies, lowercase, target), retuned for
    sentence pairs, and the decoding options."""

    batch_size: int = help_field(64, "sentence pairs per training batch (bucketed by source length)", ge=1)
    eval_batch_size: int = help_field(128, "sentence pairs per evaluation/translation batch", ge=1)
    tokenizer: str = help_field("auto", "token level of both sides: auto (the dataset's: char for dates, else "
                                        "word), word, char, bpe or wordpiece")
    shared_vocab: bool = help_field(False, "one vocabulary (and tokenizer) for source and target")
    pretrained_target_embeddings: str | None = help_field(None, "word vectors of the target side "
                                                                "(task.pretrained_embeddings: the source side's; "
                                                                "give both the same file for a shared one)")
    lowercase: bool = help_field(False, "lower-case both sides (references too, so BLEU is case-insensitive)")
    teacher_forcing: float = help_field(1.0, "probability of feeding the gold previous token in training "
                                             "(below 1: scheduled sampling, Bengio et al. 2015)", ge=0, le=1)
    label_smoothing: float = help_field(0.0, "label smoothing ε of the training loss (0.1 in Vaswani et al.)",
                                        ge=0, lt=1)
    beam_size: int = help_field(1, "beam width when evaluating and translating (1: greedy)", ge=1)
    length_penalty: float = help_field(1.0, "GNMT length penalty α of beam search (0: raw log-probability)", ge=0)
    max_length_ratio: float = help_field(1.5, "longest output: ratio * source length + max_length_offset tokens", gt=0)
    max_source_length: int = help_field(256, "longest source in tokens: longer training pairs are dropped (as "
                                             "fairseq does), longer val/test sources cut; `translate` cuts a "
                                             "longer line with a warning", ge=1)
    max_target_length: int = help_field(256, "longest target in decoder steps (its tokens and <eos>): longer "
                                             "training pairs are dropped; decoding stops after this many steps", ge=2)
    max_length_offset: int = help_field(10, "see max_length_ratio", ge=0)
    monitor: str = help_field("auto", "validation metric that picks the best checkpoint: bleu, chrf, exact, "
                                      "accuracy, loss (auto: exact for generated sets, bleu otherwise)")
    eval_sentences: int | None = help_field(None, "translate only the first this many validation sentences "
                                                  "when validating (the loss uses all; test is always whole)", ge=1)
    samples: int = help_field(4, "validation sentences shown in TensorBoard with their attention (0: none)", ge=0)


@dataclass
class TranslationBatch(DataclassBatch):
    """source (B, S) ids, 0 at pads; source_lengths (B,) on the CPU; target_in (B, T) = <bos> y_1..;
    target_out (B, T) = y_1 .. <eos>; mask (B, T) the real target tokens; references: the raw
    target sentences (for BLEU). A `Batch` (rnnzoo.tasks.batch)."""

    cpu_fields = frozenset({"source_lengths"})

    source: Tensor
    source_lengths: Tensor
    target_in: Tensor
    target_out: Tensor
    mask: Tensor
    references: list[str]

    @property
    def num_tokens(self) -> int:
        return int(self.source_lengths.sum()) + self.target_out.numel()

    def windows(self, size: int | None) -> list["TranslationBatch"]:
        if size is not None:
            raise RnnzooError("translation trains on whole sentence pairs: set trainer.tbptt_steps=null")
        return [self]


@TASKS.register("translation", config=TranslationConfig,
                summary="Sequence to sequence: BLEU/chrF/exact match, greedy or beam search (encoder-decoders)")
class TranslationTask(TextTask):
    requires = frozenset({"encoder_decoder"})
    reads = frozenset({"parallel"})
    length_options = ("max_source_length", "max_target_length")
    drops_long = True  # a training pair cut on one side would teach a wrong translation
    example_noun = "pairs"

    def __init__(self, config: TranslationConfig, seed: int, dataset: dict[str, Any] | None = None) -> None:
        super().__init__(config, seed, dataset)
        monitor = self.default_monitor() if config.monitor == "auto" else config.monitor
        if monitor not in MONITORS:
            raise ValueError(f"monitor must be auto or one of {', '.join(MONITORS)}, got {monitor!r}")
        self.monitor, self.monitor_mode = monitor, MONITORS[monitor]
        self.source_tokenizer: Tokenizer | None = None

    def dataset_class(self) -> Any:
        return DATASETS.get(self.dataset_config.get("name", "multi30k"))

    def default_monitor(self) -> str:
        return "exact" if getattr(self.dataset_class(), "generated", False) else "bleu"

    def level(self) -> str:
        if self.config.tokenizer != "auto":
            return self.config.tokenizer
        return getattr(self.dataset_class(), "level", "word")

    # --- vocabularies -----------------------------------------------------------------------
    def model_sizes(self) -> dict[str, int]:
        self.ensure_vocab()
        return {"source_vocab_size": len(self.source_tokenizer), "target_vocab_size": len(self.tokenizer)}

    def build_vocab(self, pairs: list[ParallelPair]) -> None:
        sources = [self.normalize(p.source) for p in pairs]
        targets = [self.normalize(p.target) for p in pairs]
        level = self.level()
        if self.config.shared_vocab:
            self.tokenizer = self.source_tokenizer = self._train(level, sources + targets)
        else:
            self.source_tokenizer, self.tokenizer = self._train(level, sources), self._train(level, targets)

    def _train(self, level: str, texts: list[str]) -> Tokenizer:
        c = self.config
        try:
            return Tokenizer.train(level, texts, vocab_size=c.vocab_size, min_freq=c.min_freq, max_size=c.max_vocab)
        except ValueError as error:
            raise RnnzooError(f"task.tokenizer={level}: {error}") from None

    def normalize(self, text: str) -> str:
        return text.lower() if self.config.lowercase else text

    def state_dict(self) -> dict[str, Any]:
        self.ensure_vocab()
        return {"source": self.source_tokenizer.state_dict(), "target": self.tokenizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tokenizer = Tokenizer.from_state_dict(state["target"])
        shared = state["source"] == state["target"]  # task.shared_vocab: one tokenizer, as when trained
        self.source_tokenizer = self.tokenizer if shared else Tokenizer.from_state_dict(state["source"])

    @property
    def specials(self) -> dict[str, int]:
        return {name: self.tokenizer.vocab.stoi[name] for name in (PAD, BOS, EOS, MASK)}

    # --- pretrained word vectors (rnnzoo.tasks.embeddings applies them) -----------------------
    def vector_sides(self) -> list[VectorSide]:
        """Source and target vocabularies, each with its own vectors file (maybe the same one)."""
        self.ensure_vocab()
        c, width = self.config, "model.embedding_dim (model.d_model for the transformer)"

        def counts(field: int, tokenizer: Tokenizer) -> Any:
            return lambda: id_counts((item[field] for item in self.encoded("train")), len(tokenizer))

        return [VectorSide("source", self.source_tokenizer, c.pretrained_embeddings, width,
                           counts(0, self.source_tokenizer), c.lowercase),
                VectorSide("target", self.tokenizer, c.pretrained_target_embeddings, width,
                           counts(1, self.tokenizer), c.lowercase)]

    def word_embeddings(self, network: nn.Module) -> dict[str, nn.Embedding]:
        """The encoder-decoder's own tables (one object for both where it shares them)."""
        return {"source": network.source_embed, "target": network.target_embed}

    # --- batches ----------------------------------------------------------------------------
    def encode(self, pair: ParallelPair) -> tuple[list[int], list[int], str]:
        """(source ids, target ids, the reference as BLEU reads it); an empty side reads as <unk>."""
        source = self.source_tokenizer.encode(self.normalize(pair.source)) or [self.source_tokenizer.vocab.unk_id]
        target = self.tokenizer.encode(self.normalize(pair.target)) or [self.tokenizer.vocab.unk_id]
        return source, target, self.normalize(pair.target)

    def item_sizes(self, item: tuple) -> tuple[int, ...]:
        """(source tokens, target tokens with <eos>: the decoder's steps)."""
        return len(item[0]), len(item[1]) + 1

    def cut_item(self, item: tuple, sizes: tuple[int, ...]) -> tuple:
        """Both sides cut (val/test, inference); the reference stays whole, so BLEU still
        scores the translation of a cut source against the whole reference."""
        return list(item[0][:sizes[0]]), list(item[1][:sizes[1] - 1]), item[2]

    def collate(self, items: list[tuple[list[int], list[int], str]]) -> TranslationBatch:
        bos, eos = self.specials[BOS], self.specials[EOS]
        source, source_lengths = pad_sequences([s for s, _, _ in items], 0)  # (B, S), (B,)
        target_in, _ = pad_sequences([[bos, *t] for _, t, _ in items], 0)  # (B, T)
        target_out, lengths = pad_sequences([[*t, eos] for _, t, _ in items], 0)  # (B, T)
        mask = torch.arange(target_out.shape[1]) < lengths[:, None]  # (B, T)
        return TranslationBatch(source, source_lengths, target_in, target_out, mask, [r for _, _, r in items])

    # --- model ------------------------------------------------------------------------------
    def build_network(self, body: nn.Module) -> nn.Module:
        """An encoder-decoder owns its embeddings and output layer: it is the whole network."""
        self.fit_positions(body)
        return body

    def step(self, network: nn.Module, batch: TranslationBatch, state: Any) -> StepOutput:
        if network.training and self.config.teacher_forcing < 1:
            logits = self.scheduled_sampling(network, batch)
        else:
            logits, _ = network(batch.source, batch.source_lengths, batch.target_in)  # (B, T, V)
        log_probs = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
        nll = -log_probs.gather(-1, batch.target_out[..., None]).squeeze(-1)  # (B, T)
        mask = batch.mask
        count = mask.sum()
        nll_sum = (nll * mask).sum()
        loss_sum = nll_sum
        eps = self.config.label_smoothing
        if eps > 0 and network.training:  # PyTorch's form: uniform mass ε spread over the whole vocabulary
            loss_sum = (1 - eps) * nll_sum + eps * (-log_probs.mean(-1) * mask).sum()
        correct = ((logits.argmax(-1) == batch.target_out) & mask).sum()
        stats = {"loss_sum": nll_sum.detach(), "count": count, "correct": correct}
        return StepOutput(loss_sum / count.clamp(min=1), count, stats)

    def scheduled_sampling(self, network: nn.Module, batch: TranslationBatch) -> Tensor:
        """Decoder steps fed the gold token with probability `teacher_forcing`, else the model's argmax."""
        memory = network.encode(batch.source, batch.source_lengths)
        cache = network.start(memory)
        previous, logits = batch.target_in[:, 0], []
        for t in range(batch.target_in.shape[1]):
            step_logits, cache, _ = network.decode_step(previous, memory, cache)  # (B, V)
            logits.append(step_logits)
            if t + 1 < batch.target_in.shape[1]:
                gold = torch.rand(previous.shape, device=previous.device) < self.config.teacher_forcing
                previous = torch.where(gold, batch.target_in[:, t + 1], step_logits.detach().argmax(-1))
        return torch.stack(logits, 1)  # (B, T, V)

    def metrics(self, totals: dict[str, float]) -> dict[str, float]:
        loss = totals["loss_sum"] / max(totals["count"], 1)
        metrics = {"loss": loss, "ppl": float(torch.tensor(loss).exp()),
                   "accuracy": 100 * totals["correct"] / max(totals["count"], 1)}
        return metrics

    # --- decoding ---------------------------------------------------------------------------
    def decode(self, network: nn.Module, source: Tensor, source_lengths: Tensor, beam_size: int | None = None,
               length_penalty: float | None = None) -> Hypotheses:
        """Translations of a padded source batch: greedy when the beam is 1, beam search otherwise
        (`beam_size`, `length_penalty`: the task config's where None)."""
        c, s = self.config, self.specials
        beam = beam_size or c.beam_size
        penalty = c.length_penalty if length_penalty is None else length_penalty
        max_lengths = max_target_lengths(source_lengths, c.max_length_ratio, c.max_length_offset,
                                         self.length_limits()[1])
        banned = (s[PAD], s[BOS], s[MASK])
        if beam == 1:
            return greedy_search(network, source, source_lengths, max_lengths, s[BOS], s[EOS], banned)
        return beam_search(network, source, source_lengths, max_lengths, s[BOS], s[EOS], beam,
                           penalty, banned)

    @torch.no_grad()
    def evaluate(self, network: nn.Module, split: str, device: torch.device, beam_size: int | None = None
                 ) -> dict[str, float]:
        """Loss, accuracy and the scores of the split's translations (`beam_size`: the config's where None)."""
        was_training = network.training
        network.eval()
        totals: dict[str, Any] = {}
        hypotheses, references = [], []
        budget = self.config.eval_sentences if split == "val" else None
        for batch in self.eval_batches(split):
            batch = batch.to(device)
            add_stats(totals, self.step(network, batch, None).stats)
            if budget is None or len(references) < budget:
                found = self.decode(network, batch.source, batch.source_lengths, beam_size)
                hypotheses += [self.tokenizer.decode(t) for t in found.tokens]
                references += batch.references
        network.train(was_training)
        if budget is not None:
            hypotheses, references = hypotheses[:budget], references[:budget]
        return {**self.metrics(float_stats(totals)), **translation_scores(hypotheses, references)}

    @torch.no_grad()
    def translations(self, network: nn.Module, pairs: list[ParallelPair], device: torch.device) -> list[str]:
        """Detokenized translations of the sources of `pairs`, in order (for experiments on any pair list)."""
        network.eval()
        outputs: list[str] = []
        for start in range(0, len(pairs), self.config.eval_batch_size):
            batch = self.collate([self.encode(p) for p in pairs[start:start + self.config.eval_batch_size]]).to(device)
            found = self.decode(network, batch.source, batch.source_lengths)
            outputs += [self.tokenizer.decode(t) for t in found.tokens]
        return outputs

    # --- rnnzoo translate / predict ---------------------------------------------------------
    def translate(self, network: nn.Module, lines: Iterable[str], device: torch.device, beam_size: int | None = None,
                  alignment: bool = False, length_penalty: float | None = None) -> Iterator[str]:
        """A translation per input line (an empty line gives an empty line); with `alignment`,
        each output token follows on its own line with the source token it attends to most.
        `beam_size`, `length_penalty`: the task config's where None."""
        network.eval()

        def translate_batch(batch_lines: list[str]) -> list[str]:
            items, found = self.decode_lines(network, batch_lines, device, beam_size, length_penalty)
            return [self.render(tokens, source, found.attention[i] if alignment and found.attention else None)
                    for i, (tokens, (source, _, _)) in enumerate(zip(found.tokens, items))]

        yield from self.predict_lines(lines, translate_batch)

    def decode_lines(self, network: nn.Module, lines: list[str], device: torch.device, beam_size: int | None = None,
                     length_penalty: float | None = None) -> tuple[list[tuple], Hypotheses]:
        """(the encoded items, their translations) of non-empty source lines: what `translate`
        renders and `rnnzoo serve` answers with (tokens, score, attention)."""
        items = [self.cut_input(self.encode(ParallelPair(line, ""))) for line in lines]
        batch = self.collate(items).to(device)
        return items, self.decode(network, batch.source, batch.source_lengths, beam_size, length_penalty)

    def translation_answer(self, items: list[tuple], found: Hypotheses, index: int) -> dict[str, Any]:
        """One translation of `decode_lines` as data: the text, its log-probability, the source and
        target pieces, and the attention (target pieces + <eos> rows x source pieces), if any."""
        tokens, source = found.tokens[index], items[index][0]
        attention = found.attention[index].cpu() if found.attention else None  # (steps, S)
        source_pieces, target_pieces = self.attention_labels(tokens, source, 0 if attention is None else len(attention))
        return {"translation": self.tokenizer.decode(tokens), "score": float(found.scores[index]),
                "source_tokens": source_pieces, "target_tokens": target_pieces,
                "attention": None if attention is None else attention.tolist()}

    def attention_labels(self, tokens: list[int], source: list[int], steps: int) -> tuple[list[str], list[str]]:
        """(source pieces, output pieces padded with <eos> to `steps` rows): an attention map's labels."""
        target_pieces = pieces(self.tokenizer, tokens)
        return pieces(self.source_tokenizer, source), target_pieces + [EOS] * (steps - len(tokens))

    def predict(self, network: nn.Module, lines: Iterable[str], device: torch.device) -> Iterator[str]:
        yield from self.translate(network, lines, device)

    def render(self, tokens: list[int], source: list[int], attention: Tensor | None) -> str:
        """The detokenized translation; with attention, one `target <- source (weight)` line per token."""
        text = self.tokenizer.decode(tokens)
        if attention is None:
            return text
        target_pieces = pieces(self.tokenizer, tokens) + ([EOS] if attention.shape[0] > len(tokens) else [])
        source_pieces = pieces(self.source_tokenizer, source)
        lines = [text]
        for piece, weights in zip(target_pieces, attention):
            j = int(weights.argmax())
            lines.append(f"  {piece}\t<- {source_pieces[j]}\t({float(weights[j]):.2f})")
        return "\n".join(lines)

    # --- TensorBoard ------------------------------------------------------------------------
    def on_evaluation(self, network: nn.Module, step: int, writer: Any) -> None:
        """A fixed handful of validation sentences: their translations, and attention heatmaps."""
        if self.config.samples <= 0 or writer is None:
            return
        items = self.encoded("val")[:self.config.samples]
        device = next(network.parameters()).device
        batch = self.collate(items).to(device)
        was_training = network.training
        network.eval()
        with torch.no_grad():
            found = self.decode(network, batch.source, batch.source_lengths)
        network.train(was_training)
        rows = []
        for i, (source, _, reference) in enumerate(items):
            output = self.tokenizer.decode(found.tokens[i])
            rows.append(f"| {self.source_tokenizer.decode(source)} | {reference} | {output} |")
            if found.attention is not None:
                writer.add_figure(f"attention/{i}", self.heatmap(found.tokens[i], source, found.attention[i]), step)
        writer.add_text("translations", "| source | reference | output |\n|---|---|---|\n" + "\n".join(rows), step)

    def heatmap(self, tokens: list[int], source: list[int], attention: Tensor) -> Any:
        """A matplotlib figure of the attention weights: output tokens down, source tokens across."""
        from ..plotting import attention_figure
        return attention_figure(attention.cpu(), *self.attention_labels(tokens, source, attention.shape[0]))


def pieces(tokenizer: Tokenizer, ids: list[int]) -> list[str]:
    """Each token as a reader would write it: byte-level BPE's "Ġmann" is "mann", "fÃ¤hrt" is
    "fährt" (a piece that is only part of a character keeps its raw form)."""
    raw = tokenizer.vocab.decode(ids)
    if tokenizer.level != "bpe":
        return raw
    readable = []
    for i, piece in zip(ids, raw):
        text = tokenizer.decode([i]).strip()
        readable.append(text if text and "\ufffd" not in text else piece)
    return readable
