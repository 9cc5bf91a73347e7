"""The length limits every text task applies, in one place: `LengthLimits`, a part of TextTask.

Lengths are bounded where examples are read (`within_limits`): each option in `length_options`
bounds one size of an encoded example (`item_sizes`), lowered to the model's position limit
(`max_positions` of a model with trait positional) where it has one. A longer example is cut
(`cut_item`), or dropped from training where `drops_long` (translation, as fairseq drops
pairs past --max-source/target-positions), and one line per split counts them; the token
cache keeps what was kept. At inference (`cut_input`) a longer input is cut with a warning.
Without the bound, one 1 MB line made a batch of 200,000 steps: an out-of-memory kill or an
hour in one backward pass.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Iterator, Sequence

from torch import nn

from ..errors import RnnzooError
from ..models.traits import traits_of

log = logging.getLogger("rnnzoo")


class LengthLimits:
    """The length limits of a TextTask (which holds `config`, `framed`, `max_positions` and the
    `_encoded` and `_eval_batches` that a new limit makes stale)."""

    length_options: tuple[str, ...] = ("max_length",)
    drops_long = False
    example_noun = "sentences"  # what the length log line counts

    def item_sizes(self, item: Any) -> tuple[int, ...]:
        """The sizes of an encoded example that `length_options` bound, in order: its token ids."""
        return (len(item[0]),)

    def cut_item(self, item: Any, sizes: tuple[int, ...]) -> Any:
        """The example cut down to `sizes` (each at most its own): the subclass says how."""
        raise NotImplementedError

    def length_limits(self) -> tuple[int, ...]:
        """The limit of each size: the task option, lowered to the model's position limit."""
        limits = tuple(getattr(self.config, option) for option in self.length_options)
        return limits if self.max_positions is None else tuple(min(n, self.max_positions) for n in limits)

    def limits_text(self) -> str:
        """`task.max_length=256`, as the log lines name the limits (and the model's, where lower)."""
        options = {o: getattr(self.config, o) for o in self.length_options}
        text = ", ".join(f"task.{option}={value}" for option, value in options.items())
        if self.max_positions is not None and max(options.values()) > self.max_positions:
            text += f" (model.max_positions={self.max_positions})"
        return text

    def within_limits(self, split: str, items: Iterable[Any]) -> Iterator[Any]:
        """`items` with each example longer than the limits cut, or dropped from training where
        the task `drops_long`; then one log line per split saying how many, never one per example."""
        limits, total, longer, kept = self.length_limits(), 0, 0, 0
        drop = self.drops_long and split == "train"
        for item in items:
            total += 1
            sizes = self.item_sizes(item)
            if any(size > limit for size, limit in zip(sizes, limits)):
                longer += 1
                if drop:
                    continue
                item = self.cut_item(item, tuple(map(min, sizes, limits)))
            kept += 1
            yield item
        if longer:
            name = {"train": "training", "val": "validation"}.get(split, split)
            log.warning("%s: %s of %s %s %s were longer and were %s", self.limits_text(), f"{longer:,}", f"{total:,}",
                        name, self.example_noun, "dropped" if drop else "cut")
        if total and not kept:
            raise RnnzooError(f"{self.limits_text()}: every one of the {total:,} {split} {self.example_noun} is "
                              f"longer; raise the limit")

    def cut_input(self, item: Any) -> Any:
        """An inference input within the limits: cut, with a one-line warning, where longer."""
        sizes, limits = self.item_sizes(item), self.length_limits()
        if all(size <= limit for size, limit in zip(sizes, limits)):
            return item
        option = self.length_options[0]
        model = f" (model.max_positions={self.max_positions})" if limits[0] < getattr(self.config, option) else ""
        log.warning("an input of %s tokens is longer than task.%s=%d%s: only its first %s are read", f"{sizes[0]:,}",
                    option, getattr(self.config, option), model, f"{min(sizes[0], limits[0]):,}")
        return self.cut_item(item, tuple(map(min, sizes, limits)))

    def cut_ids(self, ids: Sequence[int], size: int) -> list[int]:
        """The first `size` ids; framed, the final <eos> stays (BERT's [SEP] ends every input)."""
        if not self.framed:
            return list(ids[:size])
        return [*ids[:max(size - 1, 1)], ids[-1]]

    def fit_positions(self, body: nn.Module) -> None:
        """Lower the length limits to the model's position limit (`model.max_positions` of BERT
        and the Transformer), so no example reaches past it; recurrent models read any length."""
        limit = position_limit(body)
        if limit != self.max_positions:  # anything encoded so far was cut to other limits
            self.max_positions = limit
            self._encoded.clear()
            self._eval_batches.clear()
        if limit is not None and any(getattr(self.config, o) > limit for o in self.length_options):
            log.info("%s: examples are cut at the model's %d positions", self.limits_text(), limit)


def position_limit(body: nn.Module) -> int | None:
    """`max_positions` of a model with trait positional (BERT, the Transformer), else None."""
    return body.max_positions if "positional" in traits_of(body) else None
