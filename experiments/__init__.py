"""What runs from a checkout and is not installed: the lecture's experiments and their driver.

    python -m experiments.reproduce --quick      # from the checkout's root (`make reproduce-quick`)

The lecture as experiments (`experiments.lecture`, driven by `experiments.reproduce`) trains
through `python -m rnnzoo train`, runs scripts of the checkout (scripts/capacity_sweep.py,
scripts/length_experiment.py), reads the recipes in configs/ and writes docs/results.md: it
needs the checkout, so it lives beside the library rather than in it, and the wheel does not
carry it (pyproject.toml lists rnnzoo's packages only).

Why a package imported from the checkout's root, and not a script folder that edits `sys.path`:
run as `python -m experiments.reproduce` from the root, Python puts the root on `sys.path`
itself, so `experiments.lecture` and the scripts it reuses (`scripts.capacity_sweep`'s plot)
are ordinary imports, and the tests import them the same way (pytest puts the root there too).
rnnzoo is imported as the installed package (`make install` installs it editable).

What the scripts in scripts/ share among themselves is another matter: they run as plain files
(`python scripts/bench.py`), where only the script's own folder is on `sys.path`, so their shared
timing pieces are library code, `rnnzoo.timing`, and need no checkout at all.
"""

from __future__ import annotations

from pathlib import Path

#: the checkout: experiments/, scripts/ and configs/ live here
ROOT = Path(__file__).resolve().parent.parent
