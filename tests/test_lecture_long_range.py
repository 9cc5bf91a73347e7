"""experiments.lecture.long_range: its runs compose, and its report reads fabricated run folders into
tables, solved counts, a conclusion computed from the numbers and a figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.lecture import Result, long_range
from experiments.lecture.common import config_of

from .conftest import compose_config

EXPERIMENT = long_range.EXPERIMENT


@pytest.mark.parametrize("quick", [True, False])
def test_runs_have_unique_names_and_compose(quick):
    runs = EXPERIMENT.runs(quick)
    assert len({r.name for r in runs}) == len(runs)
    for run in {r.args: r for r in reversed(runs)}.values():  # the seeds of a configuration share its args
        config = compose_config([*run.args, f"seed={run.seed}"])
        task, variant, lag = lag_of(run.name)
        assert config.task.name == task and config.trainer.max_time is None and config.trainer.max_steps > 0
        assert (config.task.length if task == "adding" else config.task.delay) == lag
        assert config.model.name == {"irnn": "elman"}.get(variant, variant.split("_")[0])
        if variant == "lstm_chrono":
            assert config.model.init == "chrono"
            assert config.model.chrono_max_lag == lag + (config.task.length if task == "copy" else 0)
        if variant == "irnn":
            assert (config.model.init, config.model.nonlinearity) == ("identity", "relu")
        if variant == "lstm_fb0":
            assert config.model.forget_bias == 0
        if quick:
            assert config.trainer.max_steps <= 20 and run.seed == 0
        else:  # a diverging run skips its NaN batches without a step: the epochs bound it at the same budget
            assert config.trainer.on_nan == "skip"
            assert config.trainer.max_epochs * config.task.batches_per_epoch == config.trainer.max_steps


def test_full_mode_seeds_and_grid():
    seeds: dict[str, set[int]] = {}
    for run in EXPERIMENT.runs(False):
        seeds.setdefault(config_of(run.name), set()).add(run.seed)
    for config, found in seeds.items():
        assert found == ({0} if config.startswith("adding_") and config.endswith("_T200") else {0, 1, 2}), config
    assert {c for c in seeds if c.startswith("adding_") and c.endswith("_T50")} == {
        f"adding_{v}_T50" for v in long_range.VARIANTS}
    assert compose_config(["experiment=lecture_copy"]).task.alphabet * long_range.chance_recall() == 1


def lag_of(name: str) -> tuple[str, str, int]:
    """'adding_lstm_chrono_T100_s2' -> ('adding', 'lstm_chrono', 100)."""
    head, lag = config_of(name).rsplit("_T", 1)
    task, variant = head.split("_", 1)
    return task, variant, int(lag)


# --- reports on fabricated runs -----------------------------------------------------------
#: the longest lag each variant solves (0: none), per task
SOLVES = {"adding": {"elman": 0, "irnn": 50, "jordan": 0, "lstm_fb0": 0, "lstm": 50, "lstm_chrono": 200,
                     "gru": 100},
          "copy": {"elman": 0, "jordan": 0, "lstm": 5, "lstm_chrono": 10, "gru": 20}}


def metrics(run, solves=SOLVES) -> dict:
    task, variant, lag = lag_of(run.name)
    solved = lag <= solves[task][variant] or (variant == "lstm_fb0" and lag == 50 and run.seed < 2)
    if task == "adding":
        mse = 0.002 + 0.001 * run.seed if solved else 0.16 + 0.001 * run.seed
        mse = float("nan") if (variant, lag) == ("irnn", 200) else mse  # diverged
        steps = (600 if variant == "lstm_chrono" else 1200) + 100 * run.seed if solved else 2000
        return {"test/mse": mse, "test/baseline_mse": 1 / 6, "train/steps": steps}
    return {"test/recall_accuracy": 1.0 if solved else 0.5 - lag / 100 + 0.01 * run.seed, "test/baseline_loss": 0.4,
            "train/steps": 1000 if solved else 2000}


def fabricate(tmp_path: Path, metrics=metrics) -> dict[str, Result]:
    results = {}
    for run in EXPERIMENT.runs(False):
        folder = tmp_path / "runs" / run.name
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(metrics(run)))
        results[run.name] = Result(run, folder, metrics(run), 10.0)
    return results


def test_report_tables_counts_and_figure(tmp_path):
    section = EXPERIMENT.report(fabricate(tmp_path), tmp_path / "figures", False)
    adding, copy = section.table.split("Copy memory")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in adding.splitlines() if line.startswith("| ")}
    # adding, LSTM: solves T = 50 (0.002, 0.003, 0.004), not 100; T = 200 has one seed
    assert rows["LSTM (forget bias 1, default)"].startswith(
        "| LSTM (forget bias 1, default) | 0.0030 ± 0.0010 (3), 3/3 solved | 0.1610 ± 0.0010 (3), 0/3 solved | "
        "0.1600, 0/1 solved |")
    assert "2/3 solved" in rows["LSTM, forget bias 0"]
    assert rows["IRNN (Elman, ReLU, W_hh = I)"].endswith("| 1 diverged, 0/1 solved |")
    assert rows["GRU"] == ("| GRU | 0.0030 ± 0.0010 (3), 3/3 solved | 0.0030 ± 0.0010 (3), 3/3 solved | 0.1600, 0/1 "
                           "solved |")
    # copy (percent): Elman at T = 20 recalls 30, 31, 32 (seeds 0, 1, 2)
    assert ("| Elman (tanh) | 46.0 ± 1.0 (3), 0/3 solved | 41.0 ± 1.0 (3), 0/3 solved | 31.0 ± 1.0 (3), 0/3 solved "
            "|") in copy
    assert "IRNN" not in copy  # copy runs the four models and chrono
    assert "as measured before (solves 50, stalls at 100)" in section.conclusion
    assert "The GRU solved T = 100 in 3/3 seeds, as measured before" in section.conclusion
    assert "LSTM, chrono up to T = 200" in section.conclusion
    assert "Elman (tanh) at none of the lags" in section.conclusion
    assert ("LSTM (forget bias 1, default) against LSTM, forget bias 0: 3 of 7 against 2 of 7 runs solved (no clear "
            "difference") in section.conclusion
    assert "IRNN (Elman, ReLU, W_hh = I) against Elman (tanh): 3 of 7 against 0 of 7 runs solved (it helps)" \
        in section.conclusion
    assert ("LSTM, chrono against LSTM (forget bias 1, default): 7 of 7 against 3 of 7 runs solved (it helps); at "
            "T = 50 its solved runs stopped after 700 steps against 1300") in section.conclusion
    assert "Chrono against the default LSTM: 100.0% against 100.0% at T = 5, 31.0% against 31.0% at T = 20." \
        in section.conclusion
    assert ("Diverged on the adding problem (NaN loss at Adam's 5e-3, counted unsolved): IRNN (Elman, ReLU, W_hh = I) "
            "at T = 200 (1 of 1).") in section.conclusion and "Diverged on copy" not in section.conclusion
    assert "GRU up to T = 20" in section.conclusion
    assert "falls from T = 5 to T = 20 for 4 of 5 models" in section.conclusion
    assert "one seed (0) at adding T = 200" in section.setup and "5 symbols of 8" in section.setup
    assert section.figures == [long_range.FIGURE] and (tmp_path / "figures" / long_range.FIGURE).is_file()


def test_conclusion_follows_the_numbers(tmp_path):
    solves = {"adding": {**SOLVES["adding"], "lstm": 100, "gru": 0}, "copy": SOLVES["copy"]}
    conclusion = long_range.conclusion(fabricate(tmp_path, lambda run: metrics(run, solves)))
    assert "here we disagree with 'solves T = 50, stalls at T = 100'" in conclusion
    assert "The GRU solved T = 100 in 0/3 seeds, so here we disagree" in conclusion
    assert "the GRU is not ten times below both" in conclusion
    assert "LSTM (forget bias 1, default) up to T = 100" in conclusion
    assert long_range.conclusion(fabricate(tmp_path / "other")) != conclusion
