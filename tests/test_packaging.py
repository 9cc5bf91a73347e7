"""A plain (non-editable) install carries the configs inside the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_every_config_and_subpackage(tmp_path):
    pytest.importorskip("setuptools")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                             "-q", "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    wheel = next(tmp_path.glob("rnnzoo-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"rnnzoo/configs/{p.relative_to(ROOT / 'configs')}" for p in (ROOT / "configs").rglob("*.yaml")}
    assert configs and configs <= names, sorted(configs - names)
    packages = {f"{p.parent.relative_to(ROOT)}/__init__.py" for p in (ROOT / "rnnzoo").rglob("__init__.py")}
    assert packages <= names, f"packages missing from pyproject.toml's list: {sorted(packages - names)}"
