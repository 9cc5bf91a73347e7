"""Storage capacity: exact recall and overlap against the load P/N, classic vs modern Hopfield.

For each network and load α = P/N, and several seeds, the associative task
(`rnnzoo.tasks.associative`) stores P random ±1 patterns of N units, probes each with 10% of
its units flipped, and scores the recalled states with the task's own `evaluate` (the
function `rnnzoo train/eval task=associative` run):

* classic Hopfield network, Hebbian rule (Hopfield 1982): the marks are the limits of the
  theory, α_c ≈ 0.138 where retrieval states vanish (Amit, Gutfreund & Sompolinsky 1985) and
  P = N / (2 ln N), the load up to which patterns are recalled without a wrong unit (McEliece
  et al. 1987);
* classic network, Storkey rule (Storkey 1997);
* modern Hopfield network (Ramsauer et al. 2020) at three inverse temperatures: β = 1/√N
  (attention's scale) and β = 1 store far more than N patterns; at β = 0.5/√N retrieval fails
  already below P = N: the fixed point every probe slides to is the metastable average of
  all the patterns (m ≈ 0), not the pattern nearest to it.

Writes a plot (exact recall and mean overlap against P/N, log scale) and a markdown table
with the command that produced them and the wall time; with --metrics, also the numbers as
JSON (per network and load, each seed's exact recall and mean overlap), which the lecture's
Hopfield experiment (experiments/lecture/hopfield.py) reads.

    python scripts/capacity_sweep.py                      # under a minute: docs/capacity.{png,md}
    python scripts/capacity_sweep.py --seeds 2 --probes 100 --out-dir /tmp   # quicker
    python scripts/capacity_sweep.py --seeds 1 --first-seed 2 --out-dir RUN --metrics RUN/metrics.json
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnzoo import create_model
from rnnzoo.tasks.associative import AssociativeConfig, AssociativeTask

CLASSIC_LOADS = [0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6]
MODERN_LOADS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200]
AGS_LIMIT = 0.138  # Amit, Gutfreund & Sompolinsky 1985


@dataclass(frozen=True)
class Network:
    label: str
    model: str
    options: dict
    loads: list[float]


def networks(num_units: int) -> list[Network]:
    return [Network("classic, Hebbian", "hopfield", {"rule": "hebbian"}, CLASSIC_LOADS),
            Network("classic, Storkey", "hopfield", {"rule": "storkey"}, CLASSIC_LOADS),
            *(Network(f"modern, β={name}" + (f"={beta:.3g}" if "N" in name else ""), "modern_hopfield",
                      {"beta": beta}, MODERN_LOADS)
              for name, beta in [("0.5/√N", 0.5 * num_units ** -0.5), ("1/√N", num_units ** -0.5), ("1", 1.0)])]


def measure(network: Network, num_units: int, load: float, seed: int, args: argparse.Namespace) -> dict[str, float]:
    """The associative task's test metrics for one network, load and seed."""
    config = AssociativeConfig(num_units=num_units, num_patterns=max(1, round(load * num_units)),
                               flip_fraction=args.flip, probes=args.probes, steps=args.steps)
    task = AssociativeTask(config, seed)
    model = create_model(network.model, **network.options)
    model.store(task.memories())
    return task.evaluate(model, "test", torch.device("cpu"))


def seed_range(args: argparse.Namespace) -> range:
    return range(args.first_seed, args.first_seed + args.seeds)


def sweep(args: argparse.Namespace) -> dict[str, dict[float, list[dict[str, float]]]]:
    results: dict[str, dict[float, list[dict[str, float]]]] = {}
    for network in networks(args.units):
        results[network.label] = {}
        for load in network.loads:
            runs = [measure(network, args.units, load, seed, args) for seed in seed_range(args)]
            results[network.label][load] = runs
            print(f"{network.label:<28} P/N={load:<6} exact={mean(runs, 'exact_recall'):.3f} "
                  f"m={mean(runs, 'mean_overlap'):.3f}", flush=True)
    return results


def mean(runs: list[dict[str, float]], key: str) -> float:
    return statistics.fmean(r[key] for r in runs)


def spread(runs: list[dict[str, float]], key: str) -> float:
    return statistics.stdev(r[key] for r in runs) if len(runs) > 1 else 0.0


# --- outputs --------------------------------------------------------------------------------
def plot(results, args: argparse.Namespace, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    N = args.units
    mceliece = 1 / (2 * math.log(N))  # P = N / (2 ln N) as a load
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), sharex=True)
    for ax, key, title in [(axes[0], "exact_recall", "exact recall (fraction of probes)"),
                           (axes[1], "mean_overlap", "mean overlap m = ξ·sign(s) / N")]:
        for label, by_load in results.items():
            loads = sorted(by_load)
            means = [mean(by_load[a], key) for a in loads]
            stds = [spread(by_load[a], key) for a in loads]
            line, = ax.plot(loads, means, marker="o", markersize=3.5, label=label)
            ax.fill_between(loads, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                            color=line.get_color(), alpha=0.2, linewidth=0)
        ax.axvline(mceliece, color="grey", linestyle=":", linewidth=1)
        ax.axvline(AGS_LIMIT, color="black", linestyle="--", linewidth=1)
        ax.axvline(1.0, color="grey", linestyle="-", linewidth=0.6)
        ax.text(mceliece, 0.02, f" N/(2 ln N)\n = {mceliece:.3f} N", fontsize=7, color="grey", ha="right")
        ax.text(AGS_LIMIT, 0.02, " 0.138 N", fontsize=7)
        ax.text(1.0, 0.02, " P = N", fontsize=7, color="grey")
        ax.set_xscale("log")
        ax.set_xlabel("load P/N")
        ax.set_title(title)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(f"Hopfield capacity: N = {N}, probes with {args.flip:.0%} of units flipped, "
                 f"{args.seeds} seeds x {args.probes} probes (mean ± std over seeds)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(results, labels: list[str], args: argparse.Namespace) -> list[str]:
    loads = sorted({a for label in labels for a in results[label]})
    head = "| P/N | P | " + " | ".join(f"{label}: exact | m" for label in labels) + " |"
    lines = [head, "|" + "---:|" * (2 + 2 * len(labels))]
    for load in loads:
        cells = []
        for label in labels:
            runs = results[label].get(load)
            cells += ([f"{mean(runs, 'exact_recall'):.3f} ± {spread(runs, 'exact_recall'):.3f}",
                       f"{mean(runs, 'mean_overlap'):.3f}"] if runs else ["", ""])
        lines.append(f"| {load:g} | {max(1, round(load * args.units))} | " + " | ".join(cells) + " |")
    return lines


def report(results, args: argparse.Namespace, seconds: float, command: str, image: Path) -> str:
    N = args.units
    labels = list(results)
    lines = [
        "# Hopfield networks: storage capacity",
        "",
        f"`{command}`: {seconds:.0f} s wall time, torch {torch.__version__}, {torch.get_num_threads()} thread(s).",
        "",
        f"N = {N} units, P = load x N random ±1 patterns, each probed with {args.flip:.0%} of its units "
        f"flipped; {args.seeds} seeds x {args.probes} probes per point, at most {args.steps} sweeps (classic) "
        "or updates (modern) per recall. `exact` is the fraction of probes recalled with every unit right "
        "(mean ± std over seeds), `m` the mean overlap ξ·sign(s)/N; the probes start at "
        f"m = {1 - 2 * round(args.flip * N) / N:.2f}. Scored by the associative task's own `evaluate`.",
        "",
        f"Marks of the theory: P = N/(2 ln N) = {N / (2 * math.log(N)):.1f} (load {1 / (2 * math.log(N)):.3f}), "
        "recall without errors (McEliece et al. 1987); P = 0.138 N "
        f"= {AGS_LIMIT * N:.1f}, where retrieval states vanish (Amit, Gutfreund & Sompolinsky 1985).",
        "",
        f"![capacity]({image.name})",
        "",
        "## Classic network (Hopfield 1982; Storkey 1997)",
        "",
        *table(results, [label for label in labels if label.startswith("classic")], args),
        "",
        "## Modern network (Ramsauer et al. 2020)",
        "",
        *table(results, [label for label in labels if label.startswith("modern")], args),
        "",
    ]
    return "\n".join(lines)


def metrics(results, args: argparse.Namespace, seconds: float) -> dict:
    """What --metrics writes: the setting, the theory's marks, and every network's scores by load
    (a list over seeds for each of exact_recall and mean_overlap)."""
    N = args.units
    return {
        "units": N, "seeds": list(seed_range(args)), "probes": args.probes, "flip": args.flip, "steps": args.steps,
        "seconds": round(seconds, 1), "mceliece_load": 1 / (2 * math.log(N)), "ags_load": AGS_LIMIT,
        "networks": {label: [{"load": load, "patterns": max(1, round(load * N)),
                              **{key: [run[key] for run in runs] for key in ("exact_recall", "mean_overlap")}}
                             for load, runs in by_load.items()]
                     for label, by_load in results.items()},
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=200, help="N")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--probes", type=int, default=500, help="probes per seed and load")
    parser.add_argument("--flip", type=float, default=0.1, help="fraction of a probe's units flipped")
    parser.add_argument("--steps", type=int, default=20, help="most sweeps (classic) or updates (modern)")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent.parent / "docs")
    parser.add_argument("--metrics", type=Path, help="also write the numbers as JSON to this file")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    results = sweep(args)
    seconds = time.perf_counter() - started
    args.out_dir.mkdir(parents=True, exist_ok=True)
    image = args.out_dir / "capacity.png"
    plot(results, args, image)
    command = "python scripts/capacity_sweep.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    (args.out_dir / "capacity.md").write_text(report(results, args, seconds, command.strip(), image))
    print(f"wrote {image} and {args.out_dir / 'capacity.md'} ({seconds:.0f} s)")
    if args.metrics is not None:
        args.metrics.parent.mkdir(parents=True, exist_ok=True)
        args.metrics.write_text(json.dumps(metrics(results, args, seconds), indent=1) + "\n")
        print(f"wrote {args.metrics}")


if __name__ == "__main__":
    main()
