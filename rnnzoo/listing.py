"""`rnnzoo list`: what is registered, which model fits which task, and each one's options."""

from __future__ import annotations

from .api import _load_registries, check_compatible
from .errors import IncompatibleError, RnnzooError
from .models.traits import model_traits
from .registry import DATASETS, MODELS, TASKS, help_text
from .training.config import TrainerConfig

REGISTRIES = {"model": MODELS, "task": TASKS, "dataset": DATASETS}


def print_listing(args: list[str]) -> None:
    _load_registries()
    if not args:
        print(overview())
        return
    for arg in args:
        kind, _, name = arg.partition("=")
        if kind == "trainer":
            print(options("trainer", TrainerConfig))
        elif kind in REGISTRIES and name:
            entry = REGISTRIES[kind].entry(name)
            print(f"{kind} {name}: {entry.summary}")
            print(options(f"{kind}.", entry.config) if entry.config else "  (no options)")
        else:
            raise RnnzooError(f"list takes model=NAME, task=NAME, dataset=NAME or trainer, got '{arg}'")


def options(prefix: str, config: type) -> str:
    rows = help_text(config)
    width = max(len(prefix) + len(name) for name, *_ in rows) + 1
    lines = []
    for name, kind, default, text in rows:
        lines.append(f"  {prefix.rstrip('.') + '.' if prefix != 'trainer' else 'trainer.'}{name:<{width - len(prefix)}}"
                     f" {kind:<14} {default!s:<10} {text}")
    return "\n".join(lines)


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
    lines.append("which model fits which task (defaults; y = fits):")
    tasks = TASKS.names()
    lines.append(f"  {'':<16} " + " ".join(f"{t:>12}" for t in tasks))
    for model in MODELS.names():
        cells = " ".join(f"{'y' if _fits(t, model) else '-':>12}" for t in tasks)
        lines.append(f"  {model:<16} {cells}")
    lines.append("")
    lines.append("options of one: rnnzoo list model=NAME | task=NAME | dataset=NAME | trainer")
    return "\n".join(lines)


def _fits(task: str, model: str) -> bool:
    try:
        check_compatible(task, model, None)
        return True
    except IncompatibleError:
        return False
