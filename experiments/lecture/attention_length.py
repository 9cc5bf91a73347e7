"""Experiment 6: attention versus a fixed context vector, by source length.

Bahdanau, Cho & Bengio (2015), "Neural machine translation by jointly learning to align and
translate", figure 2: the encoder-decoder that squeezes the source into one vector
(RNNencdec, Cho et al. 2014) loses BLEU as sentences grow, while attention (RNNsearch), which
re-reads the source at every output step, holds up to 50 words and more.

Setup: three pairs of the project's recipes, a fixed context (Cho et al.'s `seq2seq`) against
attention (`bahdanau`), each pair trained alike and then scored by source length with
scripts/length_experiment.py, a script run after the training runs:

* dates (`dates_seq2seq`, `dates_bahdanau`): 6 to 29 characters to ISO 8601; exact match on
  fresh test-side dates of each length; three seeds.
* reversal (`reversal_seq2seq`, `reversal_bahdanau`): 5 to 40 symbols reversed; exact match on
  fresh sequences of each length, up to 50 (longer than any training sequence); three seeds.
* Multi30k de->en (`multi30k_cho`, `multi30k_bahdanau`): BLEU of the test split bucketed by
  the number of source words; one seed, 10 minutes each; the runs are shared with equal_time.

Generated sets train for a fixed number of steps (`trainer.max_steps`); dates stop earlier at
100% validation exact match (the recipe's target).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from rnnzoo.plotting import pyplot

from .common import cell, config_of, over_seeds, save_figure, seeds, values
from .real_data import lead, multi30k_budget, multi30k_name, multi30k_run, require_data
from .report import Experiment, Section, markdown_table, mean_std, spread
from .runs import Result, Run

SCRIPT = "scripts/length_experiment.py"
FIGURE = "attention_length.png"
MIN_SENTENCES = 20  # Multi30k buckets with fewer test sentences are shown but not used in the verdict
ALIKE = 5.0  # percentage points of retention within which the two models count as alike
FLOOR = 5.0  # below this score at the shortest length neither model learned enough to lose any


@dataclass(frozen=True)
class Setting:
    """One data set: its two recipes (fixed context, attention), budgets and length sweep."""

    key: str
    title: str
    fixed: str  # recipe names
    attention: str
    test_key: str
    noun: str  # the score in words: "exact match" (a percentage) or "BLEU"
    steps: int | None  # trainer.max_steps of generated sets (None: the shared Multi30k runs)
    lengths: tuple[int, ...] = ()  # lengths swept on generated sets (full mode)

    def configs(self) -> tuple[str, str]:
        """The run configurations (fixed, attention): run names without the seed suffix."""
        if self.steps is None:
            return multi30k_name("cho"), multi30k_name("bahdanau")
        return f"{self.key}_fixed", f"{self.key}_attention"


SETTINGS = (
    Setting("dates", "Date normalization (exact match %, by source length in characters)", "dates_seq2seq",
            "dates_bahdanau", "test/exact", "exact match", 1000, (8, 12, 16, 20, 24, 28)),
    Setting("reversal", "Reversal (exact match %, by source length in symbols; trained on 5-40)", "reversal_seq2seq",
            "reversal_bahdanau", "test/exact", "exact match", 500, (5, 10, 15, 20, 25, 30, 35, 40, 45, 50)),
    Setting("multi30k", "Multi30k de-en (test BLEU, by source length in words)", "multi30k_cho", "multi30k_bahdanau",
            "test/bleu", "BLEU", None),
)
QUICK_STEPS, QUICK_SIZE, FULL_SIZE = 30, 20, 200
NAMES = {"fixed": "fixed context (Cho)", "attention": "attention (Bahdanau)"}


def training_runs(setting: Setting, quick: bool) -> list[Run]:
    if setting.steps is None:
        return [multi30k_run("cho", quick), multi30k_run("bahdanau", quick)]
    steps = QUICK_STEPS if quick else setting.steps
    budget = ("trainer.max_time=null", f"trainer.max_steps={steps}", f"trainer.eval_every={min(steps, 250)}")
    return [run for config, recipe in zip(setting.configs(), (setting.fixed, setting.attention))
            for run in over_seeds(config, (f"experiment={recipe}", *budget), quick)]


def length_run(setting: Setting, trained: list[Run], quick: bool) -> Run:
    """scripts/length_experiment.py over every checkpoint of the setting, labelled by run name."""
    args = [arg for run in trained for arg in ("--run", f"{run.name}={{run:{run.name}}}/checkpoints/best.pt")]
    if setting.lengths:
        lengths = setting.lengths[:2] if quick else setting.lengths
        args += ["--lengths", *map(str, lengths), "--size", str(QUICK_SIZE if quick else FULL_SIZE)]
    args += ["--out", "{folder}/by_length.png", "--metrics-json", "{folder}/metrics.json"]
    return Run(f"{setting.key}_by_length", tuple(args), script=SCRIPT, after=tuple(r.name for r in trained))


def runs(quick: bool) -> list[Run]:
    require_data("multi30k")
    found = []
    for setting in SETTINGS:
        trained = training_runs(setting, quick)
        found += [*trained, length_run(setting, trained, quick)]
    return found


# --- the report ---------------------------------------------------------------------------
def by_length(results: Mapping[str, Result], setting: Setting) -> dict[str, dict[str, list[float]]]:
    """{config: {length: [score per seed]}} from the setting's length run."""
    scores: dict[str, dict[str, list[float]]] = {}
    for label, row in results[f"{setting.key}_by_length"].metrics["scores"].items():
        for length, value in row.items():
            scores.setdefault(config_of(label), {}).setdefault(length, []).append(float(value))
    return scores


def usable_lengths(results: Mapping[str, Result], setting: Setting) -> list[str]:
    """The lengths a verdict may compare: all of them, less Multi30k buckets of few sentences."""
    metrics = results[f"{setting.key}_by_length"].metrics
    sizes = next(iter(metrics.get("sizes", {}).values()), {})
    lengths = list(next(iter(metrics["scores"].values())))
    return [length for length in lengths if sizes.get(length, MIN_SENTENCES) >= MIN_SENTENCES]


def table(results: Mapping[str, Result], setting: Setting) -> str:
    scores = by_length(results, setting)
    lengths = list(next(iter(scores.values())))
    rows = [[f"{NAMES[role]}, `{recipe}`", cell(results, config, setting.test_key),
             cell(results, config, "train/steps", digits=0),
             *(spread(scores[config][length]) for length in lengths)]
            for role, config, recipe in zip(NAMES, setting.configs(), (setting.fixed, setting.attention))]
    return f"{setting.title}:\n\n" + markdown_table(["model", "test (all)", "steps", *lengths], rows)


def retention(scores: Mapping[str, list[float]], first: str, last: str) -> tuple[float, float, float]:
    """(mean score at `first`, at `last`, the share kept in percent; 0 when nothing was there to keep)."""
    short, long = mean_std(scores[first])[0], mean_std(scores[last])[0]
    return short, long, 100 * long / short if short > 0 else 0.0


def verdict(results: Mapping[str, Result], setting: Setting) -> tuple[int, str]:
    """+1 attention holds up better over length, 0 alike, -1 the fixed context does; and the sentence."""
    scores, lengths = by_length(results, setting), usable_lengths(results, setting)
    first, last = lengths[0], lengths[-1]
    fixed, attention = (retention(scores[c], first, last) for c in setting.configs())
    text = (f"{setting.key}, from length {first} to {last}: the fixed context keeps {fixed[2]:.0f}% of its "
            f"{setting.noun} ({fixed[0]:.1f} -> {fixed[1]:.1f}), attention {attention[2]:.0f}% "
            f"({attention[0]:.1f} -> {attention[1]:.1f}); ")
    if max(fixed[0], attention[0]) < FLOOR:
        sign = 0
        text += f"both score under {FLOOR:.0f} at the shortest length: too little learned to measure a fall."
    else:
        sign = 0 if abs(attention[2] - fixed[2]) <= ALIKE else (1 if attention[2] > fixed[2] else -1)
        text += {1: "attention holds up better, as in the paper's figure 2.",
                 0: f"alike (within {ALIKE:.0f} points): here length does not strain one vector.",
                 -1: "the fixed context holds up better: here we disagree with the paper."}[sign]
    fixed_config, attention_config = setting.configs()
    overall = lead("attention", values(results, attention_config, setting.test_key), "the fixed context",
                   values(results, fixed_config, setting.test_key), f"{setting.noun} points")[1]
    return sign, text + f" Over the whole test set {overall}."


def conclusion(results: Mapping[str, Result]) -> str:
    verdicts = [verdict(results, setting) for setting in SETTINGS]
    agree = [s.key for s, (sign, _) in zip(SETTINGS, verdicts) if sign > 0]
    summary = (f"Attention holds up better with length on {', '.join(agree) if agree else 'none of the sets'} "
               f"({len(agree)} of {len(SETTINGS)}).")
    note = (" Multi30k captions are short (few test sentences past 20 words; buckets under "
            f"{MIN_SENTENCES} sentences are left out of the verdict), far from the paper's 50-word sentences.")
    return " ".join([summary, *(text for _, text in verdicts)]) + note


def figure(results: Mapping[str, Result], figures: Path) -> str:
    """One panel per set: mean score by length for each model, the seed spread shaded."""
    fig, axes = pyplot().subplots(1, len(SETTINGS), figsize=(4.4 * len(SETTINGS), 3.4))
    for ax, setting in zip(axes, SETTINGS):
        scores = by_length(results, setting)
        for role, config in zip(NAMES, setting.configs()):
            lengths = list(scores[config])
            stats = [mean_std(scores[config][length]) for length in lengths]
            ax.plot(range(len(lengths)), [m for m, _ in stats], marker="o", label=NAMES[role])
            ax.fill_between(range(len(lengths)), [m - s for m, s in stats], [m + s for m, s in stats], alpha=0.2)
            ax.set_xticks(range(len(lengths)), lengths, fontsize=7)
        ax.set_title(setting.key, fontsize=9)
        ax.set_xlabel("source length")
        ax.set_ylabel(setting.noun + (" (%)" if setting.noun == "exact match" else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, figures, FIGURE)


def report(results: Mapping[str, Result], figures: Path, quick: bool) -> Section:
    generated = ", ".join(f"{s.key} {QUICK_STEPS if quick else s.steps} steps" for s in SETTINGS if s.steps)
    setup = ("Pairs of recipes, a fixed context (`seq2seq`, Cho et al. 2014) against attention (`bahdanau`), "
             f"the two of a pair trained alike: {generated} (`trainer.max_steps`; dates stop early at 100% validation "
             f"exact match), seeds {', '.join(map(str, seeds(quick)))}; Multi30k (`multi30k_cho`, "
             f"`multi30k_bahdanau`): {multi30k_budget(quick)}, one seed. Then `python {SCRIPT}` scores every "
             f"checkpoint by source length: {QUICK_SIZE if quick else FULL_SIZE} fresh pairs of each length for the "
             "generated sets (greedy decoding, exact match), the Multi30k test split bucketed by source words (BLEU). "
             "A cell is the mean ± sample std over seeds.")
    if quick:
        setup += " Quick mode: a smoke test of the pipeline, not the comparison."
    tables = "\n\n".join(table(results, setting) for setting in SETTINGS)
    return Section(setup, tables, conclusion(results), [figure(results, figures)])


EXPERIMENT = Experiment(
    key="attention_length",
    title="Attention versus a fixed context vector, by source length",
    claim="One fixed-length vector must hold the whole source, so an encoder-decoder without attention degrades "
          "on long inputs, where attention, which re-reads the source at every step, holds up "
          "(Bahdanau et al. 2015, figure 2).",
    published="Bahdanau et al. 2015 (WMT'14 en-fr): RNNencdec-50 17.82 against RNNsearch-50 26.75 BLEU on all test "
              "sentences (table 1); in figure 2 RNNencdec's BLEU falls as sentences grow past about 20 words while "
              "RNNsearch-50's does not, even past 50.",
    runs=runs,
    report=report,
)
