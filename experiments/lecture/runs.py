"""Running an experiment's runs: each one `rnnzoo train ...` (or a script) in a folder of its own.

A run is finished when its folder holds `metrics.json`, `reproduce.json` records the same
command, and the config the command composes now agrees with the one the run recorded
(`.hydra/config.yaml`) on every setting both have: `make reproduce` run twice trains nothing
the second time, and a run interrupted halfway, whose command changed, or whose recipe was
edited since is trained again from scratch. (A setting only one side has is a new or removed
option, not an edit.) Code changes are not detected: after changing what a run computes, delete
the folders of the runs it should change. Runs go `jobs` at a time,
one thread each (2 jobs on the project's 2-core machines); a run waits for the runs it reads
(`after`), e.g. a length sweep for the checkpoints it evaluates.

Arguments may name folders: `{folder}` is the run's own, `{run:NAME}` another run's (of the same
experiment), so a script can read a checkpoint: `"--run", "attention={run:bahdanau}/checkpoints/best.pt"`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from omegaconf import OmegaConf

from rnnzoo.config import compose_train
from rnnzoo.errors import RnnzooError

from .. import ROOT  # the checkout: scripts/ and configs/ live here

DIVERGED = 3  # `rnnzoo train`'s exit status for a run that diverged (trainer.on_nan=skip), metrics.json written
PLACEHOLDER = re.compile(r"\{run:([^}]+)\}")


@dataclass(frozen=True)
class Run:
    """One run. `args` follow `python -m rnnzoo train` (Hydra overrides; seed and folder are
    added), or with `script` set, `python <script>` (relative to the checkout), which must write
    `metrics.json` into `{folder}`."""

    name: str
    args: tuple[str, ...]
    seed: int = 0
    script: str | None = None
    after: tuple[str, ...] = ()
    group: str | None = None  # the folder above the run's (default: the experiment's): runs of one group
    #                           with the same command are shared by the experiments that list them

    def command(self, folder: Path, folders: Mapping[str, Path]) -> list[str]:
        """The argv, placeholders filled in."""
        def fill(arg: str) -> str:
            arg = PLACEHOLDER.sub(lambda m: str(folders[m.group(1)]), arg)
            return arg.replace("{folder}", str(folder))

        args = [fill(a) for a in self.args]
        if self.script is not None:
            return [sys.executable, str(ROOT / self.script), *args]
        return [sys.executable, "-m", "rnnzoo", "train", *args, f"seed={self.seed}", "trainer.num_threads=1",
                "trainer.progress=false", f"hydra.run.dir={folder}"]


@dataclass
class Result:
    """A finished run: its folder, its metrics.json and the wall time it took (seconds)."""

    run: Run
    folder: Path
    metrics: dict[str, Any]
    seconds: float
    reused: bool = False


@dataclass
class Runner:
    """Executes runs under `root` (root/<experiment>/<run>), `jobs` at a time."""

    root: Path
    jobs: int = 2
    log: Any = field(default=print)

    def finished(self, experiment: str, runs: list[Run]) -> dict[str, Result]:
        """The runs already finished (same command), trained nothing: for a page from what is there."""
        check_runs(experiment, runs)
        folders = self.folders(experiment, runs)
        found = {r.name: self.reuse(r, folders[r.name], folders) for r in runs}
        return {name: result for name, result in found.items() if result is not None}

    def folders(self, experiment: str, runs: list[Run]) -> dict[str, Path]:
        return {r.name: self.root / (r.group or experiment) / r.name for r in runs}

    def execute(self, experiment: str, runs: list[Run]) -> dict[str, Result]:
        check_runs(experiment, runs)
        folders = self.folders(experiment, runs)
        results: dict[str, Result] = {}
        pending = list(runs)
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            running: dict[Future, Run] = {}
            while pending or running:
                for run in [r for r in pending if all(a in results for a in r.after)][:self.jobs - len(running)]:
                    pending.remove(run)
                    running[pool.submit(self.one, run, folders[run.name], folders)] = run
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    run = running.pop(future)
                    results[run.name] = future.result()  # a failed run raises here, naming its log
        return results

    def reuse(self, run: Run, folder: Path, folders: Mapping[str, Path]) -> Result | None:
        """The run's result if its folder holds a finished run of the same command, else None."""
        record = folder / "reproduce.json"
        if not (folder / "metrics.json").exists() or not record.exists():
            return None
        recorded = json.loads(record.read_text())
        command = run.command(folder, folders)
        if recorded.get("command") != command[1:]:
            return None
        edited = [] if run.script is not None else recipe_edits(folder, command)
        if edited:
            self.log(f"  {folder.parent.name}/{run.name}: its recipe changed since it ran "
                     f"({', '.join(edited[:4])}{', ...' if len(edited) > 4 else ''})")
            return None
        return Result(run, folder, read_metrics(folder), recorded["seconds"], reused=True)

    def one(self, run: Run, folder: Path, folders: Mapping[str, Path]) -> Result:
        reused = self.reuse(run, folder, folders)
        if reused is not None:
            return reused
        command = run.command(folder, folders)
        record = folder / "reproduce.json"
        if folder.exists():
            shutil.rmtree(folder)  # unfinished, or another command: from scratch
        folder.mkdir(parents=True)
        self.log(f"  run {folder.parent.name}/{run.name}")
        start = time.perf_counter()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        with open(folder / "reproduce.log", "w") as out:
            code = subprocess.call(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
        seconds = time.perf_counter() - start
        if code not in (0, DIVERGED) or not (folder / "metrics.json").exists():  # a diverged run is a result
            tail = (folder / "reproduce.log").read_text().strip().splitlines()[-5:]
            raise RnnzooError(f"run {folder} failed (exit {code}); its log {folder / 'reproduce.log'} ends:\n"
                              + "\n".join(tail))
        record.write_text(json.dumps({"command": command[1:], "seconds": round(seconds, 1)}, indent=1))
        return Result(run, folder, read_metrics(folder), seconds)


def recipe_edits(folder: Path, command: list[str]) -> list[str]:
    """The settings (dotted) on which the run's recorded config and what its train command composes
    now disagree; [] when the run recorded none."""
    recorded = folder / ".hydra" / "config.yaml"
    if not recorded.exists():
        return []
    overrides = [a for a in command[command.index("train") + 1:] if not a.startswith("hydra.")]
    now = OmegaConf.to_container(compose_train(overrides), resolve=False)
    return config_differences(OmegaConf.to_container(OmegaConf.load(recorded), resolve=False), now)


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys that both mappings hold with different values (a key only one holds is ignored)."""
    differences = []
    for key in sorted(old.keys() & new.keys()):
        a, b, name = old[key], new[key], f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            differences += config_differences(a, b, f"{name}.")
        elif a != b:
            differences.append(name)
    return differences


def read_metrics(folder: Path) -> dict[str, Any]:
    """metrics.json, with the nulls a diverged run writes for its NaN metrics read back as NaN."""
    metrics = json.loads((folder / "metrics.json").read_text())
    return {key: math.nan if value is None else value for key, value in metrics.items()}


def check_runs(experiment: str, runs: list[Run]) -> None:
    """Unique names, and every `after` and `{run:NAME}` naming a run of the experiment."""
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        repeated = sorted(n for n in names if names.count(n) > 1)
        raise RnnzooError(f"experiment {experiment}: run names repeat: {repeated}")
    for run in runs:
        for other in [*run.after, *(m for a in run.args for m in PLACEHOLDER.findall(a))]:
            if other not in names:
                raise RnnzooError(f"experiment {experiment}: run {run.name} reads run {other!r}, which does not exist")
            if other not in run.after:
                raise RnnzooError(f"experiment {experiment}: run {run.name} reads run {other!r}; list it in after=")
