"""Experiment 1: vanishing gradients, the lecture's "problems of RNNs".

Hochreiter (1991) and Bengio, Simard & Frasconi (1994): in a recurrent net the gradient that a
loss read at step T sends back to the state at step t is a product of T - t Jacobians,

    dL/dh(t) = dL/dh(T) · ∏_{s=t+1..T} ∂h(s)/∂h(s-1),   ∂h(s)/∂h(s-1) = diag(f'(a(s))) W   (Elman),

so its norm shrinks (or grows) geometrically in T - t whenever the Jacobians' norms stay below
(above) one, and the net cannot learn a dependence over a long lag. Jordan's net (1986) feeds
back its outputs through s(t) = μ s(t-1) + y(t-1) and has the same product. The LSTM
(Hochreiter & Schmidhuber 1997) adds the cell path c(t) = f ⊙ c(t-1) + i ⊙ g, whose Jacobian is
the forget gate f, and the GRU (Cho et al. 2014) the update gate's h(t) = (1 - z) ⊙ h(t-1) + z ⊙ ĥ:
gates near one let the gradient through.

Setup (recipe `lecture_gradients`): the adding problem over T = 100 steps, whose loss is read at
the last step only, so every gradient reaching h(t < T) has come through the recurrence; 64
hidden units, Adam at 5e-3, 400 optimizer steps. The gradient diagnostic
(`trainer.grad_probe_every`, rnnzoo.training.diagnostics) records ||dL/dh(t)|| for t = 1..T on a
fixed validation batch every 20 steps. Summary per run and probe:

    r = log10( ||dL/dh(1)|| / ||dL/dh(T)|| ),

the orders of magnitude the gradient loses over the T - 1 steps back to the start (a norm that
underflows float32 to 0 makes r an upper bound, shown '≤'). Three seeds per model.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np

from rnnzoo.plotting import pyplot

from .common import by_config, cell, over_seeds, read_jsonl, run_setting, save_figure, values
from .report import Experiment, Section, markdown_table, mean_std, spread
from .runs import Result, Run

RECIPE = "lecture_gradients"
MODELS = {"elman": "Elman", "jordan": "Jordan", "lstm": "LSTM", "gru": "GRU"}
GATED = ("lstm", "gru")
#: quick mode: a few steps on 20-step sequences, to exercise the pipeline only
QUICK = ("task.length=20", "trainer.max_steps=10", "trainer.grad_probe_every=5", "trainer.eval_every=10",
         "model.hidden_size=16", "task.batch_size=16", "task.eval_examples=64")
FIGURE = "gradients.png"


class Probe(NamedTuple):
    step: int
    norms: list[float]  # ||dL/dh(t)|| for t = 1..T


class Ratio(NamedTuple):
    value: float  # log10 ||dL/dh(1)|| / ||dL/dh(T)||
    bound: bool  # ||dL/dh(1)|| underflowed to 0: value is an upper bound


def runs(quick: bool) -> list[Run]:
    extra = QUICK if quick else ()
    return [run for model in MODELS for run in over_seeds(model, (f"experiment={RECIPE}", f"model={model}", *extra),
                                                          quick)]


def probes(result: Result) -> list[Probe]:
    return read_probes(result.folder / "grad_probe.jsonl")


@functools.lru_cache(maxsize=256)
def read_probes(path: Path) -> list[Probe]:
    """A run's probes (read once: the table, the conclusion and the figure all ask for them)."""
    return [Probe(record["step"], record["norms"]) for record in read_jsonl(path)]


def log_ratio(norms: list[float]) -> Ratio:
    """r for one probe; if ||dL/dh(1)|| is 0 (float32 underflow), the smallest norm that is not."""
    positive = [n for n in norms if n > 0]
    if not positive or norms[-1] <= 0:
        return Ratio(math.nan, False)
    first = norms[0] if norms[0] > 0 else min(positive)
    return Ratio(math.log10(first / norms[-1]), norms[0] <= 0)


def ratios(group: list[Result], index: int) -> list[Ratio]:
    """r at probe `index` (0: the first, -1: the last) of every seed."""
    return [log_ratio(probes(result)[index].norms) for result in group]


def ratio_cell(found: list[Ratio]) -> str:
    return ("≤ " if any(r.bound for r in found) else "") + spread([r.value for r in found], 1)


def probe_steps(results: Mapping[str, Result]) -> tuple[int, int, int]:
    """(T, first probed step, last probed step), from any run."""
    sample = probes(next(iter(results.values())))
    return len(sample[0].norms), sample[0].step, sample[-1].step


def table(results: Mapping[str, Result]) -> str:
    groups = by_config(results)
    _, first, last = probe_steps(results)
    rows = [[MODELS[model], ratio_cell(ratios(groups[model], 0)), ratio_cell(ratios(groups[model], -1)),
             cell(results, model, "test/mse", digits=3), cell(results, model, "test/baseline_ratio", digits=1)]
            for model in MODELS]
    return markdown_table(["model", f"r at step {first}", f"r at step {last}", "test MSE",
                           "baseline MSE / ours"], rows)


def orders_lost(results: Mapping[str, Result], index: int) -> dict[str, tuple[float, float, bool]]:
    """Per model at probe `index`: orders of magnitude lost (-r), mean and std over seeds, and
    whether it is a bound (some seed underflowed)."""
    lost = {}
    for model, group in by_config(results).items():
        found = ratios(group, index)
        mean, std = mean_std([-r.value for r in found])
        lost[model] = (mean, std, any(r.bound for r in found))
    return lost


def gated_comparison(lost: dict[str, tuple[float, float, bool]]) -> str:
    """Whether the worst gated net loses fewer orders than the best plain one, against the seed spread."""
    gated = max(GATED, key=lambda m: lost[m][0])
    plain = min((m for m in MODELS if m not in GATED), key=lambda m: lost[m][0])
    gap, noise = lost[plain][0] - lost[gated][0], max(lost[plain][1], lost[gated][1])
    if gap <= 0:
        return f"{MODELS[gated]} loses as many as {MODELS[plain]} or more: here gating does not keep the gradient"
    if gap <= noise:
        return (f"the gated nets lose fewer, but {MODELS[gated]} beats {MODELS[plain]} by {gap:.1f} only, "
                f"within the seed spread of ±{noise:.1f}")
    return f"both gated nets lose fewer than both plain ones, by {gap:.1f} at least, beyond the seed spread"


def verdict(results: Mapping[str, Result], index: int, step: int) -> str:
    """The orders each model loses at one probe, most first, and what gating did."""
    lost = orders_lost(results, index)
    listing = ", ".join(f"{MODELS[m]} {'≥ ' if lost[m][2] else ''}{lost[m][0]:.1f}"
                        for m in sorted(lost, key=lambda m: lost[m][0], reverse=True))
    return (f"at step {step} the orders of magnitude lost from h(T) back to h(1) are {listing} "
            f"({gated_comparison(lost)})")


def learned(results: Mapping[str, Result]) -> str:
    """Which models beat the adding problem's baseline clearly (MSE under a tenth of 1/6), and
    how their r moved from the first probe to the last."""
    ratio = {m: mean_std(values(results, m, "test/baseline_ratio"))[0] for m in MODELS}
    winners = [m for m in MODELS if ratio[m] > 10]
    losers = [MODELS[m] for m in MODELS if ratio[m] <= 10]
    if not winners:
        return "No model learned the task in this budget (test MSE within a factor 10 of the 1/6 baseline)."
    early, late = orders_lost(results, 0), orders_lost(results, -1)
    moves = ", ".join(f"{MODELS[m]}'s from {-early[m][0]:.1f} to {-late[m][0]:.1f}" for m in winners)
    return (f"{words([MODELS[m] for m in winners])} learned the task (test MSE under a tenth of the 1/6 baseline), "
            f"and r rose as it did ({moves}): a net that carries the first marked number to the end passes the "
            "gradient back along the same path" + (f"; {words(losers)} did not learn it in this budget." if losers
                                                    else "."))


def words(names: list[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def conclusion(results: Mapping[str, Result]) -> str:
    T, first, last = probe_steps(results)
    early = orders_lost(results, 0)
    vanish = [MODELS[m] for m in MODELS if early[m][0] >= 3]
    verb = "loses" if len(vanish) == 1 else "lose"
    head = (f"Over T = {T} steps, early in training, {words(vanish) or 'no model'} {verb} three orders of magnitude "
            "or more" + (", as Hochreiter and Bengio et al. predict: the gradient vanishes." if vanish
                         else "; the predicted vanishing is not seen here."))
    bounded = any(bound for i in (0, -1) for *_, bound in orders_lost(results, i).values())
    note = (" A '≤' (or '≥') marks a norm that underflowed float32 to 0: the true loss is larger still."
            if bounded else "")
    return f"{head} In detail, {verdict(results, 0, first)}; {verdict(results, -1, last)}. {learned(results)}{note}"


def mean_log_norms(group: list[Result], index: int) -> np.ndarray:
    """log10 ||dL/dh(t)|| at probe `index`, averaged over seeds; NaN (not drawn) where a seed's
    norm underflowed to 0."""
    norms = np.array([probes(r)[index].norms for r in group], dtype=float)  # (seeds, T)
    return np.log10(np.where(norms > 0, norms, np.nan)).mean(axis=0)


def figure(results: Mapping[str, Result], figures: Path) -> str:
    plt = pyplot()
    groups = by_config(results)
    T, first, last = probe_steps(results)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for colour, model in enumerate(MODELS):
        for index, style, step in [(0, ":", first), (-1, "-", last)]:
            left.plot(range(1, T + 1), mean_log_norms(groups[model], index), style, color=f"C{colour}",
                      label=f"{MODELS[model]}, step {step}")
        steps = [p.step for p in probes(groups[model][0])]
        found = [ratios(groups[model], i) for i in range(len(steps))]
        curve = [mean_std([r.value for r in f])[0] for f in found]
        right.plot(steps, curve, color=f"C{colour}", label=MODELS[model])
        for step, value, f in zip(steps, curve, found):  # hollow: a bound, some seed underflowed
            right.plot(step, value, "o", markersize=4, color=f"C{colour}",
                       markerfacecolor="white" if any(r.bound for r in f) else f"C{colour}")
    left.set(xlabel="time step t (loss read at t = T)", ylabel="log10 ||dL/dh(t)|| (mean over seeds)",
             title="gradient reaching each step (cut where a seed underflows)")
    right.set(xlabel="training step", ylabel="r = log10 ||dL/dh(1)|| / ||dL/dh(T)||",
              title="orders of magnitude kept over T (hollow: an upper bound)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, figures, FIGURE)


def setup(results: Mapping[str, Result], quick: bool) -> str:
    T, first, last = probe_steps(results)
    hidden = run_setting(next(iter(results.values())).run, "model.hidden_size")
    return (f"`rnnzoo train experiment={RECIPE} model=<elman|jordan|lstm|gru>`: the adding problem over T = {T} "
            f"steps, loss read at the last step only, {hidden} hidden units, Adam at 5e-3, {last} optimizer "
            f"steps{' (quick mode)' if quick else ''}. The gradient diagnostic (`trainer.grad_probe_every`) "
            f"records ||dL/dh(t)|| on a fixed validation batch of 256 sequences every {first} steps; "
            "r = log10 ||dL/dh(1)|| / ||dL/dh(T)|| is the number of orders of magnitude the gradient gains "
            "(negative: loses) on its way back to the first step. Test MSE of the best checkpoint beside it "
            "(a model that ignores its input scores 1/6).")


def report(results: Mapping[str, Result], figures: Path, quick: bool) -> Section:
    return Section(setup(results, quick), table(results), conclusion(results), [figure(results, figures)])


EXPERIMENT = Experiment(
    key="gradients",
    title="Vanishing gradients: ||dL/dh(t)|| against t",
    claim="Long-range dependencies make the gradient vanish (or explode) in a plain recurrent net: the "
          "gradient a loss sends back to step t shrinks geometrically with the distance; gated architectures "
          "(LSTM, GRU) were the rebirth of RNNs (lecture, 'Problems of (past versions of) RNN').",
    published="Hochreiter 1991 and Bengio, Simard & Frasconi 1994: the error signal flowing back over q steps is "
              "scaled by a product of q Jacobians and decays exponentially in q when their norms are below one; "
              "the LSTM's constant error carousel (Hochreiter & Schmidhuber 1997) keeps it.",
    runs=runs,
    report=report,
)
