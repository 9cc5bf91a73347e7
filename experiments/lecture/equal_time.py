"""Experiment 7: recurrent nets versus Transformers at equal wall time; BERT pretraining versus none.

Vaswani et al. (2017), "Attention is all you need": without recurrence a layer's positions are
computed at once, so a Transformer trains in less time than a recurrent net of the same quality.
Devlin et al. (2019), "BERT": pretraining a Transformer encoder as a masked language model on
unlabelled text, then fine-tuning it, beats training on the labelled task alone. Published
anchors: nanoGPT's 4x128 character Transformer reaches validation loss 1.88 on tinyshakespeare
after 2,000 iterations on a CPU (its README); bentrevett/pytorch-seq2seq reports Multi30k de-en
test BLEU 28.3 for attention (Bahdanau) and 36.5 for the Transformer; BERT-Tiny pretrained on
BooksCorpus and Wikipedia fine-tunes to 83.2 on SST-2 (Turc et al. 2019, the BERT miniatures).

Setup, three comparisons of the project's recipes:

* tinyshakespeare: `tinyshakespeare_lstm` (LSTM 512) against `tinyshakespeare_transformer`
  (nanoGPT's 4x128), the same `trainer.max_time` each, no step limit (so the recipes' cosine
  schedules, which decay over `max_steps`, stay at their peak after the warm-up); three seeds;
  validation loss on the recipes' fixed 20,000-character prefix of the validation split.
* Multi30k de-en: `multi30k_bahdanau` against `multi30k_transformer`, 10 minutes each, one
  seed; the runs are shared with attention_length.
* SST-2: `sst2_bert_pretrain` (masked LM on SST-2's GLUE phrases and four English corpora)
  once (its recipe's 15 minutes), then three seeds each of `sst2_bert_finetune` from its checkpoint
  and `sst2_bert_scratch` from random weights, the same budget each: their recipes' 6,000
  steps on GLUE's 67,349 labelled phrases, about 4 minutes on one core, under a cap of 600 s;
  test accuracy of the best validation checkpoint.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Mapping, NamedTuple

from .common import cell, over_seeds, recipe_value, seeds, values
from .real_data import (
    Panel,
    bar_figure,
    beyond_spread,
    lead,
    multi30k_budget,
    multi30k_name,
    multi30k_run,
    require_data,
)
from .report import Experiment, Section, markdown_table, mean_std
from .runs import Result, Run

FIGURE = "equal_time.png"
TS_SECONDS = 100  # tinyshakespeare: the Transformer makes about 1,700 of nanoGPT's 2,000 iterations on an idle core
PRETRAIN_SECONDS = 900
FINETUNE_SECONDS = 600  # a cap: the recipes' step limit ends the runs first
QUICK = ("trainer.max_time=null", "trainer.max_steps=20", "trainer.eval_every=20", "trainer.log_every=10")
QUICK_TEXT = ("task.eval_tokens=2000",)  # tinyshakespeare: a shorter validation prefix
PRETRAIN = "sst2_pretrain"
NANOGPT, BENTREVETT, BERT_TINY = 1.88, {"bahdanau": 28.3, "transformer": 36.5}, 83.2


def timed(seconds: int, quick: bool, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Equal wall time: a time budget and no step limit; quick mode: a few steps."""
    return (*QUICK, *extra) if quick else ("trainer.max_steps=null", f"trainer.max_time={seconds}")


def sst2_budget(seconds: int, quick: bool) -> tuple[str, ...]:
    """The SST-2 runs keep their recipes' schedules and step limits; the time budget stops them first."""
    return QUICK if quick else (f"trainer.max_time={seconds}",)


def runs(quick: bool) -> list[Run]:
    require_data("tinyshakespeare", "multi30k", "sst2")
    checkpoint = f"model.init_from={{run:{PRETRAIN}}}/checkpoints/best.pt"
    budget = sst2_budget(FINETUNE_SECONDS, quick)
    return [multi30k_run("bahdanau", quick), multi30k_run("transformer", quick),
            Run(PRETRAIN, ("experiment=sst2_bert_pretrain", *sst2_budget(PRETRAIN_SECONDS, quick))),
            *over_seeds("sst2_scratch", ("experiment=sst2_bert_scratch", *budget), quick),
            *(run for model in ("lstm", "transformer")
              for run in over_seeds(f"tinyshakespeare_{model}", (f"experiment=tinyshakespeare_{model}",
                                                                 *timed(TS_SECONDS, quick, QUICK_TEXT)), quick)),
            *(replace(run, after=(PRETRAIN,))
              for run in over_seeds("sst2_finetune", ("experiment=sst2_bert_finetune", checkpoint, *budget), quick))]


class Row(NamedTuple):
    """A line of the table: one configuration and the metric it is compared on."""

    comparison: str
    config: str
    model: str
    key: str
    words: str
    scale: float = 1.0
    digits: int = 2
    published: str = ""


ROWS = (
    Row("tinyshakespeare", "tinyshakespeare_lstm", "LSTM 512", "val/loss", "val loss", digits=3),
    Row("tinyshakespeare", "tinyshakespeare_transformer", "Transformer 4x128", "val/loss", "val loss", digits=3,
        published=f"{NANOGPT} (nanoGPT, 2,000 iterations)"),
    Row("Multi30k", multi30k_name("bahdanau"), "Bahdanau (attention RNN)", "test/bleu", "test BLEU",
        published=f"{BENTREVETT['bahdanau']} (bentrevett)"),
    Row("Multi30k", multi30k_name("transformer"), "Transformer 3+3x256", "test/bleu", "test BLEU",
        published=f"{BENTREVETT['transformer']} (bentrevett)"),
    Row("SST-2", PRETRAIN, "BERT-Tiny masked-LM pretraining", "test/mlm_accuracy", "masked-LM accuracy"),
    Row("SST-2", "sst2_finetune", "BERT-Tiny fine-tuned from it", "test/accuracy", "test accuracy", 100.0,
        published=f"{BERT_TINY} (BERT-Tiny, pretrained on books and Wikipedia)"),
    Row("SST-2", "sst2_scratch", "BERT-Tiny from random weights", "test/accuracy", "test accuracy", 100.0),
)


def table(results: Mapping[str, Result]) -> str:
    rows = [[r.comparison, f"{r.model} (`{r.config}`)",
             f"{r.words}: {cell(results, r.config, r.key, r.scale, r.digits)}",
             cell(results, r.config, "train/steps", digits=0), cell(results, r.config, "train/seconds", digits=0),
             r.published] for r in ROWS]
    return markdown_table(["comparison", "run", "ours", "steps", "train seconds", "published"], rows)


def text_verdict(results: Mapping[str, Result]) -> str:
    lstm, transformer = (values(results, f"tinyshakespeare_{m}", "val/loss") for m in ("lstm", "transformer"))
    sign, phrase = lead("the Transformer", transformer, "the LSTM", lstm, "nats", 3, lower_is_better=True)
    steps = [mean_std(values(results, f"tinyshakespeare_{m}", "train/steps"))[0] for m in ("transformer", "lstm")]
    text = (f"tinyshakespeare, the same wall time each: {phrase}, with {steps[0]:,.0f} steps against "
            f"{steps[1]:,.0f}. ")
    text += "That agrees with the claim. " if sign > 0 else "There we disagree with the claim. "
    ours = mean_std(transformer)[0]
    return text + (f"Our Transformer's {ours:.3f} is {'at or below' if ours <= NANOGPT else 'above'} "
                   f"nanoGPT's {NANOGPT}.")


def translation_verdict(results: Mapping[str, Result]) -> str:
    bleu = {m: values(results, multi30k_name(m), "test/bleu") for m in BENTREVETT}
    sign, phrase = lead("the Transformer", bleu["transformer"], "Bahdanau's attention RNN", bleu["bahdanau"], "BLEU")
    order = f"the published order ({BENTREVETT['bahdanau']} < {BENTREVETT['transformer']})"
    text = f"Multi30k, the same wall time each: {phrase}; "
    text += f"{order} holds." if sign > 0 else f"{order} does not hold here: we disagree."
    below = all(mean_std(bleu[m])[0] < BENTREVETT[m] for m in BENTREVETT)
    return text + (" Both stay below bentrevett's scores (their runs train for 10 epochs on a GPU, and their BLEU is "
                   "on spaCy tokens, ours sacrebleu's)." if below else "")


def pretraining_verdict(results: Mapping[str, Result]) -> str:
    tuned, scratch = (values(results, c, "test/accuracy", 100) for c in ("sst2_finetune", "sst2_scratch"))
    sign, phrase = lead("the pretrained BERT-Tiny", tuned, "the one from random weights", scratch, "accuracy points")
    mlm, steps, seconds = (values(results, PRETRAIN, key)[0] for key in ("test/mlm_accuracy", "train/steps",
                                                                          "train/seconds"))
    text = f"SST-2: {phrase}; "
    if sign > 0 and beyond_spread(tuned, scratch):
        text += "pretraining helped, as Devlin et al. claim."
    elif sign > 0:
        text += ("not the clear gain Devlin et al. report: at this budget the pretraining's lead is within the "
                 "noise of the seeds.")
    else:
        text += "pretraining did not help here: we disagree with the claim at this budget."
    gap = BERT_TINY - mean_std(tuned)[0]
    return text + (f" Our pretraining reached {mlm:.1f}% masked-LM accuracy in {steps:,.0f} steps "
                   f"({seconds / 60:.1f} minutes) on SST-2's phrases and four more corpora; the fine-tuned model is "
                   f"{abs(gap):.1f} "
                   f"points {'below' if gap > 0 else 'above'} BERT-Tiny's {BERT_TINY}, pretrained on billions of "
                   "words.")


def report(results: Mapping[str, Result], figures: Path, quick: bool) -> Section:
    budget = ("quick mode: 20 steps each, a smoke test of the pipeline, not the comparison" if quick else
              f"tinyshakespeare {TS_SECONDS} s each, Multi30k: {multi30k_budget(quick)}; SST-2: pretraining "
              f"{PRETRAIN_SECONDS // 60} minutes, then the same "
              f"{recipe_value('/shared/sst2_bert', 'trainer.max_steps'):,} steps per fine-tuning or scratch run "
              f"(their recipes' schedule, under a cap of {FINETUNE_SECONDS} s)")
    setup = ("Equal wall time (tinyshakespeare, Multi30k) means the same `trainer.max_time` and no step limit "
             "(`trainer.max_steps=null`: tinyshakespeare's cosine schedules then stay at their peak after the "
             f"warm-up). Budgets: {budget}. Seeds {', '.join(map(str, seeds(quick)))} (one for Multi30k and the "
             "pretraining), one thread each; tinyshakespeare's validation loss is on the recipes' 20,000-character "
             "prefix of the validation split.")
    panels = [Panel("tinyshakespeare (lower is better)", "val loss",
                    {m: values(results, f"tinyshakespeare_{m}", "val/loss") for m in ("lstm", "transformer")},
                    {"nanoGPT": NANOGPT}),
              Panel("Multi30k de-en", "test BLEU",
                    {m: values(results, multi30k_name(m), "test/bleu") for m in BENTREVETT},
                    {f"bentrevett {m}": v for m, v in BENTREVETT.items()}),
              Panel("SST-2, BERT-Tiny", "test accuracy (%)",
                    {m: values(results, f"sst2_{m}", "test/accuracy", 100) for m in ("finetune", "scratch")},
                    {"BERT-Tiny (Turc et al.)": BERT_TINY})]
    conclusion = " ".join([text_verdict(results), translation_verdict(results), pretraining_verdict(results)])
    return Section(setup, table(results), conclusion, [bar_figure(panels, figures, FIGURE)])


EXPERIMENT = Experiment(
    key="equal_time",
    title="Recurrent nets versus Transformers at equal wall time; BERT pretraining versus none",
    claim="Without recurrence a Transformer trains faster, so at equal wall time it beats a recurrent net "
          "(Vaswani et al. 2017); and pretraining it as a masked language model before fine-tuning beats "
          "training on the labelled task alone (Devlin et al. 2019).",
    published=f"nanoGPT's 4x128 Transformer: validation loss {NANOGPT} on tinyshakespeare (2,000 iterations on a CPU); "
              f"bentrevett/pytorch-seq2seq, Multi30k de-en test BLEU: attention {BENTREVETT['bahdanau']}, "
              f"Transformer {BENTREVETT['transformer']}; BERT-Tiny pretrained on books and Wikipedia: "
              f"{BERT_TINY} on SST-2 (Turc et al. 2019).",
    runs=runs,
    report=report,
)
