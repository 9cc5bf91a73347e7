"""Experiment 5: bidirectional versus unidirectional tagging.

Schuster & Paliwal (1997), "Bidirectional recurrent neural networks": a second recurrence read
right to left gives every position the context after it as well as before it. Huang, Xu & Yu
(2015), "Bidirectional LSTM-CRF models for sequence tagging", measure it on CoNLL-2000 chunking
with random embeddings: LSTM 92.88 against BI-LSTM 93.64 F1 (as issue 8 quotes them).

Setup: the project's two tagging recipes, each with `model.bidirectional` true and false and
nothing else changed: `conll2000_bilstm` (chunking, chunk F1; LSTM 128 per direction, character
CNN, CRF, lr 4e-3) and `ud_ewt_bilstm` (UD English-EWT UPOS, token accuracy; the same without
the CRF, lr 2e-3). Both from random embeddings. A fixed number of steps (the recipes' 450 s
time budget replaced by `trainer.max_steps`, so a direction's speed does not change its
training), three seeds; the checkpoint with the best validation score is tested.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, NamedTuple

from .common import cell, over_seeds, seeds, values
from .real_data import Panel, bar_figure, lead, require_data
from .report import Experiment, Section, markdown_table, mean_std
from .runs import Result, Run


class Tagging(NamedTuple):
    """A tagging recipe and what it is scored on."""

    recipe: str
    dataset: str  # its folder of reference data
    key: str  # the test metric (a fraction)
    words: str
    published: tuple[float, float] | None = None  # (LSTM, BiLSTM)


TASKS = {
    "conll2000": Tagging("conll2000_bilstm", "conll2000", "test/f1", "chunk F1", (92.88, 93.64)),
    "ud_ewt": Tagging("ud_ewt_bilstm", "ud_english_ewt", "test/accuracy", "UPOS accuracy"),
}
DIRECTIONS = {"uni": "false", "bi": "true"}  # run-name part -> model.bidirectional
STEPS = 800  # about 3 epochs of CoNLL-2000, 2 of EWT: 1.5 to 2.5 minutes a run on one thread
QUICK_STEPS = 30
FIGURE = "bidirectional.png"


def budget(quick: bool) -> tuple[str, ...]:
    steps = QUICK_STEPS if quick else STEPS
    return ("trainer.max_time=null", f"trainer.max_steps={steps}", f"trainer.eval_every={min(steps, 200)}")


def runs(quick: bool) -> list[Run]:
    require_data(*(t.dataset for t in TASKS.values()))
    return [run for task, t in TASKS.items() for direction, flag in DIRECTIONS.items()
            for run in over_seeds(f"{task}_{direction}", (f"experiment={t.recipe}", f"model.bidirectional={flag}",
                                                           *budget(quick)), quick)]


def table(results: Mapping[str, Result]) -> str:
    rows = []
    for task, t in TASKS.items():
        for direction in DIRECTIONS:
            config = f"{task}_{direction}"
            rows.append([f"`{t.recipe}` {direction}directional", f"{t.words}: {cell(results, config, t.key, 100, 2)}",
                         cell(results, config, t.key.replace("test/", "val/"), 100, 2),
                         cell(results, config, "train/steps", digits=0),
                         cell(results, config, "train/seconds", digits=0),
                         "" if t.published is None else f"{t.published[direction == 'bi']:.2f} (Huang et al.)"])
    return markdown_table(["run", "test", "validation", "steps", "train seconds", "published"], rows)


def conclusion(results: Mapping[str, Result]) -> str:
    parts = []
    for task, t in TASKS.items():
        bi, uni = values(results, f"{task}_bi", t.key, 100), values(results, f"{task}_uni", t.key, 100)
        sign, phrase = lead("bidirectional", bi, "unidirectional", uni, t.words, 2)
        gap = mean_std(bi)[0] - mean_std(uni)[0]
        text = f"{task}: {phrase}."
        if t.published is not None:
            expected = t.published[1] - t.published[0]
            text += (f" Huang et al. found +{expected:.2f}; ours is {gap:+.2f}"
                     + (", the same direction." if sign > 0 else ", so here we disagree with them."))
        elif sign <= 0:
            text += " That contradicts the claim: the words after a token did not help here."
        parts.append(text)
    return (" ".join(parts) + " Our taggers add a character CNN (and on CoNLL a CRF), which Huang et al.'s LSTM "
            "rows lack, and train for a few epochs only, so absolute scores sit below theirs.")


def report(results: Mapping[str, Result], figures: Path, quick: bool) -> Section:
    setup = ("The recipes `conll2000_bilstm` (chunking: LSTM 128 per direction, character CNN, CRF, lr 4e-3) and "
             "`ud_ewt_bilstm` (UPOS: the same without the CRF, lr 2e-3), random embeddings, each run with "
             "`model.bidirectional=true` and `=false` and nothing else changed; "
             f"{QUICK_STEPS if quick else STEPS} steps (`trainer.max_steps` in place of the recipes' 450 s, so that "
             "a direction's speed does not buy it steps), seeds "
             f"{', '.join(map(str, seeds(quick)))}, one thread each. CoNLL-2000 has no dev set: validation is a "
             "seeded 10% of train. Test scores are those of the best validation checkpoint."
             + (" Quick mode: a smoke test of the pipeline, not the comparison." if quick else ""))
    panels = [Panel(f"{task}: {t.words}", "test (%)",
                    {d: values(results, f"{task}_{d}", t.key, 100) for d in DIRECTIONS},
                    {} if t.published is None else dict(zip(("Huang et al. LSTM", "Huang et al. BiLSTM"), t.published)))
              for task, t in TASKS.items()]
    return Section(setup, table(results), conclusion(results), [bar_figure(panels, figures, FIGURE)])


EXPERIMENT = Experiment(
    key="bidirectional",
    title="Bidirectional versus unidirectional tagging",
    claim="A tag depends on the words after a token as well as before it, so a tagger that reads the sentence "
          "both ways (Schuster & Paliwal 1997) beats one that reads it left to right.",
    published="Huang et al. 2015, CoNLL-2000 chunking, random embeddings: LSTM 92.88, BI-LSTM 93.64 F1 (+0.76). "
              "No unidirectional figure for UD English-EWT (the recipe cites Plank et al. 2016: about 95% UPOS with a "
              "BiLSTM and character features).",
    runs=runs,
    report=report,
)
