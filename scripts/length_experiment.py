"""Translation quality against source length: Bahdanau et al. 2015's figure 2, for any checkpoints.

A fixed-length context vector must hold the whole source, so an RNN encoder-decoder should
fail on long inputs where attention, which re-reads the source at every step, holds up.
This script scores translation checkpoints by source length and draws one line per model:

* generated sets (reversal, sorting, dates): `--size` fresh pairs of each exact source length
  (`--lengths`, also beyond the lengths trained on), scored by exact match;
* file sets (multi30k...): the test split bucketed by source length in words, scored by BLEU.

    python scripts/length_experiment.py --run seq2seq=outputs/.../best.pt --run bahdanau=outputs/.../best.pt \\
        --lengths 5 10 15 20 25 30 35 40 --out docs/length_reversal.png

Writes the PNG and a markdown table (same name, .md) and prints the table; with `--metrics-json PATH`
also the scores as JSON, `{"metric": ..., "scores": {label: {length: score}}, "sizes": {label: {length:
pairs scored}}}` (what a lecture experiment's script run leaves in its folder:
experiments.lecture.attention_length).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from rnnzoo.api import load_run
from rnnzoo.data import length_split
from rnnzoo.metrics import corpus_bleu, exact_match
from rnnzoo.plotting import pyplot
from rnnzoo.registry import DATASETS

BUCKETS = [(1, 8), (9, 12), (13, 16), (17, 20), (21, 25), (26, 1000)]  # Multi30k captions: words


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=CHECKPOINT",
                        help="a translation checkpoint and its label in the plot (repeat)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[5, 10, 15, 20, 25, 30, 35, 40],
                        help="source lengths to test (generated sets)")
    parser.add_argument("--size", type=int, default=200, help="pairs per length (generated sets)")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write (and its .md table)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--metrics-json", type=Path, help="also write the scores here as JSON")
    return parser.parse_args(argv)


def load(spec: str):
    label, sep, path = spec.partition("=")
    if not sep or not path:
        sys.exit(f"error: --run takes LABEL=CHECKPOINT, got {spec!r}")
    network, task, config = load_run(path)
    if config["task"]["name"] != "translation":
        sys.exit(f"error: {path} is a '{config['task']['name']}' run, not translation")
    return label, network, task, config


def by_length(task, network, config, lengths: list[int], size: int) -> dict[str, float]:
    """Exact match (%) on `size` generated pairs of each source length."""
    data = {k: v for k, v in config["dataset"].items() if k not in ("name", "seed", "train_size", "val_size",
                                                                    "test_size", "min_length", "max_length")}
    scores = {}
    for length in lengths:
        pairs = length_split(config["dataset"]["name"], length, size, config["dataset"]["seed"], **data)
        outputs = task.translations(network, pairs, torch.device("cpu"))
        scores[str(length)] = exact_match(outputs, [task.normalize(p.target) for p in pairs])
    return scores


def by_bucket(task, network) -> dict[str, float]:
    """BLEU of the test split, bucketed by the source's length in words."""
    pairs = task.load("test")
    outputs = task.translations(network, pairs, torch.device("cpu"))
    scores = {}
    for low, high in BUCKETS:
        chosen = [i for i, p in enumerate(pairs) if low <= len(p.source.split()) <= high]
        if chosen:
            label = f"{low}-{high}" if high < 1000 else f"{low}+"
            scores[label] = corpus_bleu([outputs[i] for i in chosen], [task.normalize(pairs[i].target) for i in chosen])
    return scores


def bucket_sizes(task) -> dict[str, int]:
    """Test sentences in each bucket of `by_bucket` (the buckets it scores)."""
    counts = {}
    lengths = [len(p.source.split()) for p in task.load("test")]
    for low, high in BUCKETS:
        count = sum(low <= n <= high for n in lengths)
        if count:
            counts[f"{low}-{high}" if high < 1000 else f"{low}+"] = count
    return counts


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    results, sizes, metric = {}, {}, None
    for spec in args.run:
        label, network, task, config = load(spec)
        generated = getattr(DATASETS.get(config["dataset"]["name"]), "generated", False)
        metric = "exact match (%)" if generated else "BLEU"
        results[label] = by_length(task, network, config, args.lengths, args.size) if generated \
            else by_bucket(task, network)
        sizes[label] = {str(length): args.size for length in args.lengths} if generated else bucket_sizes(task)
    table = markdown(results, metric)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(table + "\n")
    plot(results, metric, args.out)
    if args.metrics_json is not None:
        args.metrics_json.parent.mkdir(parents=True, exist_ok=True)
        args.metrics_json.write_text(json.dumps({"metric": metric, "scores": results, "sizes": sizes}, indent=1) + "\n")


def markdown(results: dict[str, dict[str, float]], metric: str) -> str:
    columns = list(next(iter(results.values())))
    lines = [f"| source length | {' | '.join(columns)} |", "|---|" + "---|" * len(columns)]
    lines += [f"| {label} ({metric}) | " + " | ".join(f"{scores[c]:.1f}" for c in columns) + " |"
              for label, scores in results.items()]
    return "\n".join(lines)


def plot(results: dict[str, dict[str, float]], metric: str, out: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(5.5, 3.5))
    for label, scores in results.items():
        axes.plot(list(scores), list(scores.values()), marker="o", label=label)
    axes.set_xlabel("source length" + (" (words)" if metric == "BLEU" else ""))
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
