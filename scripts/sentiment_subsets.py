"""Where a sentiment classifier's accuracy comes from: SST-2 test sentences split by what they contain.

Three disjoint subsets: sentences with a negation word (NEGATIONS), sentences with a contrast
word (CONTRASTS) and no negation, and the rest. Both kinds of word make a sentence's polarity
depend on composition (Socher et al. 2013 built the treebank to study exactly these), which a
bag of words cannot follow. Each arm is one or more classification checkpoints (seeds); the
table gives each arm's mean accuracy ± the seed spread per subset.

    python scripts/sentiment_subsets.py \\
        --arm pretrained=outputs/a/checkpoints/best.pt,outputs/b/checkpoints/best.pt \\
        --arm scratch=outputs/c/checkpoints/best.pt
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Callable, Sequence

NEGATIONS = frozenset({"not", "n't", "no", "never", "nothing", "neither", "nor", "without", "hardly"})
CONTRASTS = frozenset({"but", "though", "although", "yet"})
SUBSETS = ("negation", "contrast", "rest")
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "stsa.binary.test"


def subset_of(sentence: str) -> str:
    """'negation', 'contrast' (and no negation) or 'rest', from the sentence's tokens."""
    words = set(sentence.lower().split())
    return "negation" if words & NEGATIONS else "contrast" if words & CONTRASTS else "rest"


def read_labelled(path: Path) -> list[tuple[str, str]]:
    """(label, sentence) from an SST-2 file of `LABEL sentence` lines."""
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        label, _, sentence = line.partition(" ")
        if not sentence:
            sys.exit(f"error: {path}:{number}: expected 'LABEL sentence', got {line!r}")
        pairs.append((label, sentence))
    return pairs


def accuracy_by_subset(pairs: Sequence[tuple[str, str]], predictions: Sequence[str]) -> dict[str, float]:
    """Percent correct within each subset (a subset with no sentence is left out)."""
    hits: dict[str, list[bool]] = {}
    for (label, sentence), predicted in zip(pairs, predictions, strict=True):
        hits.setdefault(subset_of(sentence), []).append(str(predicted).strip() == label)
    return {name: 100 * sum(h) / len(h) for name, h in hits.items()}


def table(pairs: Sequence[tuple[str, str]], arms: dict[str, list[str]],
          predict: Callable[[str, list[str]], list[str]]) -> str:
    """A markdown table: one row per subset, one column per arm (mean ± spread over its checkpoints)."""
    sentences = [sentence for _, sentence in pairs]
    scores = {arm: [accuracy_by_subset(pairs, predict(path, sentences)) for path in paths]
              for arm, paths in arms.items()}
    sizes = {name: sum(subset_of(s) == name for s in sentences) for name in SUBSETS}
    lines = ["| subset | sentences | " + " | ".join(f"{arm} ({len(arms[arm])})" for arm in arms) + " |",
             "|---|---|" + "---|" * len(arms)]
    for name in (n for n in SUBSETS if sizes[n]):
        cells = []
        for arm in arms:
            values = [score[name] for score in scores[arm]]
            spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.2f}{spread}")
        lines.append(f"| {name} | {sizes[name]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_arm(text: str) -> tuple[str, list[str]]:
    name, _, paths = text.partition("=")
    checkpoints = [p for p in paths.split(",") if p]
    if not name or not checkpoints:
        raise argparse.ArgumentTypeError(f"--arm {text!r}: expected NAME=CHECKPOINT[,CHECKPOINT...]")
    missing = [p for p in checkpoints if not Path(p).is_file()]
    if missing:
        raise argparse.ArgumentTypeError(f"--arm {name}: no checkpoint file {missing[0]}")
    return name, checkpoints


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arm", type=parse_arm, action="append", required=True,
                        help="NAME=CHECKPOINT[,CHECKPOINT...]: one column of the table")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"labelled sentences (default {DEFAULT_DATA})")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    names = [name for name, _ in args.arm]
    if len(set(names)) < len(names):
        parser.error(f"--arm names repeat: {names}")
    if not args.data.is_file():
        sys.exit(f"error: --data {args.data}: no such file (the data folder's sst2/stsa.binary.test)")
    from rnnzoo.api import predict

    def predictions(path: str, sentences: list[str]) -> list[str]:
        return list(predict({"checkpoint": path, "trainer": {"device": "cpu", "num_threads": args.threads}},
                            sentences))

    print(table(read_labelled(args.data), dict(args.arm), predictions))


if __name__ == "__main__":
    main()
