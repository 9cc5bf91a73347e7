"""The reproduction machinery: runs in their folders, resumed, ordered, failing clearly; the page."""

from __future__ import annotations

import json
import sys

import pytest

from experiments.lecture import Run, Runner, markdown_table, spread
from experiments.lecture.report import Experiment, Section, render
from experiments.lecture.runs import ROOT
from rnnzoo.errors import RnnzooError

# a stand-in for a training run: writes metrics.json (value = its argument) and counts its executions
FAKE = """
import json, sys, pathlib
folder, value = pathlib.Path(sys.argv[1]), float(sys.argv[2])
if value < 0:
    sys.exit("negative value " + str(value))
with open(folder.parent / "count", "a") as count:  # one line per run: appends do not race (jobs=2)
    count.write("run\\n")
extra = sys.argv[3] if len(sys.argv) > 3 else ""
(folder / "metrics.json").write_text(json.dumps({"value": value, "read": extra}))
"""


@pytest.fixture
def fake(tmp_path):
    script = tmp_path / "fake.py"
    script.write_text(FAKE)
    return str(script)


def executions(tmp_path, experiment="exp") -> int:
    return len((tmp_path / "out" / experiment / "count").read_text().splitlines())


def test_runs_land_in_their_folders_and_are_not_repeated(tmp_path, fake):
    runner = Runner(tmp_path / "out", jobs=2, log=lambda _: None)
    runs = [Run("a", ("{folder}", "1.5"), script=fake), Run("b", ("{folder}", "2"), script=fake)]
    results = runner.execute("exp", runs)
    assert {name: r.metrics["value"] for name, r in results.items()} == {"a": 1.5, "b": 2.0}
    assert results["a"].folder == tmp_path / "out" / "exp" / "a" and not results["a"].reused
    again = runner.execute("exp", runs)
    assert executions(tmp_path) == 2 and all(r.reused for r in again.values())
    changed = runner.execute("exp", [Run("a", ("{folder}", "3"), script=fake)])  # a new command: run again
    assert changed["a"].metrics["value"] == 3.0 and executions(tmp_path) == 3


def test_an_unfinished_run_starts_again_from_scratch(tmp_path, fake):
    runner = Runner(tmp_path / "out", jobs=1, log=lambda _: None)
    folder = tmp_path / "out" / "exp" / "a"
    folder.mkdir(parents=True)
    (folder / "leftover").write_text("from a killed run")
    result = runner.execute("exp", [Run("a", ("{folder}", "1"), script=fake)])["a"]
    assert result.metrics["value"] == 1.0 and not (folder / "leftover").exists()


def test_a_run_reads_the_folders_of_the_runs_it_waits_for(tmp_path, fake):
    runs = [Run("sweep", ("{folder}", "0", "{run:model}"), script=fake, after=("model",)),
            Run("model", ("{folder}", "1"), script=fake, group="shared")]
    results = Runner(tmp_path / "out", jobs=2, log=lambda _: None).execute("exp", runs)
    assert results["sweep"].metrics["read"] == str(tmp_path / "out" / "shared" / "model")


def test_a_failed_run_names_its_log(tmp_path, fake):
    with pytest.raises(RnnzooError, match=r"(?s)run .*bad failed \(exit 1\).*reproduce.log.*negative value -1"):
        Runner(tmp_path / "out", jobs=1, log=lambda _: None).execute("exp", [Run("bad", ("{folder}", "-1"),
                                                                                 script=fake)])


@pytest.mark.parametrize("runs, message", [
    ([Run("a", ()), Run("a", ())], "run names repeat: \\['a', 'a'\\]"),
    ([Run("a", (), after=("b",))], "run a reads run 'b', which does not exist"),
    ([Run("a", ("{run:b}",)), Run("b", ())], "run a reads run 'b'; list it in after="),
])
def test_bad_run_lists_are_refused_before_anything_runs(tmp_path, runs, message):
    with pytest.raises(RnnzooError, match=message):
        Runner(tmp_path / "out").execute("exp", runs)
    assert not (tmp_path / "out").exists()


def test_a_train_run_is_rnnzoo_train_in_its_folder(tmp_path):
    command = Run("a", ("task=copy",), seed=3).command(tmp_path / "a", {})
    assert command[:4] == [sys.executable, "-m", "rnnzoo", "train"]
    assert {"task=copy", "seed=3", "trainer.num_threads=1", f"hydra.run.dir={tmp_path / 'a'}"} <= set(command)
    assert Run("s", ("x",), script="scripts/y.py").command(tmp_path, {})[1] == str(ROOT / "scripts/y.py")


def test_the_page_holds_every_section_with_its_numbers(tmp_path, fake):
    results = Runner(tmp_path / "out", log=lambda _: None).execute(
        "exp", [Run(f"s{seed}", ("{folder}", str(seed + 0.25)), seed=seed, script=fake) for seed in range(3)])
    values = [r.metrics["value"] for r in results.values()]
    section = Section(setup="three seeds", table=markdown_table(["metric", "value"], [["v", spread(values, 2)]]),
                      conclusion="it works", figures=["results/x.png"])
    experiment = Experiment("exp", "An experiment", "a claim", "a number", lambda quick: [], lambda *a: section)
    page = render([(1, experiment, section, results)], "python -m experiments.reproduce", False, 3.0)
    assert "## 1. An experiment" in page and "**Claim.** a claim" in page and "![An experiment](results/x.png)" in page
    assert "| v | 1.25 ± 1.00 (3) |" in page and "Seeds per configuration:\n3;" in page


def test_spread_of_one_seed_is_the_value_alone():
    assert spread([2.0]) == "2.0" and spread([1.0, 3.0], 0) == "2 ± 1 (2)"


def driver():
    from experiments import reproduce
    return reproduce


def test_the_driver_refuses_an_unknown_experiment(tmp_path):
    with pytest.raises(SystemExit, match="no experiment nonsense; the experiments are: gradients, long_range"):
        driver().main(["--only", "nonsense", "--out", str(tmp_path)])


def test_report_only_writes_the_page_without_training(tmp_path):
    page = tmp_path / "page.md"
    driver().main(["--report-only", "--only", "hopfield", "--out", str(tmp_path / "runs"), "--page", str(page)])
    assert "## 4. " in page.read_text() and "Not run yet: 3 of its 3 runs are missing" in page.read_text()
    assert not (tmp_path / "runs").exists()


def test_finished_lists_what_is_there_and_trains_nothing(tmp_path, fake):
    runner = Runner(tmp_path / "out", jobs=1, log=lambda _: None)
    runs = [Run("a", ("{folder}", "1"), script=fake), Run("b", ("{folder}", "2"), script=fake)]
    runner.execute("exp", runs[:1])
    assert list(runner.finished("exp", runs)) == ["a"] and executions(tmp_path) == 1
    assert runner.finished("exp", [Run("a", ("{folder}", "5"), script=fake)]) == {}  # another command: not it


def test_a_train_run_whose_recipe_changed_since_is_not_reused(tmp_path):
    from omegaconf import OmegaConf

    from rnnzoo.config import compose_train
    run, folder = Run("a", ("task=copy", "task.length=3")), tmp_path / "out" / "exp" / "a"
    (folder / ".hydra").mkdir(parents=True)
    (folder / "metrics.json").write_text('{"value": 1}')
    command = run.command(folder, {})
    (folder / "reproduce.json").write_text(json.dumps({"command": command[1:], "seconds": 1.0}))
    recorded = OmegaConf.to_container(compose_train([a for a in command[4:] if not a.startswith("hydra.")]))
    recorded["trainer"]["an_option_since_removed"] = 1  # a setting only one side has is no edit

    def reuse(logged):
        OmegaConf.save(recorded, folder / ".hydra" / "config.yaml")
        return Runner(tmp_path / "out", log=logged.append).reuse(run, folder, {})

    logged: list[str] = []
    assert reuse(logged).metrics == {"value": 1} and logged == []
    recorded["task"]["delay"] += 1  # as if configs/task/copy.yaml had said another delay when it ran
    recorded["trainer"]["lr"] *= 2
    assert reuse(logged) is None
    assert logged == ["  exp/a: its recipe changed since it ran (task.delay, trainer.lr)"]
