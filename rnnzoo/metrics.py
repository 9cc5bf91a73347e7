"""Translation metrics, computed by sacrebleu so the numbers compare with published ones.

    corpus_bleu(hypotheses, references)          BLEU (Papineni et al. 2002), 0..100
    corpus_chrf(hypotheses, references)          chrF (Popovic 2015), 0..100
    translation_scores(hypotheses, references)   {"bleu", "chrf", "exact"}

One reference per sentence; both lists hold detokenized text, one sentence per entry.
BLEU is a corpus statistic (n-gram precisions are pooled over all sentences before the
geometric mean), not an average of sentence scores, and its value depends on the
tokenization applied before counting n-grams: as Post (2018) argues, a score is only
comparable when that tokenization is the metric's own, here sacrebleu's default "13a" on
detokenized output, never the model's subword or word tokens. chrF counts character n-grams
(orders 1..6, beta = 2) and needs no tokenization at all, which makes it kinder to
morphologically rich languages and to small test sets. The defaults match the `sacrebleu`
command line (`sacrebleu REF -i HYP -m bleu chrf`).
"""

from __future__ import annotations

import sacrebleu


def _check(hypotheses: list[str], references: list[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references: "
                         "need one reference per hypothesis")


def corpus_bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU of detokenized `hypotheses` against one reference each (13a tokenizer).

    0.0 for empty lists (sacrebleu refuses them).
    """
    _check(hypotheses, references)
    if not hypotheses:
        return 0.0
    return float(sacrebleu.corpus_bleu(hypotheses, [references]).score)


def corpus_chrf(hypotheses: list[str], references: list[str]) -> float:
    """Corpus chrF (character 6-grams, beta 2) against one reference each; 0.0 when empty."""
    _check(hypotheses, references)
    if not hypotheses:
        return 0.0
    return float(sacrebleu.corpus_chrf(hypotheses, [references]).score)


def exact_match(hypotheses: list[str], references: list[str]) -> float:
    """Percent of hypotheses identical to their reference (as strings); 0.0 when empty."""
    _check(hypotheses, references)
    if not hypotheses:
        return 0.0
    return 100.0 * sum(h == r for h, r in zip(hypotheses, references)) / len(hypotheses)


def translation_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """{"bleu": corpus BLEU, "chrf": corpus chrF, "exact": percent exact matches}, all 0..100."""
    return {"bleu": corpus_bleu(hypotheses, references),
            "chrf": corpus_chrf(hypotheses, references),
            "exact": exact_match(hypotheses, references)}
