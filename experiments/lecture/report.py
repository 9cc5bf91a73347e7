"""An experiment (its claim, its runs, the section it writes) and the results page made of them.

Every section says the claim, the setup, the published number, our numbers with their seeds
and spread, the wall time on this machine, and a conclusion computed from the numbers, so the
text can never drift from the table above it.
"""

from __future__ import annotations

import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import torch

from .runs import Result, Run


@dataclass
class Section:
    """What an experiment's `report` returns: markdown, and the figures it saved (file names)."""

    setup: str
    table: str
    conclusion: str
    figures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Experiment:
    """One claim of the lecture (or one headline of a paper it cites) as runs and a section.

    runs(quick): the runs; quick=True is the CI-sized budget. report(results, figures_dir, quick):
    the section, saving its plots into figures_dir.
    """

    key: str
    title: str
    claim: str
    published: str
    runs: Callable[[bool], list[Run]]
    report: Callable[[Mapping[str, Result], Path, bool], Section]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def spread(values: Sequence[float], digits: int = 1) -> str:
    """'m ± s (n)' for several seeds, the value alone for one."""
    m, s = mean_std(values)
    return f"{m:.{digits}f}" if len(values) == 1 else f"{m:.{digits}f} ± {s:.{digits}f} ({len(values)})"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def wall_time(results: Mapping[str, Result]) -> str:
    """Total seconds of the runs, as 'h:mm' or 'm min s s' (one thread each)."""
    seconds = sum(r.seconds for r in results.values())
    minutes = seconds / 60
    return f"{minutes / 60:.1f} h" if minutes >= 90 else f"{minutes:.1f} min"


def render(sections: list[tuple[int, Experiment, Section, Mapping[str, Result]]], command: str, quick: bool,
           total_seconds: float, jobs: int = 2) -> str:
    """The whole page: a header saying how it was made, then one section per experiment."""
    body = [header(sections, command, quick, total_seconds, jobs)]
    for number, experiment, section, results in sections:
        body += [f"## {number}. {experiment.title}", "", f"**Claim.** {experiment.claim}", "",
                 f"**Setup.** {section.setup}", "", f"**Published.** {experiment.published}", "",
                 f"**Ours** ({wall_time(results)} of runs):", "", section.table, ""]
        body += [f"![{experiment.title}]({name})\n" for name in section.figures]
        body += [f"**Conclusion.** {section.conclusion}", ""]
    return "\n".join(body)


def header(sections: list[tuple[int, Experiment, Section, Mapping[str, Result]]], command: str, quick: bool,
           total_seconds: float, jobs: int) -> str:
    seeds = sorted({len({r.run.seed for r in results.values()}) for *_, results in sections})
    mode = "QUICK mode: CI-sized budgets, not the published comparison" if quick else "full budgets"
    machine = f"{platform.processor() or platform.machine()}, torch {torch.__version__}"
    return f"""# The lecture as experiments

Each claim of the lecture (`../shared/reference/lecture-sequence-models.txt`), and the headline of
each paper it cites, as runs anyone can repeat. This page is written by

    {command}

from the runs' `metrics.json` ({mode}; {total_seconds / 3600:.1f} h of runs, one thread each, up to
{jobs} at a time beside whatever else the machine ran; {machine}). Seeds per configuration:
{', '.join(map(str, seeds))}; a ± is the sample standard deviation over seeds, with the seed count in
brackets. Wall times are those of a shared 2-core machine: compare them within a table, not across.
"""
