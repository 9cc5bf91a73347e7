"""Rebuild docs/results.md: run every lecture experiment (experiments.lecture) and write the page.

From the checkout's root:

    python -m experiments.reproduce                  # full budgets (see docs/results.md for the hours)
    python -m experiments.reproduce --quick          # CI-sized budgets: outputs/reproduce/quick/results.md
    python -m experiments.reproduce --only hopfield long_range --jobs 2

Runs land in outputs/reproduce/<full|quick>/<experiment>/<run>/; a run whose metrics.json is
there (same command, and the config it composes unchanged) is not trained again, so an
interrupted reproduction resumes where it stopped, and an edited recipe retrains its runs. The page,
and its figures in <page dir>/results/, are written at the end.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from rnnzoo.errors import RnnzooError

from .lecture import Runner, experiments
from .lecture.report import Section, render


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI-sized budgets (under 20 minutes on 2 cores)")
    parser.add_argument("--only", nargs="+", metavar="KEY", help="these experiments only (the page then holds "
                                                                 "only them)")
    parser.add_argument("--report-only", action="store_true", help="train nothing: the page from the runs "
                                                                       "already finished (an experiment missing "
                                                                       "some says which)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one thread each (default 2)")
    parser.add_argument("--out", type=Path, help="run folders (default outputs/reproduce/full or .../quick)")
    parser.add_argument("--page", type=Path, help="the page to write (default docs/results.md, or "
                                                  "<out>/results.md with --quick)")
    args = parser.parse_args(argv)
    args.out = args.out or Path("outputs/reproduce") / ("quick" if args.quick else "full")
    args.page = args.page or (args.out / "results.md" if args.quick else Path("docs/results.md"))
    return args


def main(argv: list[str] | None = None) -> None:
    try:
        reproduce(argv)
    except RnnzooError as error:  # missing data, a failed run (naming its log): one clear line, no traceback
        sys.exit(f"error: {error}")


def reproduce(argv: list[str] | None) -> None:
    args = parse_args(argv)
    chosen = experiments()
    keys = [e.key for e in chosen]
    if args.only:
        unknown = [k for k in args.only if k not in keys]
        if unknown:
            sys.exit(f"error: no experiment {', '.join(unknown)}; the experiments are: {', '.join(keys)}")
    if args.jobs < 1:
        sys.exit(f"error: --jobs must be >= 1, got {args.jobs}")
    figures = args.page.parent / "results"
    figures.mkdir(parents=True, exist_ok=True)
    runner = Runner(args.out, args.jobs)
    sections, start = [], time.perf_counter()
    for number, experiment in enumerate(chosen, 1):
        if args.only and experiment.key not in args.only:
            continue
        print(f"{number}. {experiment.title}", flush=True)
        runs = experiment.runs(args.quick)
        if args.report_only:
            results = runner.finished(experiment.key, runs)
            missing = [r.name for r in runs if r.name not in results]
            if missing:
                sections.append((number, experiment, not_run(missing, len(runs)), results))
                continue
        else:
            results = runner.execute(experiment.key, runs)
        section = experiment.report(results, figures, args.quick)
        section.figures = [f"{figures.name}/{name}" for name in section.figures]
        sections.append((number, experiment, section, results))
    command = "python -m experiments.reproduce " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                else sys.argv[1:]))
    total = sum(r.seconds for *_, results in sections for r in results.values())
    args.page.write_text(render(sections, command.strip(), args.quick, total, args.jobs))
    print(f"wrote {args.page} ({time.perf_counter() - start:.0f} s)")


def not_run(missing: list[str], total: int) -> Section:
    """The section of an experiment whose runs are not all finished (--report-only)."""
    listed = ", ".join(f"`{name}`" for name in missing[:12]) + (" ..." if len(missing) > 12 else "")
    return Section(setup=f"Not run yet: {len(missing)} of its {total} runs are missing ({listed}).",
                   table="(none)", conclusion="None yet: `make reproduce` trains the missing runs.")


if __name__ == "__main__":
    main()
