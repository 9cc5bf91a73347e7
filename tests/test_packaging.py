"""A plain (non-editable) install carries the configs inside the package, and not the code that runs
only from a checkout (experiments/, scripts/)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_every_config_and_subpackage(tmp_path):
    pytest.importorskip("setuptools")
    # From a copy without the checkout's build/: setuptools adds whatever an earlier build left in
    # build/lib (a package since removed, say) to the wheel, which a fresh clone would not ship.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "outputs", "multirun",
                                                                 "*.egg-info", "__pycache__"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                             "-q", "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    wheel = next(tmp_path.glob("rnnzoo-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"rnnzoo/configs/{p.relative_to(ROOT / 'configs')}" for p in (ROOT / "configs").rglob("*.yaml")}
    assert configs and configs <= names, sorted(configs - names)
    packages = {f"{p.parent.relative_to(ROOT)}/__init__.py" for p in (ROOT / "rnnzoo").rglob("__init__.py")}
    assert packages <= names, f"packages missing from pyproject.toml's list: {sorted(packages - names)}"
    checkout_only = sorted(n for n in names if n.split("/")[0] in ("experiments", "scripts")
                           or n.startswith("rnnzoo/lecture/"))
    assert not checkout_only, f"the wheel carries code that runs from a checkout only: {checkout_only}"
