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
