"""The lecture's experiments on real data (experiments.lecture: bidirectional, attention_length,
equal_time), without training on real data: their runs (names, shared Multi30k runs, arguments
that compose into valid configs), the data check, and their reports on fabricated results.

The runs only need the dataset folders to exist, so `data_dirs` points RNNZOO_DATA_DIR at empty
ones: nothing here needs ../shared/data. One test trains a tiny reversal model (generated
data) to check scripts/length_experiment.py's --metrics-json, which the reports read.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest

from experiments.lecture import Result, Run, Section, attention_length, bidirectional, equal_time, spread
from experiments.lecture.common import config_of
from experiments.lecture.real_data import MULTI30K_GROUP, beyond_spread, lead
from experiments.lecture.runs import check_runs
from rnnzoo.api import _typed, plain, train
from rnnzoo.errors import RnnzooError
from scripts import length_experiment

from .conftest import compose_config

MODULES = (bidirectional, attention_length, equal_time)
DATASETS = ("conll2000", "ud_english_ewt", "multi30k", "tinyshakespeare", "sst2")
BUCKETS = ("1-8", "9-12", "13-16", "17-20", "21-25", "26+")


@pytest.fixture
def data_dirs(tmp_path, monkeypatch):
    """RNNZOO_DATA_DIR holding an (empty) folder per dataset the experiments read."""
    for name in DATASETS:
        (tmp_path / "data" / name).mkdir(parents=True)
    monkeypatch.setenv("RNNZOO_DATA_DIR", str(tmp_path / "data"))


# --- runs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("quick", [True, False])
@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.EXPERIMENT.key)
def test_run_names_are_unique_and_their_references_exist(module, quick, data_dirs):
    runs = module.EXPERIMENT.runs(quick)
    check_runs(module.EXPERIMENT.key, runs)  # unique names; every {run:NAME} listed in after=
    assert len({r.name for r in runs}) == len(runs)


@pytest.mark.parametrize("quick", [True, False])
def test_the_multi30k_runs_are_shared_and_identical(quick, data_dirs):
    shared = [{r.name: r for r in m.EXPERIMENT.runs(quick) if r.group == MULTI30K_GROUP}
              for m in (attention_length, equal_time)]
    assert set(shared[0]) == {"multi30k_cho", "multi30k_bahdanau"}
    assert set(shared[1]) == {"multi30k_bahdanau", "multi30k_transformer"}
    assert shared[0]["multi30k_bahdanau"] == shared[1]["multi30k_bahdanau"]  # one folder, one command: trained once
    others = [r for m in MODULES for r in m.EXPERIMENT.runs(quick) if r.group != MULTI30K_GROUP]
    assert not {r.name for r in others} & {"multi30k_cho", "multi30k_bahdanau", "multi30k_transformer"}


def seeds_per_config(runs: list[Run]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in runs:
        if run.script is None:
            counts[config_of(run.name)] = counts.get(config_of(run.name), 0) + 1
    return counts


def test_full_mode_has_three_seeds_where_runs_are_short_and_quick_mode_one(data_dirs):
    for module in MODULES:
        full, quick = seeds_per_config(module.EXPERIMENT.runs(False)), seeds_per_config(module.EXPERIMENT.runs(True))
        assert set(quick.values()) == {1}
        single = {c for c, n in full.items() if n == 1}
        assert single <= {"multi30k_cho", "multi30k_bahdanau", "multi30k_transformer", "sst2_pretrain"}, single
        assert all(full[c] == 3 for c in full if c not in single)


def filled(args: tuple[str, ...]) -> list[str]:
    """The arguments with `{run:NAME}` placeholders as some folder."""
    return [re.sub(r"\{run:([^}]+)\}", r"/tmp/runs/\1", a) for a in args]


@functools.cache
def composed_args(args: tuple[str, ...]):
    """The config of a run's arguments (seeds share their arguments: composed once)."""
    cfg = compose_config([*filled(args), "seed=0", "trainer.num_threads=1", "trainer.progress=false"])
    _typed(plain(cfg))  # every section valid against its dataclass, as `rnnzoo train` checks before training
    return cfg


def composed(run: Run):
    return composed_args(run.args)


@pytest.mark.parametrize("quick", [True, False])
@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.EXPERIMENT.key)
def test_every_train_run_composes_into_a_valid_config(module, quick, data_dirs):
    for run in module.EXPERIMENT.runs(quick):
        if run.script is None:
            cfg = composed(run)
            if not quick:
                assert cfg.trainer.max_steps is not None or cfg.trainer.max_time is not None


def test_toggles_and_equal_budgets_are_what_the_experiments_claim(data_dirs):
    bidir = {r.name: composed(r) for r in bidirectional.EXPERIMENT.runs(False)}
    for name, cfg in bidir.items():
        assert cfg.model.bidirectional == ("_bi_" in name)
        assert cfg.trainer.max_time is None and cfg.trainer.max_steps == bidirectional.STEPS
    timed = {r.name: composed(r) for r in equal_time.EXPERIMENT.runs(False) if r.script is None}
    budgets = {timed[f"tinyshakespeare_{m}_s0"].trainer.max_time for m in ("lstm", "transformer")}
    assert budgets == {equal_time.TS_SECONDS}
    equal = [c for name, c in timed.items() if name.startswith(("tinyshakespeare", "multi30k"))]
    assert len(equal) == 8 and all(cfg.trainer.max_steps is None for cfg in equal)  # the clock alone stops them
    assert timed["multi30k_bahdanau"].trainer.max_time == timed["multi30k_transformer"].trainer.max_time
    assert timed["sst2_finetune_s0"].model.init_from == "/tmp/runs/sst2_pretrain/checkpoints/best.pt"
    tuned, scratch = timed["sst2_finetune_s1"].trainer, timed["sst2_scratch_s1"].trainer
    assert (tuned.max_time, tuned.max_steps, tuned.lr) == (scratch.max_time, scratch.max_steps, scratch.lr)
    assert tuned.max_time == equal_time.FINETUNE_SECONDS


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.EXPERIMENT.key)
def test_missing_data_is_one_clear_error_naming_the_folder(module, tmp_path, monkeypatch):
    monkeypatch.setenv("RNNZOO_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(RnnzooError, match=re.escape(str(tmp_path / "nowhere")) + ".*absent"):
        module.EXPERIMENT.runs(True)


# --- reports on fabricated results ------------------------------------------------------------
def quality(config: str, flip: bool) -> float:
    """A fabricated quality in 0..1 per configuration: the claimed winner ahead unless `flip`."""
    ahead = any(word in config for word in ("_bi", "attention", "bahdanau", "transformer", "finetune"))
    if "multi30k_bahdanau" in config:  # ahead of cho (attention_length), behind the Transformer (equal_time)
        return 0.6
    if "multi30k_transformer" in config:
        return 0.4 if flip else 0.8
    return 0.9 if ahead != flip else 0.7


def train_metrics(run: Run, flip: bool) -> dict[str, float]:
    q = quality(run.name, flip) + 0.001 * run.seed
    return {"test/f1": q, "val/f1": q, "test/accuracy": q, "val/accuracy": q, "test/exact": 100 * q,
            "test/bleu": 40 * q, "val/loss": 3 - q, "test/mlm_accuracy": 30 * q,
            "train/steps": 1000 + run.seed, "train/seconds": 100.0 + run.seed}


def length_metrics(run: Run, flip: bool) -> dict:
    """scripts/length_experiment.py's JSON for the run's checkpoints: attention flat, the fixed
    context falling with length (the other way round if `flip`)."""
    labels = [a.split("=")[0] for a in run.args[1::2] if "{run:" in a]
    lengths = list(run.args[run.args.index("--lengths") + 1:run.args.index("--size")]) if "--lengths" in run.args \
        else list(BUCKETS)
    scores, sizes = {}, {}
    for label in labels:
        falls = ("attention" in label or "bahdanau" in label) == flip
        seed = int(label[-1]) if re.search(r"_s\d$", label) else 0
        scores[label] = {n: max(0.0, 50.0 - (5 * i if falls else 0)) + seed for i, n in enumerate(lengths)}
        sizes[label] = {n: (2 if n == "26+" else 200) for n in lengths}
    return {"metric": "BLEU" if lengths == list(BUCKETS) else "exact match (%)", "scores": scores, "sizes": sizes}


def fabricated(module, tmp_path: Path, flip: bool = False) -> dict[str, Result]:
    results = {}
    for run in module.EXPERIMENT.runs(False):
        metrics = length_metrics(run, flip) if run.script else train_metrics(run, flip)
        results[run.name] = Result(run, tmp_path / run.name, metrics, 60.0)
    return results


def reported(module, tmp_path: Path, flip: bool = False) -> Section:
    section = module.EXPERIMENT.report(fabricated(module, tmp_path, flip), tmp_path / "figures", False)
    for name in section.figures:
        assert (tmp_path / "figures" / name).stat().st_size > 1000
    assert section.setup and section.figures
    return section


def test_bidirectional_report(tmp_path, data_dirs):
    section = reported(bidirectional, tmp_path)
    assert spread([90.0, 90.1, 90.2], 2) in section.table  # bidirectional test F1 / accuracy, in percent
    assert spread([70.0, 70.1, 70.2], 2) in section.table
    assert "conll2000: bidirectional is ahead by 20.00 chunk F1" in section.conclusion
    assert "the same direction" in section.conclusion and "disagree" not in section.conclusion
    flipped = reported(bidirectional, tmp_path, flip=True)
    assert "conll2000: unidirectional is ahead by 20.00" in flipped.conclusion
    assert "here we disagree with them" in flipped.conclusion and "contradicts the claim" in flipped.conclusion


def test_attention_length_report(tmp_path, data_dirs):
    section = reported(attention_length, tmp_path)
    assert "| 5 | 10 | 15 |" in section.table and "| 1-8 | 9-12 |" in section.table
    assert spread([90.0, 90.1, 90.2]) in section.table  # dates / reversal test exact match, attention
    assert spread([5.0, 6.0, 7.0]) in section.table  # reversal's fixed context at length 50
    assert "Attention holds up better with length on dates, reversal, multi30k (3 of 3)" in section.conclusion
    assert "from length 1-8 to 21-25" in section.conclusion  # 26+ holds 2 sentences: left out of the verdict
    flipped = reported(attention_length, tmp_path, flip=True)
    assert "none of the sets" in flipped.conclusion
    assert flipped.conclusion.count("here we disagree with the paper") == 3


def test_attention_length_measures_no_fall_where_nothing_was_learned(tmp_path, data_dirs):
    results = fabricated(attention_length, tmp_path)
    for row in results["dates_by_length"].metrics["scores"].values():
        row.update({length: 0.5 for length in row})
    sign, text = attention_length.verdict(results, attention_length.SETTINGS[0])
    assert sign == 0 and "too little learned to measure a fall" in text


def test_equal_time_report(tmp_path, data_dirs):
    section = reported(equal_time, tmp_path)
    assert spread([2.1, 2.099, 2.098], 3) in section.table  # the Transformer's val loss
    assert spread([32.0], 2) in section.table  # the Transformer's Multi30k BLEU (one seed)
    assert spread([90.0, 90.1, 90.2], 2) in section.table  # fine-tuned accuracy
    for fragment in ("the Transformer is ahead by 0.200 nats", "That agrees with the claim",
                     "the published order (28.3 < 36.5) holds", "pretraining helped"):
        assert fragment in section.conclusion
    flipped = reported(equal_time, tmp_path, flip=True)
    for fragment in ("the LSTM is ahead by 0.200 nats", "There we disagree with the claim",
                     "does not hold here: we disagree", "pretraining did not help here"):
        assert fragment in flipped.conclusion


def test_a_pretraining_lead_within_the_seed_spread_is_not_called_help(tmp_path, data_dirs):
    results = fabricated(equal_time, tmp_path)
    for seed, accuracy in enumerate([0.80, 0.76, 0.79]):  # scratch 78.3 ± 2.1; fine-tuned 90.1 ± 0.1 -> 79.6 ± 0.2
        results[f"sst2_scratch_s{seed}"].metrics["test/accuracy"] = accuracy
        results[f"sst2_finetune_s{seed}"].metrics["test/accuracy"] = 0.794 + 0.002 * seed
    verdict = equal_time.pretraining_verdict(results)
    assert "within it" in verdict and "within the noise of the seeds" in verdict and "helped" not in verdict


def test_lead_weighs_the_difference_against_the_seed_spread():
    assert lead("a", [2.0, 2.2], "b", [1.0, 1.2], "pts") == (1, "a is ahead by 1.0 pts (seed spread ±0.1: beyond it)")
    assert lead("a", [1.0, 3.0], "b", [1.5, 2.0], "pts")[1].endswith("(seed spread ±1.4: within it)")
    assert lead("a", [1.0], "b", [1.2], "nats", lower_is_better=True)[0] == 1
    assert lead("a", [1.0], "b", [1.0], "pts")[0] == 0
    assert beyond_spread([2.0, 2.2], [1.0, 1.2]) and not beyond_spread([1.0, 3.0], [1.5, 2.0])
    assert not beyond_spread([2.0], [1.0])  # one seed each: nothing to weigh the difference against


# --- the length script's JSON, on a tiny reversal model (generated data) ----------------------
def test_length_experiment_writes_the_json_the_report_reads(tmp_path):
    cfg = compose_config(["experiment=reversal_seq2seq", "trainer.max_time=null", "trainer.max_steps=2",
                          "trainer.eval_every=2", "model.hidden_size=8", "model.embedding_dim=8", "model.maxout_size=8",
                          "dataset.train_size=64", "dataset.val_size=16", "dataset.test_size=16",
                          "trainer.num_threads=1", "trainer.progress=false"])
    train(cfg, tmp_path / "run")
    length_experiment.main(["--run", f"fixed_s0={tmp_path}/run/checkpoints/best.pt", "--lengths", "5", "7",
                            "--size", "4", "--out", str(tmp_path / "by_length.png"),
                            "--metrics-json", str(tmp_path / "metrics.json")])
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["metric"] == "exact match (%)"
    assert list(written["scores"]["fixed_s0"]) == ["5", "7"] and written["sizes"]["fixed_s0"] == {"5": 4, "7": 4}
    assert (tmp_path / "by_length.png").exists()
