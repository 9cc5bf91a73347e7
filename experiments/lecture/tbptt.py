"""Experiment 3: truncated backpropagation through time "kills the long-term memory".

Williams & Peng (1990), truncated BPTT: the sequence is cut into windows of k steps; the state
is carried across a cut, but the gradient is not, so a loss at step t reaches only the steps
of its own window:

    ∂L(t)/∂h(s) is kept for ⌊s/k⌋ = ⌊t/k⌋ and dropped (set to 0) otherwise.

The lecture: truncation "cuts the time span influence, but kills the long-term memory".

Setup (recipe `lecture_tbptt`): copy memory (rnnzoo.tasks.copy) with L = 3 symbols of A = 8,
recalled after a delay D = 8, so symbol i is shown at step i and asked for at step i + L + D
(a lag of 11; 14 steps a sequence); an LSTM of 64 units, Adam at 5e-3, 2,500 optimizer steps,
stopping early at 99.5% validation recall. The window k (`trainer.tbptt_steps`) takes values
below, at and above D, and full BPTT runs beside them. `trainer.accumulate` is the number of
windows of a sequence, so every run makes one optimizer step per batch and sees the same
sequences; only the gradient's cuts differ (the windows' losses are averaged with equal weight,
so a short last window weighs its few steps more). Three seeds per window.

What the windows allow: a pair (symbol i, its answer) lies in one window when
⌊i/k⌋ = ⌊(i + L + D)/k⌋; if a net learned exactly those pairs and guessed the rest, its recall
would be f + (1 - f)/A for the fraction f of such pairs, the 'window-only' column of the table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

from rnnzoo.plotting import pyplot

from .common import by_config, cell, over_seeds, recipe_value, run_setting, save_figure, values
from .report import Experiment, Section, markdown_table, mean_std
from .runs import Result, Run

RECIPE = "lecture_tbptt"
WINDOWS: tuple[int | None, ...] = (4, 8, 12, 13, None)  # None: full BPTT
QUICK_WINDOWS: tuple[int | None, ...] = (4, None)
QUICK = ("trainer.max_steps=20", "trainer.eval_every=20", "model.hidden_size=16", "task.eval_examples=64")
FIGURE = "tbptt.png"


def copy_setting() -> tuple[int, int, int]:
    """(L, D, A) of the recipe."""
    return tuple(int(recipe_value(RECIPE, f"task.{key}")) for key in ("length", "delay", "alphabet"))


def config_name(window: int | None) -> str:
    return "full" if window is None else f"window{window}"


def window_args(window: int | None) -> tuple[str, ...]:
    """The window and, so that a batch stays one optimizer step, accumulation over its windows."""
    length, delay, _ = copy_setting()
    if window is None:
        return ("trainer.tbptt_steps=null", "trainer.accumulate=1")
    return (f"trainer.tbptt_steps={window}", f"trainer.accumulate={math.ceil((2 * length + delay) / window)}")


def runs(quick: bool) -> list[Run]:
    extra = QUICK if quick else ()
    return [run for window in (QUICK_WINDOWS if quick else WINDOWS)
            for run in over_seeds(config_name(window), (f"experiment={RECIPE}", *window_args(window), *extra), quick)]


def window_of(results: Mapping[str, Result], config: str) -> int | None:
    return run_setting(by_config(results)[config][0].run, "trainer.tbptt_steps")


def pairs_inside(window: int | None) -> float:
    """The fraction f of (symbol, answer) pairs that one window holds."""
    length, delay, _ = copy_setting()
    if window is None:
        return 1.0
    return sum(i // window == (i + length + delay) // window for i in range(length)) / length


def window_only(window: int | None) -> float:
    """Recall if exactly the pairs inside a window were learned and the rest guessed."""
    *_, alphabet = copy_setting()
    f = pairs_inside(window)
    return f + (1 - f) / alphabet


def table(results: Mapping[str, Result]) -> str:
    length, delay, _ = copy_setting()
    rows = []
    for config in by_config(results):
        window = window_of(results, config)
        rows.append(["full BPTT" if window is None else str(window),
                     1 if window is None else math.ceil((2 * length + delay) / window),
                     f"{pairs_inside(window):.2f}", f"{window_only(window):.3f}",
                     cell(results, config, "test/recall_accuracy", digits=3),
                     cell(results, config, "test/sequence_accuracy", digits=3),
                     cell(results, config, "train/steps", digits=0)])
    return markdown_table(["window k", "windows a sequence", "pairs inside a window", "window-only recall",
                           "test recall", "test sequences all right", "steps"], rows)


def mean_recall(results: Mapping[str, Result], config: str) -> float:
    return mean_std(values(results, config, "test/recall_accuracy"))[0]


def cut_verdict(results: Mapping[str, Result], cut: list[str], chance: float, full: float | None) -> str:
    """What the windows that hold no pair learned, against chance (and full BPTT's gain over it)."""
    recalls = {config: mean_recall(results, config) for config in cut}
    listing = ", ".join(f"k = {window_of(results, c)}: {r:.3f}" for c, r in recalls.items())
    text = f"Windows that hold no (symbol, answer) pair recall {listing}, against chance 1/A = {chance:.3f}"
    if max(recalls.values()) < chance + 0.05:
        return text + ": no better than guessing, the long-term memory is gone, as the lecture says."
    if full is not None and full > chance:
        kept = ", ".join(f"{(r - chance) / (full - chance):.0%}" for r in recalls.values())
        text += f", i.e. {kept} of full BPTT's gain over chance"
    return (text + ": above chance, so truncation does not kill all the memory here. The forward pass still "
            "carries the state across the cuts, so a read-out can learn to decode what the state keeps anyway; "
            "what truncation removes is the gradient that would train the net to keep it.")


def against_window_only(recall: float, expected: float) -> str:
    """'about', 'above' or 'below' what the pairs inside a window predict (0.05 either side: about)."""
    return "about" if abs(recall - expected) <= 0.05 else ("above" if recall > expected else "below")


def partial_verdict(results: Mapping[str, Result], partial: list[str]) -> str:
    if not partial:
        return ""
    listing = "; ".join(f"k = {window_of(results, c)}: {mean_recall(results, c):.3f}, "
                        f"{against_window_only(mean_recall(results, c), window_only(window_of(results, c)))} "
                        f"its window-only {window_only(window_of(results, c)):.3f}" for c in partial)
    return f" Windows that hold some of the pairs recall {listing}."


def conclusion(results: Mapping[str, Result]) -> str:
    length, delay, alphabet = copy_setting()
    configs = list(by_config(results))
    full = [c for c in configs if window_of(results, c) is None]
    cut = [c for c in configs if pairs_inside(window_of(results, c)) == 0]
    partial = [c for c in configs if c not in full and c not in cut]
    parts = [f"The lag between a symbol and its answer is L + D = {length + delay} steps."]
    recall = mean_recall(results, full[0]) if full else None
    if recall is not None:
        parts.append(f"Full BPTT recalls {recall:.3f} of the symbols"
                     + ("." if recall >= 0.5 else ": it did not learn the task in this budget either, so the "
                                                  "windows' scores below say nothing about truncation."))
    if cut:
        parts.append(cut_verdict(results, cut, 1 / alphabet, recall))
    return " ".join(parts) + partial_verdict(results, partial)


def figure(results: Mapping[str, Result], figures: Path) -> str:
    plt = pyplot()
    length, delay, alphabet = copy_setting()
    steps = 2 * length + delay
    fig, ax = plt.subplots(figsize=(6.5, 4))
    configs = list(by_config(results))
    xs = [window_of(results, c) or steps for c in configs]
    for x, config in zip(xs, configs):
        ax.scatter([x] * len(values(results, config, "test/recall_accuracy")),
                   values(results, config, "test/recall_accuracy"), color="black", s=10, zorder=3)
    ax.plot(xs, [mean_recall(results, c) for c in configs], "o-", label="test recall (mean over seeds)")
    grid = list(range(1, steps + 1))
    ax.step(grid, [window_only(k if k < steps else None) for k in grid], where="post", linestyle="--",
            label="window-only recall (pairs inside a window)")
    ax.axhline(1 / alphabet, color="grey", linestyle=":", label=f"chance 1/A = {1 / alphabet:.3f}")
    ax.axvline(delay, color="grey", linewidth=0.8)
    ax.text(delay, 0.93, " delay D", fontsize=8, color="grey")
    ax.axvline(length + delay, color="grey", linewidth=0.8)
    ax.text(length + delay, 0.86, " lag L + D", fontsize=8, color="grey")
    ax.set_xticks(xs, [str(x) if window_of(results, c) else "full" for x, c in zip(xs, configs)])
    ax.set(xlabel=f"truncated-BPTT window k (steps; full BPTT drawn at the sequence's {steps})",
           ylabel="recall accuracy", ylim=(0, 1.05), title=f"copy memory, L = {length}, D = {delay}: LSTM")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left")
    return save_figure(fig, figures, FIGURE)


def setup(results: Mapping[str, Result], quick: bool) -> str:
    length, delay, alphabet = copy_setting()
    sample = next(iter(results.values())).run
    hidden, budget = run_setting(sample, "model.hidden_size"), run_setting(sample, "trainer.max_steps")
    return (f"`rnnzoo train experiment={RECIPE} trainer.tbptt_steps=<k> trainer.accumulate=<windows>`: copy memory, "
            f"L = {length} symbols of A = {alphabet} recalled after a delay D = {delay} ({2 * length + delay} steps "
            f"a sequence, each symbol asked for {length + delay} steps after it is shown); an LSTM of {hidden} units, "
            f"Adam at 5e-3, at most {budget} optimizer steps{' (quick mode)' if quick else ''}, stopping at 99.5% "
            "validation recall. One optimizer step per batch whatever the window (`trainer.accumulate` = windows "
            "a sequence), so only the cuts in the gradient differ. Test recall of the best checkpoint; "
            "'window-only recall' is what a net would score that learned exactly the pairs a window holds "
            "and guessed the others.")


def report(results: Mapping[str, Result], figures: Path, quick: bool) -> Section:
    return Section(setup(results, quick), table(results), conclusion(results), [figure(results, figures)])


EXPERIMENT = Experiment(
    key="tbptt",
    title="Truncated BPTT against the memory it needs",
    claim="Truncated backprop through time can be one solution (to the gradient problems): it cuts the time span "
          "of influence, but kills the long-term memory (lecture, 'Problems of (past versions of) RNN').",
    published="Williams & Peng 1990: truncated BPTT(h) backpropagates only h steps into the past, so the network "
              "gets no error signal for dependencies longer than the truncation window.",
    runs=runs,
    report=report,
)
