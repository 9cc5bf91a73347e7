"""`rnnzoo train --multirun hparams_search=NAME`: an Optuna search through the CLI, as a user runs
it (configs/hparams_search/debug_copy.yaml, a few steps of the copy task per trial), and the
pieces of rnnzoo.training.search on their own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from rnnzoo.errors import RnnzooError
from rnnzoo.training.checkpoint import load_checkpoint_file
from rnnzoo.training.search import Monitor, Trial, best_trial, check_sweep_folder, objective, summary

from .conftest import ROOT, run_cli
from .test_cli import one_line_error

METRIC = "val/recall_accuracy"  # what the copy task monitors (higher is better)
# 4 trials; hidden_size=0 is refused by the model's config, so some trials fail (the seeded
# sampler gives both kinds) and the search must go on past them.
SEARCH = ["train", "--multirun", "hparams_search=debug_copy", "hydra.sweeper.n_trials=4",
          "model.hidden_size=choice(0,16)", "trainer.max_steps=30", "trainer.eval_every=10", "trainer.num_threads=1"]


class RecordReturn(Callback):
    """A Hydra callback the tests add: writes what each trial returned to Hydra (the objective
    the sweeper hands Optuna) into the trial's folder, `returned.json` (null: the trial failed)."""

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        value = job_return.return_value if job_return.status.name == "COMPLETED" else None
        Path(config.hydra.runtime.output_dir, "returned.json").write_text(json.dumps(value))


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """The search's folder and its CLI result."""
    sweep_dir = tmp_path_factory.mktemp("search") / "sweep"
    result = run_cli(*SEARCH, f"hydra.sweep.dir={sweep_dir}",
                     f"+hydra.callbacks.record._target_={__name__}.RecordReturn", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return sweep_dir, result


def trial_folders(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def trial_params(folder: Path) -> dict[str, str]:
    overrides = OmegaConf.load(folder / ".hydra" / "overrides.yaml")
    return dict(str(o).split("=", 1) for o in overrides)


def returned(folder: Path) -> float | None:
    return json.loads((folder / "returned.json").read_text())


def test_each_trial_has_its_own_folder_and_parameters(search):
    sweep_dir, _result = search
    folders = trial_folders(sweep_dir)
    assert [p.name for p in folders] == ["0", "1", "2", "3"]
    assert len({trial_params(folder)["trainer.lr"] for folder in folders}) == 4


def test_the_objective_is_the_trials_best_validation_value(search):
    sweep_dir, _result = search
    completed = [folder for folder in trial_folders(sweep_dir) if returned(folder) is not None]
    assert completed
    for folder in completed:
        metrics = json.loads((folder / "metrics.json").read_text())
        assert returned(folder) == metrics[METRIC]  # the best checkpoint's value, exactly
        assert returned(folder) == load_checkpoint_file(folder / "checkpoints" / "best.pt")["best_metric"]


def test_a_failing_trial_does_not_stop_the_search(search):
    sweep_dir, result = search
    failed = {folder.name for folder in trial_folders(sweep_dir) if returned(folder) is None}
    assert failed and len(failed) < 4
    assert failed == {folder.name for folder in trial_folders(sweep_dir)
                      if trial_params(folder)["model.hidden_size"] == "0"}
    assert failed == {folder.name for folder in trial_folders(sweep_dir)
                      if f"error: trial {folder} failed, the search goes on" in result.stderr}


def test_results_and_a_summary_line_naming_the_best(search):
    sweep_dir, result = search
    values = {int(folder.name): returned(folder) for folder in trial_folders(sweep_dir)}
    best_value = max(v for v in values.values() if v is not None)
    best = min(n for n, v in values.items() if v == best_value)  # the first of equals, as Optuna
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert results.best_value == best_value
    assert float(results.best_params["trainer.lr"]) == float(trial_params(sweep_dir / str(best))["trainer.lr"])
    failed = sum(v is None for v in values.values())
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith(f"best of 4 trials ({failed} failed): {METRIC} {best_value:.4f} at trial {best} (")
    assert "model.hidden_size=16" in line and "trainer.lr=" in line
    assert line.endswith(f"; folder {sweep_dir / str(best)}")


def test_a_sweep_folder_holding_a_search_is_refused(search):
    sweep_dir, _result = search
    before = sorted(p.name for p in sweep_dir.iterdir())
    line = one_line_error(run_cli(*SEARCH, f"hydra.sweep.dir={sweep_dir}"))
    assert str(sweep_dir) in line and "overwrite=true" in line
    assert sorted(p.name for p in sweep_dir.iterdir()) == before


@pytest.mark.parametrize("args, message", [
    (["--multirun", "hparams_search=debug_cpy"], "unknown hparams_search 'debug_cpy'; did you mean: debug_copy?"),
    (["hparams_search=debug_copy"], "add --multirun"),
    (["--multirun", "hparams_search=debug_copy", "hydra.sweeper.direction=minimize"], "set direction: maximize"),
    (["--multirun", "hparams_search=debug_copy", "optimized_metric=val/loss"], f"set optimized_metric: {METRIC}"),
    (["--multirun", "hparams_search=debug_copy", "model.hidden_size=0"], "model.hidden_size=0 is out of range"),
])
def test_mistakes_are_one_line_before_any_trial(tmp_path, args, message):
    result = run_cli("train", *args, f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert result.returncode == 2
    assert message in one_line_error(result)
    assert not (tmp_path / "sweep").exists()


# --- the pieces, without a search ---------------------------------------------------------------
def trials(*values: float | None) -> list[Trial]:
    return [Trial(n, Path(f"sweep/{n}"), {"trainer.lr": f"0.00{n + 1}23456"}, v) for n, v in enumerate(values)]


def test_the_best_trial_follows_the_tasks_direction():
    lowest = Monitor("generation", "val/loss", "min")
    highest = Monitor("classification", "val/accuracy", "max")
    assert best_trial(trials(2.0, None, 1.5, 1.5), lowest).number == 2  # the first of equals, as Optuna
    assert best_trial(trials(0.7, 0.8, None), highest).number == 1
    assert best_trial(trials(None, None), highest) is None


def test_the_summary_line():
    monitor = Monitor("classification", "val/accuracy", "max")
    assert summary(trials(0.7, None, 0.8), monitor, Path("sweep")) == (
        "best of 3 trials (1 failed): val/accuracy 0.8000 at trial 2 (trainer.lr=0.003235); folder sweep/2")
    assert summary(trials(None), monitor, Path("sweep")) == "no trial of 1 finished; folder sweep"


def test_the_sweep_folder_check(tmp_path):
    check_sweep_folder(tmp_path / "new", overwrite=False)
    (tmp_path / "0").mkdir()
    check_sweep_folder(tmp_path, overwrite=False)  # Hydra's folders alone hold no run
    (tmp_path / "0" / "metrics.json").write_text("{}")
    with pytest.raises(RnnzooError, match="holds another search"):
        check_sweep_folder(tmp_path, overwrite=False)
    check_sweep_folder(tmp_path, overwrite=True)


def test_a_single_run_returns_nothing_to_hydra():
    assert objective(OmegaConf.create({}), {METRIC: 0.5}) is None


def test_a_search_where_every_trial_fails_ends_with_one_line(tmp_path):
    result = run_cli("train", "--multirun", "hparams_search=debug_copy", "model.hidden_size=choice(0,-1)",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert result.returncode == 2
    assert result.stderr.count("failed, the search goes on: model.hidden_size=") == 3
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: every trial of the search failed")
