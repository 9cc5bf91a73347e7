"""Where the configs live, and how Hydra learns the registries' typed configs.

Each registered model, task and dataset has a config dataclass. At start-up we store it in
Hydra's ConfigStore as the group option `<group>/<name>` (with a `name` field holding the
registry key), so `model=lstm` needs no YAML file; a registered variant (`model=bert_mini`,
see Registry.register_variant) is stored the same way, from its base's config at the variant's
defaults, named as its base. The trainer's is `trainer/default`.

So every option exists with its type and default: `model.num_layers=2` works,
`model.num_layer=2` is an error naming the key, and `model.hidden_size=big` is an error naming
the key and the type.

A YAML file `configs/<group>/<name>.yaml` takes the place of the stored option where it says
more than the dataclass: a task's default dataset (configs/task/translation.yaml). It starts
from the same config stored as `<name>_schema`:

    defaults:
      - /task/translation_schema@task
      - override /dataset: dates
      - _self_
"""

from __future__ import annotations

import dataclasses
import difflib
import threading
from importlib import resources
from pathlib import Path
from typing import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from .registry import DATASETS, MODELS, TASKS, Registry, load_registries
from .training.config import TrainerConfig

GROUPS: dict[str, Registry] = {"model": MODELS, "task": TASKS, "dataset": DATASETS}
YAML_GROUPS = ("hparams_search",)  # groups of YAML configs alone, no registry behind them
_HYDRA = threading.Lock()  # Hydra's compose API keeps global state: one composition at a time


def config_dir() -> Path:
    """The `configs/` folder: inside the installed package, else beside it in a checkout."""
    packaged = Path(str(resources.files("rnnzoo"))) / "configs"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / "configs"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"rnnzoo's configs are in neither {packaged} nor {checkout}")


def schema_with_name(name: str, config: type | None) -> type:
    """The registry's config dataclass plus a `name` field holding the registry key."""
    bases = (config,) if config is not None else ()
    return dataclasses.make_dataclass(f"{name}_schema", [("name", str, dataclasses.field(default=name))],
                                      bases=bases)


_STORED: dict[tuple[str, str], type | None] = {}  # what the ConfigStore holds, by (group, option)


def register_schemas() -> None:
    """Store every registered config and variant in Hydra's ConfigStore: those registered since
    the last call (a model registered at run time, say) or registered anew."""
    load_registries()
    wanted = {("trainer", "trainer_schema"): TrainerConfig, ("trainer", "default"): TrainerConfig}
    for group, registry in GROUPS.items():
        files = set(yaml_choices(group))
        for name, entry in [*((e.name, e) for e in registry), *registry.variants().items()]:
            wanted[group, f"{name}_schema"] = entry
            if name not in files:  # a YAML file of the name takes its place (Hydra would warn of both)
                wanted[group, name] = entry
    store = ConfigStore.instance()
    for (group, name), entry in wanted.items():
        config = entry if entry is TrainerConfig else entry.config
        if _STORED.get((group, name), False) is not config:
            node = config if entry is TrainerConfig else schema_with_name(entry.name, entry.config)
            store.store(group=group, name=name, node=node)
            _STORED[group, name] = config


def yaml_choices(group: str) -> list[str]:
    """The YAML configs of a group, by name."""
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def unknown_yaml_choice(group: str, name: str) -> str:
    """`hparams_search=sst2_bilstn`: the message naming the YAML configs of the group."""
    choices = yaml_choices(group)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f"; did you mean: {', '.join(close)}?" if close else ""
    return f"unknown {group} '{name}'{hint} choices: {', '.join(choices)} (configs/{group}/*.yaml)"


def group_choices(group: str) -> list[str]:
    """What `model=NAME` (task=, dataset=) may say: registered names, variants, YAML configs."""
    registry = GROUPS[group]
    return sorted({*registry.names(), *registry.variants(), *yaml_choices(group)})


def compose_train(overrides: Sequence[str], name: str = "train") -> DictConfig:
    """The config `rnnzoo train OVERRIDES` composes (without Hydra's own `hydra.*` node)."""
    register_schemas()
    with _HYDRA, initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))
