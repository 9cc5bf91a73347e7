"""`make reproduce-quick` end to end: every experiment's runs at CI-sized budgets, then the page."""

from __future__ import annotations

import subprocess
import sys

import pytest

from experiments.lecture import experiments
from experiments.lecture.runs import ROOT

from .conftest import DATA_DIR


@pytest.mark.slow
@pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"the real-data experiments need {DATA_DIR}")
def test_the_quick_reproduction_writes_every_section(tmp_path):
    page = tmp_path / "results.md"
    done = subprocess.run([sys.executable, "-m", "experiments.reproduce", "--quick", "--out",
                           str(tmp_path / "runs"), "--page", str(page)], capture_output=True, text=True,
                          timeout=1800, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    text = page.read_text()
    for number, experiment in enumerate(experiments(), 1):
        assert f"## {number}. {experiment.title}" in text
    figures = [line[line.index("(") + 1:-1] for line in text.splitlines() if line.startswith("![")]
    assert figures and all((page.parent / name).is_file() for name in figures)
