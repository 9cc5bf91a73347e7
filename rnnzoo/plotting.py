"""Figures shared by TensorBoard logging and the docs: matplotlib without a display."""

from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed, safe on servers and in CI)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def attention_figure(weights: Tensor, source: Sequence[str], target: Sequence[str]) -> Any:
    """Heatmap of attention weights (T, S): output tokens down the side, source tokens across,
    as in Bahdanau et al. 2015's figure 3. Returns the figure (the caller closes or logs it)."""
    plt = pyplot()
    T, S = weights.shape
    figure, axes = plt.subplots(figsize=(max(3.0, 0.35 * S + 1.5), max(2.5, 0.3 * T + 1.0)))
    axes.imshow(weights.float().numpy(), cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(S), labels=list(source)[:S], rotation=90, fontsize=8)
    axes.set_yticks(range(T), labels=list(target)[:T], fontsize=8)
    axes.set_xlabel("source")
    axes.set_ylabel("output")
    figure.tight_layout()
    return figure
