"""Language modelling: predict the next token of a text (char-rnn, Karpathy 2015; Zaremba et al. 2014).

The text becomes one stream of token ids: characters (`level=char`), words with `<eos>` at
each line end (`level=word`, Mikolov's PTB convention, as pytorch/examples'
word_language_model), or subword pieces (`bpe`, `wordpiece`, via `rnnzoo.data.Tokenizer`).
The vocabulary comes from the training split alone and travels in the checkpoint, so `eval`
and `sample` need no data.

Two ways to cut training windows (`task.sampling`):

* `streams` (default; pytorch/examples word_language_model): the training stream is cut into
  `batch_size` contiguous streams, (B, W); batch i of an epoch is the window of `bptt` steps
  starting at column i * bptt, and the trainer carries the model state (detached) from one
  batch to the next (`streams_state`), so a window continues where the last one stopped:
  truncated BPTT over the whole text. Batch i depends on i alone, so a resumed run (which
  also restores the carried state from the checkpoint) sees exactly the same windows.
* `random` (nanoGPT's `get_batch`): each batch is B windows at random offsets, drawn from a
  generator seeded by (seed, epoch, batch index); every window starts from a zero state.

Evaluation reads the split as `eval_batch_size` streams, window after window, so every token
is predicted once; with `streams` the state is carried across windows, so each token has all
its left context (pytorch/examples' `evaluate`); with `random` each window starts afresh, as
the model was trained (nanoGPT's `estimate_loss`). `eval_tokens` keeps evaluation cheap on a
fixed prefix of the split.

The network: embedding (or one-hot) -> dropout -> model -> dropout -> linear to the
vocabulary. `tie_embeddings` shares the embedding matrix with the output layer (Press & Wolf
2017; Inan et al. 2017), which needs the model's output size to equal `embedding_dim`.
Metrics: loss (nats per token), perplexity exp(loss), and bits per character loss / ln 2 at
the character level.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from ..data import Tokenizer, corpus, open_dataset, stream_batches
from ..data.arrays import ArrayFile, id_dtype
from ..data.streaming import byte_floor, file_size
from ..data.vocab import EOS
from ..decoding import sample_next
from ..errors import RnnzooError
from ..nn.layers import OneHot
from ..nn.recurrent import State
from ..registry import TASKS, help_field
from .base import SequenceBatch, StepOutput, Task, TaskNetwork, add_stats, float_stats, seeded_generator
from .data_cache import cache_of, cached_stream, cached_vocab
from .embeddings import VectorOptions, VectorSide, id_counts

log = logging.getLogger("rnnzoo")

SAMPLINGS = ("streams", "random")
LINE_LEVELS = corpus.LINE_LEVELS  # tokenized line by line, `<eos>` closing each line
#: `rnnzoo sample` reads at most the last this many prompt tokens: a 20,000-character prompt
#: is cut (with a warning) rather than read for minutes; the newest context is what continues
MAX_PROMPT_TOKENS = 4096


@dataclass
class GenerationConfig(VectorOptions):
    level: str = help_field("char", "tokens: char, word (<eos> per line, as for PTB), bpe or wordpiece")
    batch_size: int = help_field(32, "parallel streams (sampling=streams) or random windows per batch", ge=1)
    bptt: int = help_field(64, "steps per training window (truncated BPTT length; nanoGPT's block_size)", ge=1)
    sampling: str = help_field("streams", "streams: contiguous streams, state carried across windows "
                                          "(word_language_model); random: random windows, fresh state (nanoGPT)")
    batches_per_epoch: int | None = help_field(None, "random sampling: batches per epoch "
                                                     "(null: training tokens // (batch_size * bptt))", ge=1)
    embedding_dim: int | None = help_field(128, "learned embedding width (null: one-hot inputs, as char-rnn)", ge=1)
    embedding_std: float | None = help_field(None, "std of the embedding's normal init (null: PyTorch's 1.0); "
                                                   "0.02 as GPT-2 and nanoGPT, for Transformers", gt=0)
    dropout: float = help_field(0.0, "dropout on the embeddings and on the model's outputs (Zaremba et al. 2014)",
                                ge=0, lt=1)
    tie_embeddings: bool = help_field(False, "share the embedding with the output layer (Press & Wolf 2017); "
                                             "needs model output size == embedding_dim")
    min_freq: int = help_field(1, "tokens seen fewer times in train become <unk> (char/word)", ge=1)
    max_vocab: int | None = help_field(None, "keep at most this many tokens besides the specials (null: all)", ge=1)
    vocab_size: int = help_field(8000, "subword vocabulary size (bpe/wordpiece)", ge=1)
    eval_batch_size: int = help_field(10, "parallel streams when evaluating", ge=1)
    eval_tokens: int | None = help_field(None, "evaluate on the first this many tokens of val/test only "
                                               "(a fixed subset, to keep evaluation cheap; null: all)", ge=2)
    sample_tokens: int = help_field(200, "tokens of text sampled into TensorBoard (samples/) after each "
                                         "evaluation (0: none)", ge=0)
    sample_prompt: str = help_field("", "prompt of those samples (empty: start after a line break)")
    target: float | None = help_field(None, "stop when the validation loss reaches this (null: never)", ge=0)
    init_range: float | None = help_field(None, "initialise every parameter (embedding, model, output layer, "
                                                "biases too) uniform in [-a, a] (Zaremba et al. 2014: 0.1; "
                                                "null: each layer's own init)", gt=0)


class LanguageModel(TaskNetwork):
    """Embedding -> dropout -> causal model -> dropout -> vocabulary logits, weights optionally tied."""

    def __init__(self, body: nn.Module, vocab_size: int, embedding_dim: int | None, dropout: float,
                 tie: bool, embedding_std: float | None = None) -> None:
        embed = OneHot(vocab_size) if embedding_dim is None else nn.Embedding(vocab_size, embedding_dim)
        if embedding_std is not None and embedding_dim is not None:
            nn.init.normal_(embed.weight, std=embedding_std)
        output = nn.Linear(body.output_size, vocab_size)
        if tie:
            if embedding_dim is None:
                raise RnnzooError("task.tie_embeddings=true needs a learned embedding: set task.embedding_dim")
            if body.output_size != embedding_dim:
                raise RnnzooError(f"task.tie_embeddings=true shares the {embedding_dim}-wide embedding with the "
                                  f"output layer, which reads the model's {body.output_size} features: set "
                                  f"task.embedding_dim={body.output_size} or model.hidden_size={embedding_dim}")
            output.weight = embed.weight  # (V, E): one matrix reads tokens in and writes them out
        super().__init__(body, nn.Sequential(nn.Dropout(dropout), output), nn.Sequential(embed, nn.Dropout(dropout)))


@TASKS.register("generation", config=GenerationConfig)
class GenerationTask(Task):
    """Next-token prediction on a text dataset; `rnnzoo sample` continues a prompt."""

    requires = frozenset({"sequence", "causal"})
    reads = frozenset({"text"})
    variants = ({"sampling": "random"},)  # random windows need no state carried across them

    @classmethod
    def needs(cls, config: GenerationConfig) -> frozenset[str]:
        """Contiguous streams carry the state across windows: they need a model that has one."""
        return cls.requires | {"stateful"} if config.sampling == "streams" else cls.requires
    monitor = "loss"

    def __init__(self, config: GenerationConfig, seed: int, dataset: dict[str, Any] | None = None) -> None:
        if config.level not in ("char", "word", "bpe", "wordpiece"):
            raise ValueError(f"level must be char, word, bpe or wordpiece, got {config.level!r}")
        if config.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {config.sampling!r}")
        super().__init__(config, seed, dataset)
        # an instance attribute, read by the trainer: only contiguous streams carry state
        self.streams_state = config.sampling == "streams"
        self.requires = self.needs(config)
        self._tokenizer: Tokenizer | None = None
        self._ids: dict[str, np.ndarray] = {}  # split -> (N,) token ids, mapped or read on first use

    # --- vocabulary and data ------------------------------------------------------------
    @property
    def tokenizer(self) -> Tokenizer:
        """Built from the training split on first use (kept in the token cache), or restored by
        `load_state_dict`."""
        if self._tokenizer is None:
            state = cached_vocab(self, lambda: {"tokenizer": self._train_tokenizer().state_dict()})
            self._tokenizer = Tokenizer.from_state_dict(state["tokenizer"])
        return self._tokenizer

    def _train_tokenizer(self) -> Tokenizer:
        c = self.config
        if cache_of(self) is None:  # the corpus in memory, as one string
            text = self._text("train")
            pieces = text.splitlines() if c.level in LINE_LEVELS else [text]
            return Tokenizer.train(c.level, pieces, vocab_size=c.vocab_size, min_freq=c.min_freq,
                                   max_size=c.max_vocab)
        span, marks = self._dataset().span("train")
        byte_stop = byte_floor(marks, span.stop) if marks else file_size(span.path)
        sample = self.dataset_config.get("vocab_sample_mb")
        return corpus.train_tokenizer(c.level, span, byte_stop, None if sample is None else int(sample * 1e6),
                                      c.vocab_size, c.min_freq, c.max_vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @property
    def input_size(self) -> int:
        return self.config.embedding_dim if self.config.embedding_dim is not None else self.vocab_size

    def _dataset(self) -> Any:
        return open_dataset(self.dataset_config)

    def _text(self, split: str) -> str:
        return self._dataset().load(split)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; at the line levels every line ends in `<eos>`."""
        tokenizer = self.tokenizer
        if self.config.level not in LINE_LEVELS:
            return tokenizer.encode(text)
        eos = tokenizer.vocab.stoi[EOS]
        ids: list[int] = []
        for line in text.splitlines():
            ids += tokenizer.encode(line) + [eos]
        return ids

    def ids(self, split: str) -> np.ndarray:
        """(N,) ids of a whole split: memory-mapped from the token cache (written on first use),
        or encoded in memory where the dataset keeps no cache."""
        if split not in self._ids:
            ids = self._cached_ids(split)
            if ids is None:
                ids = np.asarray(self.encode(self._text(split)), dtype=np.int64)
            if len(ids) < 2:
                raise RnnzooError(f"the {split} split holds {len(ids)} token(s); a language model needs 2 or more")
            self._ids[split] = ids
        return self._ids[split]

    def _cached_ids(self, split: str) -> np.ndarray | None:
        """The split's stream from the token cache. Where the stream lies is a function of the key
        (files, options, split), so nothing is read but the map unless the entry is missing."""
        if cache_of(self) is None:
            return None
        dataset, tokenizer = self._dataset(), self.tokenizer
        split = dataset.alias(split)  # a test split that is the validation split shares its entry

        def write(out: ArrayFile, on_bytes: Callable[[int], None]) -> None:
            span, _ = dataset.span(split)
            for ids in corpus.stream_ids(tokenizer, span, on_bytes):
                out.write(ids)

        return cached_stream(self, split, write, id_dtype(len(tokenizer)), file_size(dataset.split_source(split)))

    def prepare_splits(self) -> None:
        for split in ("train", "val", "test"):
            self.ids(split)

    # --- batches --------------------------------------------------------------------------
    def train_batches(self, epoch: int, start: int = 0) -> Iterator[SequenceBatch]:
        if self.config.sampling == "random":
            yield from self._random_batches(epoch, start)
        else:
            streams = self._streams("train", self.config.batch_size)
            yield from stream_windows(streams, self.config.bptt, start)

    def _streams(self, split: str, batch_size: int) -> Tensor:
        ids = self.ids(split)
        if split != "train" and self.config.eval_tokens is not None:
            ids = ids[:self.config.eval_tokens + 1]  # +1: the last kept token is a target too
        if len(ids) < 2 * batch_size:
            raise RnnzooError(f"the {split} split's {len(ids)} tokens cannot fill {batch_size} streams of 2 "
                              f"tokens or more; lower task.{'batch_size' if split == 'train' else 'eval_batch_size'}")
        return stream_batches(ids, batch_size)  # (B, W)

    def _random_batches(self, epoch: int, start: int) -> Iterator[SequenceBatch]:
        ids, c = self.ids("train"), self.config
        T = min(c.bptt, len(ids) - 1)
        count = c.batches_per_epoch or max(1, (len(ids) - 1) // (c.batch_size * T))
        for index in range(start, count):
            generator = seeded_generator(self.seed, 0, epoch, index)
            offsets = torch.randint(0, len(ids) - T, (c.batch_size,), generator=generator)  # (B,)
            steps = offsets.unsqueeze(1) + torch.arange(T + 1)  # (B, T + 1)
            window = long_tensor(ids[steps.numpy()])  # (B, T + 1): only these tokens are read
            yield token_batch(window[:, :-1], window[:, 1:])

    def eval_batches(self, split: str) -> list[SequenceBatch]:
        """The consecutive windows of a split's streams; `evaluate` carries the state across them."""
        return list(self._eval_windows(split))

    def _eval_windows(self, split: str) -> Iterator[SequenceBatch]:
        """The same windows one at a time, read from the (mapped) stream as they come: evaluating
        a large split holds one window in memory, not the split."""
        if split not in ("val", "test"):
            raise ValueError(f"split must be val or test, got {split!r}")
        return stream_windows(self._streams(split, self.config.eval_batch_size), self.config.bptt)

    # --- pretrained word vectors (rnnzoo.tasks.embeddings applies them) -----------------------
    def vector_sides(self) -> list[VectorSide]:
        """The token vocabulary `task.pretrained_embeddings` fills, with its training token counts."""
        def counts() -> np.ndarray:
            return id_counts([self.ids("train")], self.vocab_size)

        return [VectorSide("words", self.tokenizer, self.config.pretrained_embeddings, "task.embedding_dim", counts)]

    def word_embeddings(self, network: nn.Module) -> dict[str, nn.Embedding]:
        """The network's token table (none for one-hot inputs)."""
        table = network.embed[0]
        return {"words": table} if isinstance(table, nn.Embedding) else {}

    # --- model, loss, metrics -------------------------------------------------------------
    def build_network(self, body: nn.Module) -> LanguageModel:
        c = self.config
        network = LanguageModel(body, self.vocab_size, c.embedding_dim, c.dropout, c.tie_embeddings, c.embedding_std)
        if c.init_range is not None:
            init_uniform(network, c.init_range)
        return network

    def step(self, network: nn.Module, batch: SequenceBatch, state: State | None = None) -> StepOutput:
        logits, state = network(batch.inputs, None, state)  # (B, T, V)
        loss_sum = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1),
                                               reduction="sum")
        count = torch.tensor(batch.targets.numel(), device=loss_sum.device)
        return StepOutput(loss_sum / count, count, {"loss_sum": loss_sum.detach(), "count": count}, state)

    def metrics(self, totals: dict[str, float]) -> dict[str, float]:
        loss = totals["loss_sum"] / max(totals["count"], 1)
        metrics = {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}
        if self.config.level == "char":
            metrics["bpc"] = loss / math.log(2)  # bits per character
        return metrics

    @torch.no_grad()
    def evaluate(self, network: nn.Module, split: str, device: torch.device) -> dict[str, float]:
        """Every token of the split predicted once. With `sampling=streams` the state is carried
        from window to window, as in training; with `sampling=random` every window starts from a
        zero state, as in training and in nanoGPT's `estimate_loss` (a model trained on short
        windows only has never seen the states that a long stream leads to)."""
        was_training = network.training
        network.eval()
        totals: dict[str, Any] = {}
        state = None
        for batch in self._eval_windows(split):
            out = self.step(network, batch.to(device), state)
            state = out.state if self.streams_state else None
            add_stats(totals, out.stats)
        network.train(was_training)
        return self.metrics(float_stats(totals))

    # --- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "tokenizer" in state:
            self._tokenizer = Tokenizer.from_state_dict(state["tokenizer"])

    # --- text out -------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, network: nn.Module, prompt: str, max_new_tokens: int, device: torch.device,
               generator: torch.Generator, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None) -> Iterator[str]:
        """Continue `prompt` token by token. The prompt is read once; then each new token is one
        step of the model from its carried state, so a token costs the same at any length."""
        for piece, _token, _logits in self.sample_steps(network, prompt, max_new_tokens, device, generator,
                                                        temperature, top_k, top_p):
            if piece:
                yield piece

    @torch.no_grad()
    def sample_steps(self, network: nn.Module, prompt: str, max_new_tokens: int, device: torch.device,
                     generator: torch.Generator, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> Iterator[tuple[str, int, Tensor]]:
        """`sample`, one step at a time: (the text piece it adds, maybe "", the token id drawn,
        the model's logits (V,) it was drawn from, before temperature and truncation). `rnnzoo
        serve` shows each step's next-token distribution from these."""
        was_training = network.training
        network.eval()
        ids = self._prompt_ids(prompt)
        logits, state = network(torch.tensor([ids], device=device), None, None)  # (1, P, V)
        pieces = TextPieces(self, line_start=ids[-1] == self.tokenizer.vocab.stoi[EOS])
        for _ in range(max_new_tokens):
            token = sample_next(logits[:, -1], generator, temperature, top_k, top_p)  # (1,)
            yield pieces.add(int(token)), int(token), logits[0, -1]
            logits, state = network(token.view(1, 1), None, state)  # (1, 1, V): one step, state carried
        network.train(was_training)

    def _prompt_ids(self, prompt: str) -> list[int]:
        """The prompt's last MAX_PROMPT_TOKENS ids; an empty prompt starts as after a line break."""
        vocab = self.tokenizer.vocab
        if self.config.level in LINE_LEVELS:
            ids = self.tokenizer.encode(prompt) if prompt.strip() else [vocab.stoi[EOS]]
        else:
            ids = (self.tokenizer.encode(prompt) if prompt else []) or [vocab.stoi.get("\n", vocab.stoi[EOS])]
        if len(ids) > MAX_PROMPT_TOKENS:
            log.warning("a prompt of %s tokens: only its last %s are read", f"{len(ids):,}", f"{MAX_PROMPT_TOKENS:,}")
        return ids[-MAX_PROMPT_TOKENS:]

    def on_evaluation(self, network: nn.Module, step: int, writer: Any) -> None:
        """After each evaluation: a short sample into TensorBoard as text (samples/), so a run
        shows what its model writes. A generator of its own leaves the training RNG alone."""
        if self.config.sample_tokens <= 0 or writer is None:
            return
        device = next(network.parameters()).device
        generator = torch.Generator(device=device).manual_seed(self.seed + step)
        text = self.config.sample_prompt + "".join(
            self.sample(network, self.config.sample_prompt, self.config.sample_tokens, device, generator))
        writer.add_text("samples", "```\n" + text + "\n```", step)


class TextPieces:
    """Generated ids -> the text each adds, for streaming to a terminal.

    char: the character; word: the word (after a space unless a line starts), `<eos>` a line
    break; bpe and wordpiece: the decoded text so far minus what was shown (a piece can end
    mid-character or mid-word), which costs O(length) per token in text, not in the model.
    """

    def __init__(self, task: GenerationTask, line_start: bool = False) -> None:
        self.tokenizer, self.level = task.tokenizer, task.config.level
        self.eos = self.tokenizer.vocab.stoi[EOS]
        self.ids: list[int] = []
        self.shown = ""
        self.line_start = line_start  # word level: the next word starts a line, no space before it

    def add(self, index: int) -> str:
        if self.level == "char":
            return self.tokenizer.decode([index])
        if self.level == "word":
            if index == self.eos:
                self.line_start = True
                return "\n"
            word = self.tokenizer.decode([index])  # "" for <pad>, <bos>, <mask>: no piece
            space = "" if self.line_start or not word else " "
            self.line_start = self.line_start and not word
            return space + word
        self.ids.append(index)
        text = self._decode_subwords()
        if len(text) <= len(self.shown) or not text.startswith(self.shown):
            return ""
        piece, self.shown = text[len(self.shown):], text
        return piece

    def _decode_subwords(self) -> str:
        if self.level == "bpe":
            return self.tokenizer.decode(self.ids)
        lines, line = [], []
        for index in self.ids:  # wordpiece: lines end at <eos>
            if index == self.eos:
                lines.append(self.tokenizer.decode(line))
                line = []
            else:
                line.append(index)
        return " " + "\n".join([*lines, self.tokenizer.decode(line)])


@torch.no_grad()
def init_uniform(network: nn.Module, bound: float) -> None:
    """Every parameter uniform in [-bound, bound], as Zaremba et al. 2014 (`params:uniform(-0.1,
    0.1)` over the whole network in their Lua code): it replaces the layers' own inits, the LSTM's
    forget-gate bias of 1 included."""
    for parameter in network.parameters():
        parameter.uniform_(-bound, bound)


def long_tensor(ids: np.ndarray) -> Tensor:
    """Ids of any integer type (uint16 from the token cache) as a torch long tensor."""
    return torch.from_numpy(np.asarray(ids, dtype=np.int64))


def token_batch(inputs: Tensor, targets: Tensor) -> SequenceBatch:
    """A batch where every target counts (no padding in a text stream)."""
    return SequenceBatch(inputs, targets, torch.ones_like(targets, dtype=torch.bool))


def stream_windows(streams: np.ndarray, bptt: int, start: int = 0) -> Iterator[SequenceBatch]:
    """Consecutive windows of (B, W) streams: inputs columns [i*bptt, (i+1)*bptt), targets one
    column later; the last window may be shorter. Skips the first `start` (resume)."""
    width = streams.shape[1] - 1  # the last column is only ever a target
    for index in range(start, math.ceil(width / bptt)):
        lo, hi = index * bptt, min((index + 1) * bptt, width)
        window = long_tensor(streams[:, lo:hi + 1])  # (B, hi - lo + 1): read from the map now
        yield token_batch(window[:, :-1], window[:, 1:])
