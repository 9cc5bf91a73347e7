"""Where the configs live, and how Hydra learns the registries' typed configs.

Each registered model, task and dataset has a config dataclass. At start-up we store it in
Hydra's ConfigStore as `<group>/<name>_schema` (with a `name` field holding the registry
key), and `configs/<group>/<name>.yaml` starts from it:

    defaults:
      - lstm_schema
      - _self_
    hidden_size: 128

So every option exists with its type and default even when the YAML file does not list it:
`model.num_layers=2` works, `model.num_layer=2` is an error naming the key, and
`model.hidden_size=big` is an error naming the key and the type.
"""

from __future__ import annotations

import dataclasses
import threading
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from .registry import DATASETS, MODELS, TASKS, Registry, load_registries
from .training.config import TrainerConfig

GROUPS: dict[str, Registry] = {"model": MODELS, "task": TASKS, "dataset": DATASETS}
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


@cache
def register_schemas() -> None:
    """Store every registered config in Hydra's ConfigStore (once per process)."""
    load_registries()
    store = ConfigStore.instance()
    for group, registry in GROUPS.items():
        for entry in registry:
            store.store(group=group, name=f"{entry.name}_schema", node=schema_with_name(entry.name, entry.config))
    store.store(group="trainer", name="trainer_schema", node=TrainerConfig)


def group_choices(group: str) -> list[str]:
    """The YAML configs of a group, by name (what `model=NAME` may say)."""
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def compose_train(overrides: Sequence[str], name: str = "train") -> DictConfig:
    """The config `rnnzoo train OVERRIDES` composes (without Hydra's own `hydra.*` node)."""
    register_schemas()
    with _HYDRA, initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))
