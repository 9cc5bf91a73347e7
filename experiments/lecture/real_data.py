"""What the experiments on real data share (bidirectional, attention_length, equal_time).

Seeds, run names (`<config>_s<seed>`) and metrics over seeds are experiments.lecture.common's.

* Data: they train the project's recipes on the reference copies (../shared/data, or
  $RNNZOO_DATA_DIR; rnnzoo.data.sources). Quick mode reads the same files with tiny budgets,
  so it needs them too: `require_data` raises an RnnzooError naming each missing folder before
  anything trains, rather than a run failing halfway through an experiment.
* Multi30k: the runs attention_length and equal_time both list (group "multi30k", one
  definition here, so their names and arguments are the same and each is trained once).
* Reports: `lead` says which of two configurations is ahead and whether by more than the
  seed spread; `bar_figure` draws panels of bars (mean, with the spread) beside published marks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from rnnzoo.data.sources import default_root
from rnnzoo.errors import RnnzooError
from rnnzoo.plotting import pyplot

from .common import save_figure
from .report import mean_std
from .runs import Run

MULTI30K_GROUP = "multi30k"
MULTI30K_SECONDS = 600  # full mode: 10 minutes each (the recipes' 50 would not fit the reproduction)
#: quick mode: a few steps of tiny models, one short validation; BPE still learned on all of train
MULTI30K_QUICK = ("trainer.max_time=null", "trainer.max_steps=20", "trainer.eval_every=20", "trainer.log_every=10",
                  "task.vocab_size=1000", "task.eval_sentences=64")
RECURRENT_QUICK = ("model.embedding_dim=32", "model.hidden_size=32", "model.maxout_size=32")
MULTI30K_QUICK_SIZES = {"transformer": ("model.d_model=32", "model.d_ff=64", "model.num_layers=1", "model.num_heads=2"),
                        "bahdanau": (*RECURRENT_QUICK, "model.attention_size=32"), "cho": RECURRENT_QUICK}


def require_data(*names: str) -> None:
    """Every dataset folder `names` reads is there, or an RnnzooError naming the missing ones."""
    missing = [default_root(name) for name in names if not default_root(name).is_dir()]
    if missing:
        raise RnnzooError(f"these runs read real data, and {', '.join(map(str, missing))} "
                          f"{'is' if len(missing) == 1 else 'are'} absent: put the reference copies in "
                          "../shared/data beside the checkout, or set RNNZOO_DATA_DIR to a folder holding them")


def multi30k_name(model: str) -> str:
    """The shared Multi30k run of recipe `multi30k_<model>` is named after the recipe."""
    return f"multi30k_{model}"


def multi30k_run(model: str, quick: bool) -> Run:
    """The Multi30k run of recipe `multi30k_<model>` (bahdanau, cho, transformer), shared by the
    experiments that list it: same name, same arguments, one folder (group "multi30k")."""
    if quick:
        budget = (*MULTI30K_QUICK, *MULTI30K_QUICK_SIZES[model])
    else:
        budget = ("trainer.max_steps=null", f"trainer.max_time={MULTI30K_SECONDS}")
    return Run(multi30k_name(model), (f"experiment=multi30k_{model}", *budget), group=MULTI30K_GROUP)


def multi30k_budget(quick: bool) -> str:
    """The Multi30k budget in words, for the setups."""
    return ("20 steps of 32-wide models (quick mode)" if quick
            else f"{MULTI30K_SECONDS // 60} minutes of training each (the recipes' 50 cut to fit the reproduction, "
                 "so BLEU stays below docs/results_translation.md's)")


def beyond_spread(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether the means of a and b differ by more than the larger seed spread (False with one seed each)."""
    if len(a) < 2 and len(b) < 2:
        return False
    return abs(mean_std(a)[0] - mean_std(b)[0]) > max(mean_std(a)[1], mean_std(b)[1])


def lead(name_a: str, a: Sequence[float], name_b: str, b: Sequence[float], unit: str, digits: int = 1,
         lower_is_better: bool = False) -> tuple[int, str]:
    """Which of two configurations is ahead, and by how much against the seed spread.

    Returns (+1: a ahead, -1: b ahead, 0: a tie at `digits`) and a phrase such as
    'bidirectional is ahead by 1.2 F1 (seed spread ±0.3: beyond it)'."""
    difference = mean_std(a)[0] - mean_std(b)[0]
    if lower_is_better:
        difference = -difference
    if round(difference, digits) == 0:
        return 0, f"{name_a} and {name_b} tie ({mean_std(a)[0]:.{digits}f} {unit})"
    sign = 1 if difference > 0 else -1
    winner = name_a if sign > 0 else name_b
    noise = max(mean_std(a)[1], mean_std(b)[1])
    phrase = f"{winner} is ahead by {abs(difference):.{digits}f} {unit}"
    if len(a) > 1 or len(b) > 1:
        phrase += f" (seed spread ±{noise:.{digits}f}: {'beyond' if beyond_spread(a, b) else 'within'} it)"
    else:
        phrase += " (one seed: no spread to weigh it against)"
    return sign, phrase


@dataclass
class Panel:
    """One panel of `bar_figure`: bars over seeds, and published values drawn as lines."""

    title: str
    ylabel: str
    bars: dict[str, list[float]]
    published: dict[str, float] = field(default_factory=dict)


def bar_figure(panels: Sequence[Panel], figures: Path, name: str) -> str:
    """Panels side by side, saved as figures/name (returned); each bar is the mean over seeds with
    the sample std as its error bar (dots: the seeds), each published value a grey line labelled with its source."""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        labels = list(panel.bars)
        stats = [mean_std(panel.bars[label]) for label in labels]
        ax.bar(range(len(labels)), [m for m, _ in stats], yerr=[s for _, s in stats], capsize=4,
               color=[f"C{i}" for i in range(len(labels))])
        for i, label in enumerate(labels):
            ax.scatter([i] * len(panel.bars[label]), panel.bars[label], color="black", s=8, zorder=3)
        for style, (source, value) in zip(("--", ":", "-."), panel.published.items()):
            ax.axhline(value, linestyle=style, color="0.3", label=source)
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_title(panel.title, fontsize=9)
        ax.set_ylabel(panel.ylabel)
        low = min([m - s for m, s in stats] + list(panel.published.values()))
        high = max([m + s for m, s in stats] + list(panel.published.values()))
        ax.set_ylim(max(0.0, low - 0.15 * (high - low + 1e-9)), high + 0.15 * (high - low + 1e-9))
        if panel.published:
            ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    return save_figure(figure, figures, name)
