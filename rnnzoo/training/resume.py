"""`resume=PATH` continues the run saved in PATH: its whole config comes from the checkpoint.

A resumed run is the same run, so its model, task, dataset, trainer settings and seed are the
checkpoint's (and its vocabularies and tokenizers: the task's state in the checkpoint). What
may change is how and how long it runs (`MAY_CHANGE`): budgets, evaluation and logging
intervals, device, processes, threads, precision, compilation. Any other key given with a
value other than the checkpoint's is refused, naming each key and both values.

Which keys were "given" needs care: a composed Hydra config holds every key, so a default
cannot be told from a value the user typed. The CLI passes the overrides typed on the
command line (`HydraConfig.get().overrides.task`); a group choice (`task=copy`) gives every
key of its section, and one that is not a section (`experiment=...`) every key. From Python,
`rnnzoo.api.train(cfg, ...)` without overrides compares every key of `cfg` that the checkpoint
has too, so a config composed with the same overrides as the first run resumes it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import RnnzooError

MAY_CHANGE = ("trainer.max_steps", "trainer.max_epochs", "trainer.max_time", "trainer.eval_every",
              "trainer.log_every", "trainer.progress", "trainer.grad_probe_every", "trainer.device",
              "trainer.devices", "trainer.num_threads", "trainer.precision", "trainer.compile")
RUN_KEYS = ("resume", "overwrite")  # about this invocation, not the run


class ResumeError(RnnzooError):
    """A resumed run given a setting that would make it another run."""


def resumed_config(given: Mapping[str, Any], saved: Mapping[str, Any], path: str | Path,
                   overrides: Iterable[str] | None = None) -> dict[str, Any]:
    """The config of the run that `path` continues: the checkpoint's `saved` config, with the
    `MAY_CHANGE` keys that were given; raises ResumeError naming every other given key whose
    value differs from the checkpoint's.

    `overrides`: the command line's (key=value, group=choice); None compares all of `given`."""
    mine, theirs = leaves(given), leaves(saved)
    keys = mine.keys() & theirs.keys() if overrides is None else given_keys(overrides, mine)
    keys -= set(RUN_KEYS)
    differ = sorted(k for k in keys if k not in MAY_CHANGE and mine.get(k, _ABSENT) != theirs.get(k, _ABSENT))
    if differ:
        shown = "; ".join(f"{k}={_show(mine.get(k, _ABSENT))} here but {_show(theirs.get(k, _ABSENT))} in the "
                          "checkpoint" for k in differ)
        raise ResumeError(f"resume={path}: {shown}; a resumed run keeps its config (may change: "
                          f"{', '.join(MAY_CHANGE)}); to train with other settings start a new run "
                          "(model.init_from= starts from its weights)")
    config = copy.deepcopy(dict(saved))
    for key in sorted(keys & set(MAY_CHANGE) & mine.keys()):
        _set(config, key, mine[key])
    config.update({key: given[key] for key in RUN_KEYS if key in given})
    return config


def given_keys(overrides: Iterable[str], config: Mapping[str, Any]) -> set[str]:
    """The dotted keys that command-line overrides set (see the module docstring)."""
    keys: set[str] = set()
    for override in overrides:
        key = override.partition("=")[0].lstrip("+~")
        if key.startswith("hydra.") or key.startswith("hydra/"):
            continue
        under = {k for k in config if k.startswith(key + ".")}
        if key in config:
            keys.add(key)
        elif under:
            keys |= under
        elif "." not in key:  # a group that is not a section (experiment=): it may set anything
            keys |= set(config)
        else:
            keys.add(key)
    return keys


def leaves(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"task.delay": 300, ...}: every value that is not a mapping, by dotted key."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _set(tree: dict[str, Any], key: str, value: Any) -> None:
    *sections, last = key.split(".")
    for section in sections:
        tree = tree.setdefault(section, {})
    tree[last] = value


class _Absent:
    def __repr__(self) -> str:
        return "(not set)"


_ABSENT = _Absent()


def _show(value: Any) -> str:
    """A value as it is typed on the command line (null, true)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value)
