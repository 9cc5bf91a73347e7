"""The task contract: what a task owns and what the trainer may ask of it.

A task owns its data (generated or read), vocabularies, the head (and input embedding) it
puts around a model, the loss, the metrics and any decoding. It declares which traits it
needs from a model (`requires`, see `rnnzoo.models.traits`). The trainer knows nothing else:
it asks for batches, calls `step`, backpropagates the returned loss and sums the returned
statistics, so a new task plugs in without touching it.

Statistics are sums (loss_sum, count, correct, ...), never averages, so that they add up
across batches, windows and (for distributed runs) processes; `metrics` turns the totals
into the numbers users read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Iterator

import torch
from torch import Tensor, nn

from ..errors import RnnzooError
from ..nn.recurrent import State
from .batch import DataclassBatch

Stats = dict[str, Tensor]


@dataclass
class SequenceBatch(DataclassBatch):
    """Inputs and targets aligned step by step, batch first.

    inputs: (B, T) token ids or (B, T, F) features; targets: (B, T) ids or values;
    mask: (B, T) bool, which targets count; lengths: (B,) real lengths, None when unpadded.
    Every field has time on dim 1, so truncated BPTT can cut the batch into windows. A `Batch`
    (rnnzoo.tasks.batch): lengths stay on the CPU, packing wants them there.
    """

    inputs: Tensor
    targets: Tensor
    mask: Tensor
    lengths: Tensor | None = None

    @property
    def num_tokens(self) -> int:
        return self.inputs.shape[0] * self.inputs.shape[1]

    def windows(self, size: int | None) -> list["SequenceBatch"]:
        """Consecutive time windows of at most `size` steps (the whole batch when None)."""
        T = self.inputs.shape[1]
        if size is None or size >= T:
            return [self]
        return [self._window(start, min(start + size, T)) for start in range(0, T, size)]

    def _window(self, start: int, stop: int) -> "SequenceBatch":
        lengths = None if self.lengths is None else (self.lengths - start).clamp(0, stop - start)
        return type(self)(self.inputs[:, start:stop], self.targets[:, start:stop],
                          self.mask[:, start:stop], lengths)


@dataclass
class StepOutput:
    """What `Task.step` returns.

    loss: the scalar to backpropagate (a mean over the counted targets); count: how many
    targets it covers (0 for a truncated-BPTT window with nothing to predict, which the
    trainer then skips); stats: sums for the metrics; state: the model's new state.
    """

    loss: Tensor
    count: Tensor
    stats: Stats
    state: State | None = None


class TaskNetwork(nn.Module):
    """embed -> model -> head: the trainable whole the trainer sees and checkpoints save.

    The model (`body`) is the registry's module, unchanged; `embed` and `head` belong to the
    task. Keeping them apart is what lets one LSTM serve copy, tagging and generation.
    """

    def __init__(self, body: nn.Module, head: nn.Module, embed: nn.Module | None = None) -> None:
        super().__init__()
        self.embed = embed if embed is not None else nn.Identity()
        self.body = body
        self.head = head

    def features(self, inputs: Tensor, lengths: Tensor | None = None, state: State | None = None
                 ) -> tuple[Tensor, State]:
        """The model's features (B, T, output_size) before the head, and its state."""
        return self.body(self.embed(inputs), lengths, state)

    def forward(self, inputs: Tensor, lengths: Tensor | None = None, state: State | None = None
                ) -> tuple[Tensor, State]:
        features, state = self.features(inputs, lengths, state)
        return self.head(features), state


class Task:
    """Base class of every task. Subclasses register with `@TASKS.register(name, config=...)`."""

    #: traits a model must have (see rnnzoo.models.traits)
    requires: ClassVar[frozenset[str]] = frozenset({"sequence"})
    #: the validation metric that picks the best checkpoint, and whether higher is better
    monitor: ClassVar[str] = "loss"
    monitor_mode: ClassVar[str] = "min"
    #: carry the model state from one training batch to the next (parallel text streams)
    streams_state: ClassVar[bool] = False
    #: kinds of data this task reads; a dataset declares its kind as a trait in the DATASETS
    #: registry ("synthetic", "text", "tagged", "labeled", "parallel")
    reads: ClassVar[frozenset[str]] = frozenset({"synthetic"})
    #: input traits (rnnzoo.models.traits.INPUT_TRAITS) this task can feed: "token_input" for
    #: tasks that can hand a model token ids instead of their own embeddings
    accepts: ClassVar[frozenset[str]] = frozenset()
    #: option changes that let this task take models it cannot as configured (each a dict of
    #: config fields; see rnnzoo.models.traits.find_fit)
    variants: ClassVar[tuple[dict[str, Any], ...]] = ()
    #: the kind of trainer that fits this task's networks (rnnzoo.training.trainers): "gradient",
    #: or "hebbian" for models that learn without gradients (a Hopfield network stores its
    #: patterns), rather than a special case inside the gradient trainer's loop
    trainer: ClassVar[str] = "gradient"

    @classmethod
    def needs(cls, config: Any) -> frozenset[str]:
        """The traits a model must have under `config`: `requires`, unless an option adds one."""
        return cls.requires

    def __init__(self, config: Any, seed: int, dataset: dict[str, Any] | None = None) -> None:
        """config: this task's typed config; dataset: the run's `dataset` section (a plain dict
        with its registry `name`), which tasks reading files pass to `rnnzoo.data.open_dataset`.

        Construction must stay cheap and must not read data: a task rebuilt from a checkpoint
        gets its vocabularies from `load_state_dict`, on a machine that may lack the data.
        """
        self.config = config
        self.seed = seed
        self.dataset_config = dataset or {"name": "synthetic"}

    # --- data -----------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        """Features per step that the model receives (after the task's embedding)."""
        raise NotImplementedError

    def train_batches(self, epoch: int, start: int = 0) -> Iterator[Any]:
        """Batches of one epoch, deterministic given (seed, epoch); skip the first `start`."""
        raise NotImplementedError

    def eval_batches(self, split: str) -> Iterable[Any]:
        """The fixed batches of a split ("val" or "test")."""
        raise NotImplementedError

    def prepare_splits(self) -> None:
        """Read and encode every split now (into the token cache, where the data has one): what
        `rnnzoo prepare` does ahead of training. Generated data has nothing to prepare."""

    def extra_datasets(self) -> list[dict[str, Any]]:
        """Configs of datasets read besides the run's own (their files join the token cache's key)."""
        return []

    def encoding_key(self) -> dict[str, Any]:
        """What else than its options shapes the ids this task caches (see rnnzoo.tasks.data_cache)."""
        return {}

    def model_sizes(self) -> dict[str, int]:
        """Model config fields this task's data decides (the input width; vocabulary sizes for
        encoder-decoders), set before the model is built wherever its config has them."""
        return {"input_size": self.input_size}

    @property
    def target(self) -> float | None:
        """Stop training once the monitored validation metric reaches this value."""
        return getattr(self.config, "target", None)

    # --- model ----------------------------------------------------------------------
    def build_network(self, body: nn.Module) -> nn.Module:
        """Wrap the registry's model with this task's embedding and head."""
        raise NotImplementedError

    def step(self, network: nn.Module, batch: Any, state: State | None) -> StepOutput:
        """Loss and summed statistics of one batch (or truncated-BPTT window)."""
        raise NotImplementedError

    def metrics(self, totals: dict[str, float]) -> dict[str, float]:
        """The numbers users read, from statistics summed over a split."""
        raise NotImplementedError

    # --- evaluation and state kept in checkpoints -----------------------------------
    @torch.no_grad()
    def evaluate(self, network: nn.Module, split: str, device: torch.device) -> dict[str, float]:
        """Metrics of `network` on a split; decoding tasks override this."""
        was_training = network.training
        network.eval()
        totals: dict[str, float] = {}
        for batch in self.eval_batches(split):
            out = self.step(network, batch.to(device), None)
            add_stats(totals, out.stats)
        network.train(was_training)
        return self.metrics(float_stats(totals))

    def on_evaluation(self, network: nn.Module, step: int, writer: Any) -> None:
        """Called by the trainer after each validation (e.g. to log text samples); a no-op here."""

    def state_dict(self) -> dict[str, Any]:
        """What the task needs to rebuild itself from a checkpoint (vocabularies...)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    def inherit_tokenizer(self, state: dict[str, Any]) -> None:
        """Take the tokenizer of a pretraining run (its task `state`, from `model.init_from`)
        before building any vocabulary, so token ids mean what they meant in pretraining."""
        raise RnnzooError(f"task '{type(self).__name__}' cannot start from a pretrained tokenizer "
                          "(model.init_from): it builds its own inputs")

    # --- inference from text (rnnzoo predict / rnnzoo sample) -------------------------
    def predict(self, network: nn.Module, lines: Iterable[str], device: torch.device) -> Iterator[str]:
        """One output line (tags, a label...) per input line: what `rnnzoo predict` prints."""
        raise RnnzooError(f"task '{type(self).__name__}' does not predict from text lines")

    def sample(self, network: nn.Module, prompt: str, max_new_tokens: int, device: torch.device,
               generator: torch.Generator, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None) -> Iterator[str]:
        """Text pieces continuing `prompt`, yielded as they are drawn: what `rnnzoo sample` streams."""
        raise RnnzooError(f"task '{type(self).__name__}' does not generate text; sampling needs task=generation")


def masked_cross_entropy(logits: Tensor, targets: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """(sum of cross-entropy over the targets the mask keeps, how many it keeps).

    logits (B, T, V), targets (B, T), mask (B, T) bool. Masked targets become PyTorch's
    ignore_index, so the loss stays one fused kernel, backward included.
    """
    ignored = targets.masked_fill(~mask, -100)  # (B, T)
    loss_sum = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ignored.reshape(-1),
                                           reduction="sum", ignore_index=-100)
    return loss_sum, mask.sum()


def add_stats(totals: dict[str, Any], stats: Stats) -> None:
    """Add a batch's statistics into running totals.

    Totals stay tensors while they accumulate (no host sync per batch in the training loop);
    `float_stats` turns them into numbers when someone reads them.
    """
    for key, value in stats.items():
        value = value.detach() if isinstance(value, Tensor) else value
        totals[key] = totals[key] + value if key in totals else value


def float_stats(totals: dict[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in totals.items()}


def seeded_generator(*parts: int) -> torch.Generator:
    """A torch.Generator seeded from several integers (seed, split, epoch, batch index...).

    Each batch then depends only on its coordinates, so a resumed run regenerates exactly
    the batches an uninterrupted one would have seen, without storing any data.
    """
    value = 0
    for part in parts:
        value = (value * 1_000_003 + int(part)) % (2**63 - 1)
    return torch.Generator().manual_seed(value)
