"""`rnnzoo export`: a trained checkpoint for another runtime.

    rnnzoo export checkpoint=PATH format=hf out=DIR     Hugging Face BERT folder (rnnzoo.export.hf)
    rnnzoo export checkpoint=PATH format=onnx out=DIR   ONNX graphs + vocabulary (rnnzoo.export.onnx)

Each format is one module with one entry point, `export(cfg) -> Path`, imported only when
chosen, so the core install needs neither `onnx` nor `safetensors`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ..errors import RnnzooError

FORMATS = {"hf": "a Hugging Face BERT folder", "onnx": "ONNX graphs checked with onnxruntime"}


def export(cfg: Any) -> Path:
    """Write the export `cfg.format` of `cfg.checkpoint` to `cfg.out`; the path written."""
    name = str(cfg.format)
    if name not in FORMATS:
        choices = ", ".join(f"{key} ({what})" for key, what in FORMATS.items())
        raise RnnzooError(f"format={name!r} is not an export format; choices: {choices}")
    try:
        module = importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as error:
        raise RnnzooError(f"format={name} needs the Python package '{error.name}': "
                          f"pip install 'rnnzoo[export]'") from None
    return module.export(cfg)


def prepare_out(out: Path, overwrite: bool, name: str, written: tuple[str, ...]) -> Path:
    """`out` made ready for a `format=name` export, which writes the files `written` (glob
    patterns): absent or an empty folder is taken as it is; a folder with something in it needs
    overwrite=true, which removes an earlier export's files and leaves anything else alone."""
    if out.exists() and not out.is_dir():
        raise RnnzooError(f"out={out} is a file; format={name} writes a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise RnnzooError(f"out={out} is not empty: choose another folder or set overwrite=true "
                              f"(which replaces an export there: {', '.join(written)})")
        for pattern in written:
            for path in out.glob(pattern):
                path.unlink()
    return out
