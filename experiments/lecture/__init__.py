"""The lecture as experiments (`make reproduce`): each claim a set of runs and a section of
docs/results.md. One module per experiment, each defining `EXPERIMENT`; `runs` executes them,
`report` writes the page. The driver is experiments/reproduce.py
(`python -m experiments.reproduce`, from the checkout's root)."""

from __future__ import annotations

import importlib

from .report import Experiment, Section, markdown_table, mean_std, spread
from .runs import Result, Run, Runner

#: the experiments in the page's order (issue 8's numbering)
MODULES = ("gradients", "long_range", "tbptt", "hopfield", "bidirectional", "attention_length", "equal_time")


def experiments() -> list[Experiment]:
    """Every experiment, in order (imported on demand: they pull in plotting)."""
    return [importlib.import_module(f"{__name__}.{name}").EXPERIMENT for name in MODULES]


__all__ = ["Experiment", "Result", "Run", "Runner", "Section", "experiments", "markdown_table", "mean_std", "spread"]
