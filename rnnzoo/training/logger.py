"""TensorBoard logging for a run: scalars, the config as text, hparams and the final metrics.

Everything goes into the run's own event file (`<run>/tb/`), so TensorBoard lists one run per
training run and its first screen is the training curves: the hparams (the HParams tab) take
their metric columns from the validation curves, and the final metrics of the best checkpoint
are a table in the Text tab, never single-point scalar cards above the curves."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import yaml
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

_IMPORTED = time.time()


def seconds_since_start() -> float:
    """Wall seconds since this process started (Linux: /proc; elsewhere: since this module loaded)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time() - _IMPORTED


class RunLogger:
    """Writes `<run>/tb/`: what `make tensorboard` (or `tensorboard --logdir outputs`) shows."""

    def __init__(self, run_dir: Path, run_config: dict[str, Any]) -> None:
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tb"))
        text = yaml.safe_dump(run_config, sort_keys=False)
        self.writer.add_text("config", "```yaml\n" + text + "\n```", 0)

    def scalars(self, values: dict[str, float], step: int, flush: bool = False) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        if flush:  # at evaluations: a live TensorBoard shows progress without a file write per step
            self.writer.flush()

    def hparams(self, run_config: dict[str, Any], final: dict[str, float], step: int = 0) -> None:
        """The config as hparams, the validation curves as their metrics (the HParams tab shows
        each curve's last value), and `final` as a table in the Text tab at `step`.

        `SummaryWriter.add_hparams` would write a second run (`tb/<name>/`) whose metrics are
        scalars of one point each: ten cards sorted above the training curves."""
        flat = {k: v for k, v in _flatten(run_config).items() if isinstance(v, (int, float, str, bool))}
        curves = {key: value for key, value in final.items() if key.startswith("val/")}
        for summary in hparams(flat, curves):
            self.writer.file_writer.add_summary(summary)
        rows = "\n".join(f"| {key} | {value:.6g} |" if isinstance(value, float) else f"| {key} | {value} |"
                         for key, value in final.items())
        self.writer.add_text("final metrics", "| metric | value |\n|---|---|\n" + rows, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class NullLogger:
    """RunLogger's interface writing nothing: the logger of the ranks other than 0."""

    writer = None

    def scalars(self, values: dict[str, float], step: int, flush: bool = False) -> None:
        pass

    def hparams(self, run_config: dict[str, Any], final: dict[str, float], step: int = 0) -> None:
        pass

    def close(self) -> None:
        pass


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
