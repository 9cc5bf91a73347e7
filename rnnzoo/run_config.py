"""A run's config, typed once: the plain dict Hydra composed in, `RunConfig` out.

Every section is checked against its dataclass here, before any data is read or any folder
written, so a mistake is one line naming the key. The plain dict travels with the typed
sections because it is what a run saves in its checkpoints: building writes into it the model
it really built (a variant chosen for the task, a pretrained architecture), so the checkpoint
rebuilds that very network.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .errors import RnnzooError
from .registry import DATASETS, MODELS, TASKS, Entry, load_registries
from .training.config import TrainerConfig, check_trainer_config

SECTIONS = ("model", "task", "dataset", "trainer")


@dataclass
class RunConfig:
    """The model, task, dataset and trainer configs as their dataclasses, the run's own options,
    and `values`, the plain config they came from (what checkpoints save)."""

    values: dict[str, Any]
    model: Any
    task: Any
    dataset: Any
    trainer: TrainerConfig
    seed: int = 0
    resume: str | None = None
    overwrite: bool = False

    @classmethod
    def of(cls, values: dict[str, Any]) -> RunConfig:
        """Type and check a plain run config (see `plain`); `values` is kept, not copied."""
        load_registries()
        required_given(values)
        model_entry = MODELS.entry(values["model"]["name"])
        task_entry = TASKS.entry(values["task"]["name"])
        dataset_entry = DATASETS.entry(values.get("dataset", {}).get("name", "synthetic"))
        run = cls(values,
                  model=model_entry.make_config(values["model"], where="model"),
                  task=task_entry.make_config(values["task"], where="task"),
                  dataset=dataset_entry.make_config(values.get("dataset"), where="dataset"),
                  trainer=trainer_config(values.get("trainer", {})),
                  seed=int(values.get("seed", 0)), resume=values.get("resume"),
                  overwrite=bool(values.get("overwrite", False)))
        check_task_reads(task_entry, dataset_entry)
        return run

    @property
    def model_name(self) -> str:
        return self.values["model"]["name"]

    @property
    def task_name(self) -> str:
        return self.values["task"]["name"]

    @property
    def dataset_values(self) -> dict[str, Any]:
        """The dataset section as given: tasks read their data sources from it by name."""
        return dict(self.values.get("dataset") or {})


def plain(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """A resolved plain-dict copy of a run config, without Hydra's own section."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    data.pop("hydra", None)
    return data


def required_given(values: dict[str, Any]) -> None:
    """A `???` the recipe requires must be given: merged onto a schema default it would vanish."""
    for section in SECTIONS:
        for key, value in (values.get(section) or {}).items():
            if value == "???":
                raise RnnzooError(f"{section}.{key} is required here (the config says ???): give {section}.{key}=...")


def check_task_reads(task_entry: Entry, dataset_entry: Entry) -> None:
    """The task can read this kind of data (token streams, parallel pairs...)."""
    reads = task_entry.target.reads
    if not dataset_entry.traits & reads:
        fitting = [d.name for d in DATASETS if d.traits & reads]
        raise RnnzooError(f"task '{task_entry.name}' cannot read dataset '{dataset_entry.name}' "
                          f"({', '.join(sorted(dataset_entry.traits)) or 'no kind'} data); "
                          f"datasets it reads: {', '.join(fitting)}")


def trainer_config(values: dict[str, Any]) -> TrainerConfig:
    """`trainer.*` typed, range-checked, and checked as a whole (options that exclude each other)."""
    config = Entry("trainer", TrainerConfig, TrainerConfig).make_config(values, where="trainer")
    try:
        check_trainer_config(config)
    except ValueError as error:
        raise RnnzooError(str(error)) from None
    return config


def check_run_options(config: Any) -> None:
    """train.yaml's own options, which no config dataclass types: `seed=x` or `overwrite=maybe`
    (a string, which would count as true) is one line here, not a traceback or a lost run."""
    seed, overwrite, resume = config.get("seed", 0), config.get("overwrite", False), config.get("resume")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**64:  # torch's range
        raise RnnzooError(f"seed={seed} is out of range: must be an integer in [0, 2**64)")
    if not isinstance(overwrite, bool):
        raise RnnzooError(f"overwrite={overwrite} must be true or false")
    if resume is not None and not isinstance(resume, str):
        raise RnnzooError(f"resume={resume} must be the path of a checkpoint (last.pt)")
