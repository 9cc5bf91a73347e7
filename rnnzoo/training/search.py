"""Hyperparameter search, the Hydra way: `rnnzoo train --multirun hparams_search=NAME`.

A search config (configs/hparams_search/NAME.yaml, as in lightning-hydra-template) switches
Hydra's sweeper to the Optuna plugin (hydra-optuna-sweeper; Akiba et al. 2019, "Optuna: A
Next-generation Hyperparameter Optimization Framework"), whose sampler (TPE: Bergstra et al.
2011, "Algorithms for Hyper-Parameter Optimization") picks each trial's overrides; every trial
is one job of the multirun, with its own run folder `<sweep dir>/<trial number>`. What rnnzoo
adds to the plugin:

    objective(cfg, final)   what a trial returns to the sweeper: the task's monitored validation
                            metric (`Task.monitor`, the one that picks best.pt), of the best
                            checkpoint: `final["val/<monitor>"]`, as in the trial's metrics.json
    SearchCallback          a Hydra callback (configs/train.yaml): before the first trial, the
                            search's `direction` (and `optimized_metric`, where given) must agree
                            with the task's, and the sweep folder must hold no other search;
                            after the last, one line names the best trial
    in_search()             inside a trial: a failing trial raises to Hydra, which records it as
                            failed, and Optuna marks it FAIL (rnnzoo.cli._guarded)

A trial that fails (a diverged run, a configuration the model refuses) is left to the
sweeper's failure handling: Optuna records it as failed, TPE ignores it, and the search goes on
as long as `max_failure_rate` allows (1.0 in rnnzoo's search configs: never stop).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

from ..errors import RnnzooError

OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
DIRECTIONS = {"max": "maximize", "min": "minimize"}  # Task.monitor_mode -> Optuna's direction


@dataclass(frozen=True)
class Monitor:
    """The metric a run's best checkpoint is picked by, as metrics.json names it, and its mode."""

    task: str
    metric: str  # "val/accuracy"
    mode: str  # "max" or "min"

    def better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b


@dataclass(frozen=True)
class Trial:
    """One trial's run folder, read back: its number, the searched overrides, its objective
    (None: the trial failed or left no finite value)."""

    number: int
    folder: Path
    params: dict[str, str]
    value: float | None


# --- inside a trial ---------------------------------------------------------------------------
def in_search() -> bool:
    """Whether this job is a trial of an Optuna search (not a plain run or a grid `--multirun`)."""
    hydra = _multirun_job()
    return hydra is not None and is_search(hydra)


def is_search(hydra: DictConfig) -> bool:
    """Whether a `hydra` config node runs the Optuna sweeper."""
    return str(OmegaConf.select(hydra, "sweeper._target_", default="")) == OPTUNA_SWEEPER


def _multirun_job() -> DictConfig | None:
    """Hydra's own config of this job if it is one of a `--multirun`, else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return HydraConfig.get()


def objective(cfg: DictConfig, final: dict[str, Any]) -> float | None:
    """The value this job returns to Hydra: under `--multirun`, the monitored validation metric
    of the run's best checkpoint (what Optuna optimizes); None in a single run."""
    if _multirun_job() is None:
        return None
    value = final.get(monitored(cfg).metric)
    return float(value) if value is not None else math.nan  # NaN: Optuna records a failed trial


def monitored(cfg: DictConfig | dict[str, Any]) -> Monitor:
    """The run's task's monitored metric and mode. The task is built from its config (cheap:
    a task reads no data when built), since a task may choose its metric from its options
    (translation's `monitor=auto`); tagging reads its tag set to tell chunk tags (f1) from others."""
    from ..build import make_task
    from ..run_config import RunConfig, plain

    run = RunConfig.of(plain(job_config(cfg)))
    task = make_task(run, None)
    return Monitor(run.task_name, f"val/{task.monitor}", task.monitor_mode)


def job_config(config: DictConfig | dict[str, Any]) -> DictConfig | dict[str, Any]:
    """`config` without Hydra's own node (its `${now:}` and `${hydra:}` need a running Hydra)."""
    if isinstance(config, DictConfig) and "hydra" in config:
        return OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    return config


# --- before the first trial and after the last ------------------------------------------------
def check_search(config: DictConfig) -> Monitor:
    """The search optimizes what the task monitors, in the task's direction; its sweep folder
    holds no other search (unless overwrite=true). Mistakes are one line before any trial."""
    monitor = monitored(config)
    direction = config.hydra.sweeper.direction
    if isinstance(direction, (list, tuple, ListConfig)):
        raise RnnzooError(f"hydra.sweeper.direction={list(direction)}: a search has one objective, the "
                          f"task's monitored {monitor.metric}: set direction: {DIRECTIONS[monitor.mode]}")
    direction = getattr(direction, "name", str(direction))
    if direction != DIRECTIONS[monitor.mode]:
        raise RnnzooError(f"hydra.sweeper.direction={direction}, but task '{monitor.task}' picks its best "
                          f"checkpoint by {monitor.metric}, where {'higher' if monitor.mode == 'max' else 'lower'}"
                          f" is better: set direction: {DIRECTIONS[monitor.mode]}")
    wanted = config.get("optimized_metric")
    if wanted is not None and wanted != monitor.metric:
        raise RnnzooError(f"optimized_metric={wanted}, but task '{monitor.task}' picks its best checkpoint by "
                          f"{monitor.metric}: the search optimizes that (set optimized_metric: {monitor.metric})")
    check_sweep_folder(Path(str(config.hydra.sweep.dir)), bool(config.get("overwrite", False)))
    return monitor


def check_sweep_folder(folder: Path, overwrite: bool) -> None:
    """A search writes its trials into `<folder>/<number>`: a folder holding another search's
    trials is refused (as a run folder holding a run is), unless overwrite=true."""
    from .run_folder import RunFolderError, holds_run

    if overwrite or not folder.is_dir():
        return
    held = sorted(p.name for p in folder.iterdir() if p.is_dir() and holds_run(p))
    if held or (folder / "optimization_results.yaml").exists():
        raise RunFolderError(f"{folder} holds another search (trials: {', '.join(held) or 'none'}): choose "
                             "another hydra.sweep.dir, or overwrite=true to replace its trials")


def read_trials(sweep_dir: Path, metric: str, searched: list[str]) -> list[Trial]:
    """Every trial folder of a sweep, by number, with the searched overrides it ran with and its
    value of `metric` from metrics.json (None where it failed or diverged)."""
    trials = []
    for folder in sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)):
        overrides = folder / ".hydra" / "overrides.yaml"
        given = [str(o) for o in OmegaConf.load(overrides)] if overrides.is_file() else []
        params = {key: value for key, _, value in (o.partition("=") for o in given) if key in searched}
        trials.append(Trial(int(folder.name), folder, params, _value(folder / "metrics.json", metric)))
    return trials


def _value(path: Path, metric: str) -> float | None:
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    value = metrics.get(metric)
    return None if metrics.get("diverged") or value is None or not math.isfinite(value) else float(value)


def best_trial(trials: list[Trial], monitor: Monitor) -> Trial | None:
    """The first trial with the best value (as Optuna's `best_trial`); None if none finished."""
    best = None
    for trial in trials:
        if trial.value is not None and (best is None or monitor.better(trial.value, best.value)):
            best = trial
    return best


def summary(trials: list[Trial], monitor: Monitor, sweep_dir: Path) -> str:
    """One line: 'best of 10 trials (1 failed): val/accuracy 0.8263 at trial 7 (trainer.lr=...);
    folder multirun/.../7'."""
    failed = sum(trial.value is None for trial in trials)
    count = f"{len(trials)} trial{'s' if len(trials) != 1 else ''}" + (f" ({failed} failed)" if failed else "")
    best = best_trial(trials, monitor)
    if best is None:
        return f"no trial of {len(trials)} finished; folder {sweep_dir}"
    params = ", ".join(f"{key}={_short(value)}" for key, value in best.params.items())
    return f"best of {count}: {monitor.metric} {best.value:.4f} at trial {best.number} ({params}); folder {best.folder}"


def _short(value: str) -> str:
    """An override's value as Optuna wrote it (`0.0012345678901`), to 4 significant digits."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "." not in value else f"{number:.4g}"


class SearchCallback(Callback):
    """configs/train.yaml's Hydra callback for `--multirun hparams_search=NAME`: the checks of
    `check_search` before the first trial, the summary line after the last. Does nothing in
    single runs and grid sweeps."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from ..cli import _fail  # Hydra turns a callback's exception into a warning: exit here

        if is_search(config.hydra):
            try:
                check_search(config)
            except RnnzooError as error:
                _fail(error)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_search(config.hydra):
            return
        monitor = monitored(config)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        trials = read_trials(sweep_dir, monitor.metric, searched_keys(config))
        print(summary(trials, monitor, sweep_dir), flush=True)


def searched_keys(config: DictConfig) -> list[str]:
    """The keys a search varies: its config's `params`, and command-line sweeps
    (`trainer.lr=interval(1e-4,1e-2)`), which the Optuna sweeper searches as well."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    given = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    return [*(config.hydra.sweeper.get("params") or {}),
            *(o.key_or_group for o in given if o.is_sweep_override())]


def check_command(overrides: list[str]) -> None:
    """`hparams_search=NAME` without `--multirun` would train once at the search's budget,
    searching nothing: refused (`--cfg` and `--info`, which only show the config, are fine)."""
    chosen = [o for o in overrides if o.startswith("hparams_search=") and o != "hparams_search=null"]
    if chosen and not {"--multirun", "-m", "--cfg", "-c", "--info", "-i"} & set(overrides):
        raise RnnzooError(f"{chosen[0]} runs a search of many trials: add --multirun "
                          f"(rnnzoo train --multirun {chosen[0]})")
