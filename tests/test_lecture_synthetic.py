"""The lecture's synthetic experiments (experiments.lecture.gradients, tbptt, hopfield): their runs
compose, and their reports read fabricated run folders into tables, conclusions and figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from experiments.lecture import Result, Runner, gradients, hopfield, tbptt
from experiments.lecture.common import by_config, config_of, recipe_value, run_setting
from scripts import capacity_sweep

from .conftest import compose_config

MODULES = (gradients, tbptt, hopfield)


@pytest.mark.parametrize("quick", [True, False])
@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.EXPERIMENT.key)
def test_runs_have_unique_names_and_three_seeds_in_full_mode(module, quick):
    runs = module.EXPERIMENT.runs(quick)
    assert len({r.name for r in runs}) == len(runs)
    seeds: dict[str, set[int]] = {}
    for run in runs:
        seeds.setdefault(config_of(run.name), set()).add(run.seed)
    assert all(s == ({0} if quick else {0, 1, 2}) for s in seeds.values())


@pytest.mark.parametrize("quick", [True, False])
def test_training_runs_compose(quick):
    for args in {r.args for m in (gradients, tbptt) for r in m.EXPERIMENT.runs(quick)}:
        config = compose_config([*args, "seed=0"])
        assert config.trainer.max_time is None and config.trainer.max_steps > 0
        if "experiment=lecture_gradients" in args:
            assert config.task.name == "adding" and config.trainer.grad_probe_every > 0
            assert config.task.length == (20 if quick else 100)
        else:
            assert config.task.name == "copy" and config.model.name == "lstm"
            window, steps = config.trainer.tbptt_steps, 2 * config.task.length + config.task.delay
            assert config.trainer.accumulate == (1 if window is None else math.ceil(steps / window))


def test_capacity_runs_parse_with_the_script(tmp_path):
    parse = capacity_sweep.parse_args
    for run in hopfield.EXPERIMENT.runs(False):
        args = parse([a.replace("{folder}", str(tmp_path)) for a in run.args])
        assert (args.units, args.seeds, args.first_seed) == (200, 1, run.seed)
        assert args.metrics == tmp_path / "metrics.json"


def test_run_setting_reads_overrides_then_the_recipe():
    run = next(r for r in tbptt.EXPERIMENT.runs(False) if r.name == "full_s0")
    assert run_setting(run, "trainer.tbptt_steps") is None
    assert run_setting(run, "task.delay") == recipe_value("lecture_tbptt", "task.delay") == 8


# --- reports on fabricated runs -----------------------------------------------------------
def fabricate(tmp_path: Path, runs, metrics, files=lambda run: {}) -> dict[str, Result]:
    """A Result per run, its folder holding metrics.json (metrics(run)) and files(run)."""
    results = {}
    for run in runs:
        folder = tmp_path / "runs" / run.name
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(metrics(run)))
        for name, text in files(run).items():
            (folder / name).write_text(text)
        results[run.name] = Result(run, folder, metrics(run), 10.0)
    return results


# orders of magnitude lost per step, by model: Elman and Jordan vanish, the gated ones less so
RATES = {"elman": 0.13, "jordan": 0.2, "lstm": 0.09, "gru": 0.02}


def probe_lines(run, T: int = 100) -> str:
    rate = RATES[config_of(run.name)] + 0.01 * run.seed
    norms = [10 ** (-rate * (T - 1 - t)) for t in range(T)]
    if config_of(run.name) == "jordan":
        norms[0] = 0.0  # underflowed float32: the ratio is a bound
    return "\n".join(json.dumps({"step": step, "norms": norms}) for step in (20, 400)) + "\n"


def test_gradients_report_reads_the_probes(tmp_path):
    results = fabricate(tmp_path, gradients.EXPERIMENT.runs(False),
                        lambda run: {"test/mse": 0.1 + run.seed / 100, "test/baseline_ratio": 1.5},
                        lambda run: {"grad_probe.jsonl": probe_lines(run)})
    section = gradients.EXPERIMENT.report(results, tmp_path / "figures", False)
    # Elman: 0.13, 0.14, 0.15 orders a step over 99 steps: 13.9 on average
    assert "-13.9 ± 1.0 (3)" in section.table and "0.110 ± 0.010 (3)" in section.table
    assert "≤ " in section.table  # Jordan's bound
    assert "Jordan ≥ 20.6, Elman 13.9, LSTM 9.9, GRU 3.0" in section.conclusion
    assert "both gated nets lose fewer than both plain ones, by 4.0 at least" in section.conclusion
    assert "No model learned" in section.conclusion
    assert (tmp_path / "figures" / section.figures[0]).is_file()


def test_tbptt_report_reads_recall_by_window(tmp_path):
    recall = {"window4": 0.13, "window8": 0.12, "window12": 0.40, "window13": 0.70, "full": 0.99}
    results = fabricate(tmp_path, tbptt.EXPERIMENT.runs(False),
                        lambda run: {"test/recall_accuracy": recall[config_of(run.name)] + 0.01 * run.seed,
                                     "test/sequence_accuracy": 0.5, "train/steps": 2500})
    section = tbptt.EXPERIMENT.report(results, tmp_path / "figures", False)
    assert "| 12 | 2 | 0.33 | 0.417 | 0.410 ± 0.010 (3) |" in section.table
    assert "| full BPTT | 1 | 1.00 | 1.000 | 1.000 ± 0.010 (3) |" in section.table
    assert "Full BPTT recalls 1.000" in section.conclusion and "no better than guessing" in section.conclusion
    assert (tmp_path / "figures" / section.figures[0]).is_file()


def capacity_metrics(run) -> dict:
    """A sweep's metrics.json: Hebbian error-free up to 0.075, its overlap through 0.9 at 0.155; a
    modern net that never fails."""
    exact = {0.05: 1.0, 0.075: 0.995, 0.1: 0.8, 0.15: 0.5, 0.2: 0.0}
    overlap = {0.05: 1.0, 0.075: 1.0, 0.1: 0.98, 0.15: 0.94, 0.2: 0.5}
    point = lambda load, x, m: {"load": load, "patterns": round(load * 200), "exact_recall": [x],  # noqa: E731
                                "mean_overlap": [m]}
    return {"units": 200, "seeds": [run.seed], "probes": 500, "flip": 0.1, "steps": 20, "seconds": 1.0,
            "mceliece_load": 1 / (2 * math.log(200)), "ags_load": 0.138,
            "networks": {hopfield.HEBBIAN: [point(a, exact[a], overlap[a]) for a in exact],
                         hopfield.STORKEY: [point(a, 1.0, 1.0) for a in exact],
                         "modern, β=1": [point(a, 1.0, 1.0) for a in (1, 10, 200)]}}


def test_hopfield_report_merges_the_seeds(tmp_path):
    results = fabricate(tmp_path, hopfield.EXPERIMENT.runs(False), capacity_metrics)
    section = hopfield.EXPERIMENT.report(results, tmp_path / "figures", False)
    assert "| classic, Hebbian | 0.075 | 0.1 | 0.155 | 0.094 (McEliece et al.); 0.138 (Amit et al.) |" in section.table
    assert "| 0.075 | 15 | 0.995 ± 0.000 (3) | 1.000 ± 0.000 (3) |" in section.table
    assert "≥ 200 (every load measured)" in section.table
    assert "lies in between, as predicted" in section.conclusion and "1 of its 1 inverse" in section.conclusion
    assert (tmp_path / "figures" / section.figures[0]).is_file()


def test_hopfield_quick_mode_end_to_end(tmp_path):
    results = Runner(tmp_path / "out", jobs=1, log=lambda _: None).execute("hopfield", hopfield.EXPERIMENT.runs(True))
    assert set(by_config(results)) == {"sweep"}
    section = hopfield.EXPERIMENT.report(results, tmp_path / "figures", True)
    assert "classic, Hebbian" in section.table and "N = 50" in section.setup
    assert (tmp_path / "figures" / hopfield.FIGURE).is_file()
