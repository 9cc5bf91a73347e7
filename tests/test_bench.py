"""`scripts/bench.py --quick`: one table row per registered model and size, with numbers that parse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from rnnzoo.api import list_models
from scripts import bench

TWINNED = ("elman", "gru", "lstm")  # the families with a PyTorch twin
RATIO = re.compile(r"^\d+\.\d+x / \d+\.\d+x$")  # train / infer


def table_rows(text: str) -> list[dict[str, str]]:
    """The main table's rows as {column: cell}: the first markdown table of the report."""
    lines = [line for line in text.splitlines() if line.startswith("| model |")]
    assert lines, "no table with a 'model' column in the report"
    block = text.split(lines[0], 1)[1].splitlines()[2:]  # past the header and the |---| line
    columns = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for line in block:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(columns, (c.strip() for c in line.strip("|").split("|")))))
    return rows


def number(cell: str) -> float:
    """The leading number of a cell: '12,345' -> 12345.0, '0.26 / 0.084' -> 0.26, '16,512 stored' -> 16512.0."""
    match = re.match(r"^[\d,]*\.?\d+(e[-+]?\d+)?", cell)
    assert match, f"no number at the start of {cell!r}"
    return float(match.group(0).replace(",", ""))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("bench") / "bench.md"
    return bench.main(["--quick", "--device", "cpu", "--out", str(out)]), out


def test_writes_what_it_prints(report: tuple[str, Path]) -> None:
    text, out = report
    assert out.read_text() == text
    assert "python scripts/bench.py --quick --device cpu --out" in text  # the command line
    assert f"torch {torch.__version__}" in text


def test_every_registered_model_at_both_sizes(report: tuple[str, Path]) -> None:
    rows = table_rows(report[0])
    for name in list_models():
        sizes = {row["size"] for row in rows if row["model"] == name}
        assert sizes == {"small", "large"}, f"{name}: sizes {sizes}"


def test_numbers_parse_and_are_positive(report: tuple[str, Path]) -> None:
    for row in table_rows(report[0]):
        train_mib, infer_mib = row["peak MiB train / infer"].split(" / ")
        for column, cell in [("parameters", row["parameters"]), ("train /s", row["train /s"]),
                             ("infer /s", row["infer /s"]), ("train MiB", train_mib), ("infer MiB", infer_mib)]:
            assert number(cell) > 0, f"{row['model']} {row['size']}: {column} = {cell!r}"
        assert row["unit"] in ("tokens", "patterns")


def test_twin_ratio_filled_for_the_twinned_families(report: tuple[str, Path]) -> None:
    rows = table_rows(report[0])
    for row in rows:
        ratio = row["vs faster torch twin, train / infer"]
        if row["model"] in TWINNED:
            assert RATIO.match(ratio), f"{row['model']} {row['size']}: ratio {ratio!r}"
            assert all(float(r.rstrip("x")) > 0 for r in ratio.split(" / "))
        else:
            assert ratio == "—", f"{row['model']} has no twin but shows {ratio!r}"
    jordan = [row for row in rows if row["model"] == "jordan"]
    assert jordan and all(number(row["train GFLOP/s (% of step / peak matmul)"]) > 0 for row in jordan)


def test_hopfield_rows_count_patterns_not_tokens(report: tuple[str, Path]) -> None:
    units = {row["unit"] for row in table_rows(report[0]) if row["model"] == "hopfield"}
    assert units == {"patterns"}


@pytest.mark.parametrize("device", ["tpu", "cuda"])
def test_bad_device_is_one_clear_line(device: str) -> None:
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(SystemExit) as error:
        bench.main(["--device", device, "--out", "-"])
    message = str(error.value)
    assert "\n" not in message and "choices: cpu, cuda, auto" in message and device in message
