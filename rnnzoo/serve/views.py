"""What the page draws, as JSON: heatmaps, bars, curves, tagged tokens, per-step distributions.

A view is a dict with a `kind` the page knows (static/app.js draws each kind one way):

    heatmap  rows, cols (labels), values (rows x cols), row_axis, col_axis
    bars     labels, values                    (a class distribution)
    curve    values, x_axis, y_axis            (a Hopfield energy per step)
    tokens   tokens: [{text, label, p}]        (tags with their probabilities)
    steps    steps: [{token, p, top: [{token, p}]}]   (a language model's next-token choices)

Task views come from a task's structured answer (rnnzoo.serve.answers); `recorded_views` turns
what the model recorded inside (rnnzoo.nn.inside) into heatmaps and curves, whatever the model,
labelling a time axis with the input's tokens where the lengths match.
"""

from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor

MAX_VALUES = 65_536  # the most numbers one recorded tensor sends (it is cut, first rows and columns kept)
MAX_TENSORS = 64  # the most recorded tensors one answer sends
DECIMALS = 5  # recorded values are sent rounded to this many decimals (a page shows colours)


def heatmap(title: str, values: Sequence[Sequence[float]], rows: Sequence[str], cols: Sequence[str],
            row_axis: str, col_axis: str) -> dict[str, Any]:
    return {"kind": "heatmap", "title": title, "values": [list(map(float, row)) for row in values],
            "rows": list(rows), "cols": list(cols), "row_axis": row_axis, "col_axis": col_axis}


def bars(title: str, labels: Sequence[str], values: Sequence[float]) -> dict[str, Any]:
    return {"kind": "bars", "title": title, "labels": list(labels), "values": list(map(float, values))}


def curve(title: str, values: Sequence[float], x_axis: str, y_axis: str) -> dict[str, Any]:
    return {"kind": "curve", "title": title, "values": list(map(float, values)), "x_axis": x_axis, "y_axis": y_axis}


# --- recorded tensors -----------------------------------------------------------------------------
def capped(tensor: Tensor) -> Tensor:
    """`tensor` cut to at most MAX_VALUES numbers: its largest dimension halved (first half kept) until it fits."""
    while tensor.numel() > MAX_VALUES:
        dim = max(range(tensor.dim()), key=lambda d: tensor.shape[d])
        tensor = tensor.narrow(dim, 0, (tensor.shape[dim] + 1) // 2)
    return tensor


def recorded(inside: dict[str, Tensor]) -> list[dict[str, Any]]:
    """Each recorded tensor's batch row 0 as nested lists (rounded to DECIMALS): name, full shape,
    the shape sent (capped)."""
    sent = []
    for name, tensor in list(inside.items())[:MAX_TENSORS]:
        row = capped(tensor[0] if tensor.dim() > 1 else tensor).double().round(decimals=DECIMALS)  # short in JSON
        sent.append({"name": name, "shape": list(tensor.shape), "sent_shape": list(row.shape), "values": row.tolist()})
    return sent


def recorded_views(tensors: list[dict[str, Any]], token_lists: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
    """A heatmap per 2-D recorded row (time x units, target x source...), a curve per 1-D one;
    more dimensions (heads...) are shown at index 0 of each leading one. An axis as long as
    one of `token_lists` is labelled with those tokens, other axes with their indices."""
    views = []
    for item in tensors:
        values, name, leading = item["values"], item["name"], ""
        while _depth(values) > 2:
            values, leading = values[0], leading + "[0]"
        if _depth(values) == 1:
            views.append(curve(name, values, "step", name.rsplit(".", 1)[-1]))
        elif _depth(values) == 2 and values and values[0]:
            (rows, by_rows), (cols, by_cols) = _labels(len(values), token_lists), _labels(len(values[0]), token_lists)
            views.append(heatmap(name + leading, values, rows, cols, "step (token)" if by_rows else "index",
                                 "token" if by_cols else "unit"))
    return views


def _depth(values: Any) -> int:
    depth = 0
    while isinstance(values, list):
        depth, values = depth + 1, values[0] if values else None
    return depth


def _labels(size: int, token_lists: Sequence[Sequence[str]]) -> tuple[list[str], bool]:
    """(labels of an axis of `size`, whether they are tokens)."""
    tokens = next((list(tokens) for tokens in token_lists if len(tokens) == size), None)
    return (tokens, True) if tokens is not None else ([str(i) for i in range(size)], False)
