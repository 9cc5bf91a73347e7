"""`rnnzoo list`: what is registered, which model fits which task, and each one's options."""

from __future__ import annotations

import dataclasses

import numpy as np

from .errors import RnnzooError
from .models.traits import Fit, find_fit, model_traits
from .registry import DATASETS, MODELS, TASKS, help_text, load_registries, range_text
from .training.config import TrainerConfig

REGISTRIES = {"model": MODELS, "task": TASKS, "dataset": DATASETS}


def print_listing(args: list[str]) -> None:
    load_registries()
    if not args:
        print(overview())
        return
    for arg in args:
        kind, _, name = arg.partition("=")
        if kind == "cache":
            print(cached_corpora(name or None))
        elif kind == "trainer":
            print(options("trainer", TrainerConfig))
        elif kind in REGISTRIES and name:
            entry = REGISTRIES[kind].entry(name)
            print(f"{kind} {name}: {entry.summary}")
            print(options(f"{kind}.", entry.config) if entry.config else "  (no options)")
        else:
            raise RnnzooError(f"list takes model=NAME, task=NAME, dataset=NAME, trainer or cache[=DIR], got '{arg}'")


def options(prefix: str, config: type) -> str:
    """One line per option: key, type, default, allowed values (numbers: the range that
    `make_config` enforces), help."""
    section = prefix.rstrip(".") + "."
    ranges = {f.name: range_text(f) for f in dataclasses.fields(config)}
    rows = help_text(config)
    width = max(len(section) + len(name) for name, *_ in rows) + 1
    return "\n".join(f"  {section + name:<{width}} {kind:<14} {default!s:<10} {ranges[name]:<16} {text}"
                     for name, kind, default, text in rows)


def overview() -> str:
    lines = ["models:"]
    for entry in MODELS:
        traits = ", ".join(sorted(model_traits(entry.name)))
        lines.append(f"  {entry.name:<16} {entry.summary}  [{traits}]")
    lines.append("tasks:")
    for entry in TASKS:
        lines.append(f"  {entry.name:<16} {entry.summary}  [needs: {', '.join(sorted(entry.target.requires))}]")
    lines.append("datasets:")
    for entry in DATASETS:
        lines.append(f"  {entry.name:<16} {entry.summary}")
    lines.append("")
    lines.append("which model fits which task (y = with its defaults; * = with the options below):")
    tasks = TASKS.names()
    lines.append(f"  {'':<16} " + " ".join(f"{t:>12}" for t in tasks))
    fits = {(model, task): find_fit(task, model) for model in MODELS.names() for task in tasks}
    for model in MODELS.names():
        cells = " ".join(f"{_cell(fits[model, task]):>12}" for task in tasks)
        lines.append(f"  {model:<16} {cells}")
    lines += [f"  * {model} for {task}: {fit.overrides()}" for (model, task), fit in fits.items()
              if _cell(fit) == "*"]
    lines.append("")
    lines.append("options of one: rnnzoo list model=NAME | task=NAME | dataset=NAME | trainer")
    return "\n".join(lines)


def _cell(fit: Fit | None) -> str:
    return "-" if fit is None else "*" if fit.model or fit.task else "y"


# --- the token cache -------------------------------------------------------------------------
def cached_corpora(root: str | None = None) -> str:
    """`rnnzoo list cache[=DIR]`: every entry of the token cache, its contents and size."""
    from .data.cache import TokenCache

    cache = TokenCache(root)
    entries = cache.entries()
    if not entries:
        return f"token cache {cache.root}: empty"
    total = sum(_entry_bytes(entry.path) for entry in entries)
    return (f"token cache {cache.root}: {len(entries)} entries, {total / 1e6:.1f} MB (removing the folder is "
            f"always safe)\n" + cache_table([(entry.meta.get("label", "?"), entry) for entry in entries], False))


def cache_table(rows: list, show_state: bool = True) -> str:
    """One line per (name, cache entry): what it holds, its size, whether it was just built, where."""
    lines = []
    for name, entry in rows:
        meta = entry.meta
        if "task_state" in meta:
            held = "vocabularies"
        elif meta.get("kinds"):
            held = f"{meta['count']:,} examples"
        else:
            dtypes = ", ".join(np.dtype(a["dtype"]).name for a in meta["arrays"].values())
            held = f"{meta.get('count', 0):,} tokens ({dtypes})"
        state = ("written" if entry.built else "found") if show_state else ""
        lines.append((name, held, f"{_entry_bytes(entry.path) / 1e6:.1f} MB", state, str(entry.path)))
    widths = [max(len(row[i]) for row in lines) for i in range(4)]
    return "\n".join("  " + "  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths)) + "  " + row[4]
                      for row in lines)


def _entry_bytes(path) -> int:
    return sum(file.stat().st_size for file in path.iterdir() if file.is_file())
