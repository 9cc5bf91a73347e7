"""Experiment 4: the storage capacity of Hopfield networks, classic and modern.

Classic network (Hopfield 1982): N units s_i = ±1, P patterns ξ^μ stored by the Hebbian rule
W = (1/N) Σ_μ ξ^μ ξ^μᵀ (no self-connections), recall by s_i ← sign(Σ_j W_ij s_j) until a fixed
point. Two marks of the theory, as loads α = P/N:

* α = 1/(2 ln N): below it every stored pattern is recalled without a wrong unit, with
  probability tending to one (McEliece, Posner, Rodemich & Venkatesh 1987); 0.094 at N = 200;
* α_c ≈ 0.138: above it the retrieval states vanish, and a probe near a pattern no longer stays
  near it (Amit, Gutfreund & Sompolinsky 1985; N → ∞).

Beside it the classic network with the Storkey rule (Storkey 1997), and the modern Hopfield
network (Ramsauer et al. 2020), s ← X softmax(β Xᵀ s) for the patterns X (N x P), whose
capacity grows exponentially in N, at β = 0.5/√N, 1/√N and 1.

Setup: scripts/capacity_sweep.py, one script run per seed (`--seeds 1 --first-seed <seed>`),
N = 200, 500 probes per load and seed, each a stored pattern with 10% of its units flipped
(overlap m = 0.8 at the start), at most 20 sweeps (classic) or updates (modern). It writes
each network's exact recall (fraction of probes recalled with every unit right) and mean
overlap m = ξ·sign(s)/N at every load into the run's metrics.json. Summaries over seeds:
'error-free up to' is the largest load before the first whose mean exact recall falls below
0.99; 'retrieval up to' is the load where the mean overlap falls through 0.9 (linear between
the two loads around it).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Mapping

from scripts import capacity_sweep

from .common import by_config, over_seeds
from .report import Experiment, Section, markdown_table, mean_std, spread
from .runs import Result, Run

SCRIPT = "scripts/capacity_sweep.py"
HEBBIAN, STORKEY = "classic, Hebbian", "classic, Storkey"  # the script's labels of the classic networks
EXACT, RETRIEVED = 0.99, 0.9  # error-free: mean exact recall at least this; retrieval: mean overlap at least this
FULL = ("--units", "200", "--probes", "500")
QUICK = ("--units", "50", "--probes", "20", "--steps", "5")
FIGURE = "hopfield.png"

#: network -> load -> the seeds' scores, each {"exact_recall": x, "mean_overlap": m}
Scores = dict[str, dict[float, list[dict[str, float]]]]


def runs(quick: bool) -> list[Run]:
    return [Run(run.name, (*run.args, "--first-seed", str(run.seed)), seed=run.seed, script=SCRIPT)
            for run in over_seeds("sweep", ("--seeds", "1", "--out-dir", "{folder}", "--metrics",
                                            "{folder}/metrics.json", *(QUICK if quick else FULL)), quick)]


def scores(results: Mapping[str, Result]) -> Scores:
    """Every run's scores merged: one entry per seed at each network and load."""
    merged: Scores = {}
    for result in by_config(results)["sweep"]:
        for label, points in result.metrics["networks"].items():
            for point in points:
                pairs = zip(point["exact_recall"], point["mean_overlap"])
                merged.setdefault(label, {}).setdefault(point["load"], []).extend(
                    {"exact_recall": x, "mean_overlap": m} for x, m in pairs)
    return merged


def setting(results: Mapping[str, Result]) -> dict:
    """The sweep's setting (units, probes, flip, steps, the theory's loads) from any run."""
    return next(iter(results.values())).metrics


def curve(by_load: dict[float, list[dict[str, float]]], key: str) -> list[tuple[float, float]]:
    """(load, mean over seeds) by increasing load."""
    return [(load, mean_std([s[key] for s in by_load[load]])[0]) for load in sorted(by_load)]


def error_free(by_load: dict[float, list[dict[str, float]]]) -> tuple[float | None, float | None]:
    """(the largest load recalled error-free before the first that is not, that first load);
    (None, smallest load) when even that fails, (largest load, None) when none does."""
    last = None
    for load, exact in curve(by_load, "exact_recall"):
        if exact < EXACT:
            return last, load
        last = load
    return last, None


def crossing(by_load: dict[float, list[dict[str, float]]]) -> float | None:
    """The load where the mean overlap falls through RETRIEVED, linear between the loads around
    it; None when it does not (above RETRIEVED everywhere, or below it from the start)."""
    points = curve(by_load, "mean_overlap")
    for (a, ma), (b, mb) in zip(points, points[1:]):
        if ma >= RETRIEVED > mb:
            return a + (b - a) * (ma - RETRIEVED) / (ma - mb)
    return None


def error_free_text(by_load: dict[float, list[dict[str, float]]]) -> str:
    ok, fail = error_free(by_load)
    if ok is None:
        return f"< {min(by_load):g}"
    return f"≥ {ok:g} (every load measured)" if fail is None else f"{ok:g}"


def retrieval_text(by_load: dict[float, list[dict[str, float]]]) -> str:
    load = crossing(by_load)
    if load is not None:
        return f"{load:.3g}"
    return f"< {min(by_load):g}" if curve(by_load, "mean_overlap")[0][1] < RETRIEVED else f"≥ {max(by_load):g}"


def summary_table(data: Scores, marks: dict) -> str:
    rows = [[label, error_free_text(by_load), error_free(by_load)[1] or "", retrieval_text(by_load),
             f"{marks['mceliece_load']:.3f} (McEliece et al.); {marks['ags_load']} (Amit et al.)"
             if label == HEBBIAN else ""]
            for label, by_load in data.items()]
    return markdown_table(["network", f"error-free (exact ≥ {EXACT}) up to P/N", "first load below",
                           f"retrieval (m ≥ {RETRIEVED}) up to P/N", "theory, P/N"], rows)


def classic_table(data: Scores, units: int) -> str:
    labels = [label for label in (HEBBIAN, STORKEY) if label in data]
    rows = [[f"{load:g}", max(1, round(load * units)),
             *(spread([s[key] for s in data[label][load]], 3) for label in labels
               for key in ("exact_recall", "mean_overlap"))]
            for load in sorted(data[labels[0]])]
    return markdown_table(["P/N", "P", *(f"{label}: {what}" for label in labels for what in ("exact", "m"))], rows)


def table(results: Mapping[str, Result]) -> str:
    data, marks = scores(results), setting(results)
    return (summary_table(data, marks) + f"\n\nThe classic networks load by load (N = {marks['units']}):\n\n"
            + classic_table(data, marks["units"]))


def mceliece_verdict(data: Scores, mark: float) -> str:
    ok, fail = error_free(data[HEBBIAN])
    measured = (f"Hebbian recall is error-free up to P/N = {error_free_text(data[HEBBIAN])}"
                + (f" and falls below {EXACT} at {fail:g}" if fail is not None else ""))
    if (ok or 0.0) <= mark and (fail is None or mark <= fail):
        return f"{measured}: McEliece et al.'s N/(2 ln N) = {mark:.3f} N lies in between, as predicted."
    side = "beyond" if (ok or 0.0) > mark else "short of"
    return f"{measured}: that reaches {side} McEliece et al.'s N/(2 ln N) = {mark:.3f} N, against the theory."


def ags_verdict(data: Scores, mark: float, flip: float) -> str:
    load = crossing(data[HEBBIAN])
    if load is None:
        return (f"The Hebbian overlap does not fall through {RETRIEVED} within the loads measured "
                f"(retrieval up to P/N {retrieval_text(data[HEBBIAN])}), so Amit et al.'s {mark} N is not seen here.")
    difference = (load - mark) / mark
    agreement = ("close to" if abs(difference) <= 0.1 else
                 f"{abs(difference):.0%} {'above' if difference > 0 else 'below'}")
    return (f"Its overlap falls through {RETRIEVED} at P/N ≈ {load:.3f}, {agreement} Amit et al.'s {mark} "
            f"(a limit for N → ∞; our finite N and probes that start at m = {1 - 2 * flip:.2g} smooth the drop).")


def modern_verdict(data: Scores) -> str:
    modern = {label.removeprefix("modern, "): by_load for label, by_load in data.items() if label.startswith("modern")}
    listing = ", ".join(f"{error_free_text(by_load)} at {label}" for label, by_load in modern.items())
    beyond = [label for label, by_load in modern.items() if (error_free(by_load)[0] or 0.0) >= 1.0]
    return (f"The modern network is error-free up to P/N = {listing}: {len(beyond)} of its {len(modern)} "
            "inverse temperatures store at least as many patterns as it has units without an error"
            + (f" ({', '.join(beyond)})" if beyond else "") + ".")


def conclusion(results: Mapping[str, Result]) -> str:
    data, marks = scores(results), setting(results)
    return " ".join([mceliece_verdict(data, marks["mceliece_load"]),
                     ags_verdict(data, marks["ags_load"], marks["flip"]),
                     f"The Storkey rule stays error-free up to P/N = {error_free_text(data[STORKEY])}.",
                     modern_verdict(data)])


def figure(results: Mapping[str, Result], figures: Path) -> str:
    """The script's own plot, of all seeds together."""
    marks = setting(results)
    args = argparse.Namespace(units=marks["units"], flip=marks["flip"], probes=marks["probes"],
                              seeds=len(by_config(results)["sweep"]))
    figures.mkdir(parents=True, exist_ok=True)
    capacity_sweep.plot(scores(results), args, figures / FIGURE)
    return FIGURE


def setup(results: Mapping[str, Result], quick: bool) -> str:
    marks = setting(results)
    return (f"`python {SCRIPT} --seeds 1 --first-seed <seed> --units {marks['units']} --probes {marks['probes']}` "
            f"per seed{' (quick mode)' if quick else ''}: N = {marks['units']} units, P = load x N random ±1 "
            f"patterns, {marks['probes']} probes per load and seed, each a stored pattern with "
            f"{marks['flip']:.0%} of its units flipped, at most {marks['steps']} sweeps (classic) or updates "
            "(modern). 'exact' is the fraction of probes recalled with every unit right, m the mean overlap "
            f"ξ·sign(s)/N; 'error-free up to' is the largest load before the first whose mean exact recall falls "
            f"below {EXACT}, 'retrieval up to' the load where the mean overlap falls through {RETRIEVED} "
            "(linear between the loads around it).")


def report(results: Mapping[str, Result], figures: Path, quick: bool) -> Section:
    return Section(setup(results, quick), table(results), conclusion(results), [figure(results, figures)])


EXPERIMENT = Experiment(
    key="hopfield",
    title="Hopfield capacity: recall against P/N",
    claim="A classic Hopfield network stores about 0.138 N patterns (recall collapses near P = 0.138 N, and is "
          "error-free only up to P = N/(2 ln N)); the modern Hopfield network stores far more.",
    published="Amit, Gutfreund & Sompolinsky 1985: retrieval states vanish at P = 0.138 N (N → ∞). McEliece et al. "
              "1987: all patterns recalled without error up to P = N/(2 ln N). Ramsauer et al. 2020: the modern "
              "network's capacity grows exponentially in N.",
    runs=runs,
    report=report,
)
