"""Generic helpers for lecture experiments: seeds, run names, metrics over seeds, recipes, figures.

* Names: a configuration trained over seeds is the runs `<config>_s<seed>` (seeds 0, 1, 2 in
  full mode, 0 in quick mode; the convention of experiments.lecture.real_data too); `config_of`
  maps a run name back, `by_config` groups results, `values` and `cell` read one metric over
  the seeds of a configuration.
* Recipes: `recipe_value` reads a setting of configs/experiment/<recipe>.yaml, and `run_setting`
  a setting of one run (its override, else its recipe's), so a module can compute with the
  numbers its runs train with (a lag, a length) without repeating them.
* Run artifacts: `read_jsonl` for the line-per-record files runs write (grad_probe.jsonl).
  (A report reuses a script's functions by importing it: `from scripts import capacity_sweep`.)
* Figures: `save_figure` writes a matplotlib figure into the page's figure folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml
from omegaconf import OmegaConf

from rnnzoo.config import config_dir
from rnnzoo.errors import RnnzooError

from .report import spread
from .runs import Result, Run

FULL_SEEDS = (0, 1, 2)
QUICK_SEEDS = (0,)
SEED_SUFFIX = re.compile(r"_s(\d+)$")


def seeds(quick: bool) -> tuple[int, ...]:
    """The seeds of every configuration: three in full mode, one in quick mode."""
    return QUICK_SEEDS if quick else FULL_SEEDS


def over_seeds(config: str, args: Sequence[str], quick: bool, script: str | None = None) -> list[Run]:
    """One run of `args` per seed, named `<config>_s<seed>`."""
    return [Run(f"{config}_s{seed}", tuple(args), seed=seed, script=script) for seed in seeds(quick)]


def config_of(name: str) -> str:
    """The configuration a run name belongs to: `lstm_s2` -> `lstm`."""
    return SEED_SUFFIX.sub("", name)


def by_config(results: Mapping[str, Result]) -> dict[str, list[Result]]:
    """Results grouped by configuration, in the order the runs were listed, each group by seed."""
    groups: dict[str, list[Result]] = {}
    for name, result in results.items():
        groups.setdefault(config_of(name), []).append(result)
    return {config: sorted(group, key=lambda r: r.run.seed) for config, group in groups.items()}


def values(results: Mapping[str, Result], config: str, key: str, scale: float = 1.0) -> list[float]:
    """Metric `key` of every run of `config`, seed by seed, times `scale`."""
    group = by_config(results).get(config, [])
    found = [float(r.metrics[key]) * scale for r in group if key in r.metrics]
    if not found:
        raise RnnzooError(f"no run of {config!r} has a metric {key!r} (runs: {sorted(results)})")
    return found


def cell(results: Mapping[str, Result], config: str, key: str, scale: float = 1.0, digits: int = 1) -> str:
    """A table cell: metric `key` of `config` over seeds, as 'm ± s (n)'."""
    return spread(values(results, config, key, scale), digits)


def recipe_value(recipe: str, key: str) -> Any:
    """Setting `key` (dotted, e.g. 'task.delay') of configs/experiment/<recipe>.yaml, or of a
    fragment the recipes share when named from the configs' root ('/shared/sst2_bert')."""
    path = config_dir() / (recipe.lstrip("/") if recipe.startswith("/") else f"experiment/{recipe}")
    path = path.with_name(path.name + ".yaml")
    absent = object()
    value = OmegaConf.select(OmegaConf.load(path), key, default=absent)
    if value is absent:
        raise RnnzooError(f"{path} sets no {key}")
    return value


def run_setting(run: Run, key: str) -> Any:
    """Setting `key` of a training run: its own `key=value` override, else its recipe's
    (the `experiment=` among its arguments)."""
    for arg in reversed(run.args):
        if arg.startswith(f"{key}="):
            return yaml.safe_load(arg.split("=", 1)[1])  # as Hydra reads it: 4 -> int, null -> None
    recipe = next((a.split("=", 1)[1] for a in run.args if a.startswith("experiment=")), None)
    if recipe is None:
        raise RnnzooError(f"run {run.name} sets no {key} and names no recipe")
    return recipe_value(recipe, key)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file, one per non-empty line."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def save_figure(figure: Any, figures: Path, name: str) -> str:
    """Save a matplotlib figure as figures/name, close it, and return name (for Section.figures)."""
    from rnnzoo.plotting import pyplot

    figures.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(figures / name, dpi=120)
    pyplot().close(figure)
    return name
