"""CPU inference throughput of an exported graph under onnxruntime against eager PyTorch.

The models have the sizes of the recipes (configs/experiment/conll2000_bilstm.yaml: a BiLSTM-CRF
tagger with character CNN, 128 units a direction; sst2_bilstm.yaml: a BiLSTM classifier with
max pooling, 150 units a direction, 300-wide embeddings; tinyshakespeare_lstm.yaml: a 512-unit
character LSTM for the generation step), random weights (speed does not depend on them), over
a vocabulary of --vocab words made up for the run. Both runtimes get the same inputs, one
thread each (torch.set_num_threads(1); onnxruntime intra_op_num_threads=1), and run
interleaved, round after round; each keeps the minimum time of its rounds. Tokens/s counts
real tokens (the lengths), not pads; a generation step is one token per sequence.

    python scripts/bench_onnx.py                 # prints one markdown table
    python scripts/bench_onnx.py --rounds 5 --batch 32 --length 40
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import OmegaConf

from rnnzoo import api
from rnnzoo.config import compose_train
from rnnzoo.export.graphs import Graph, graphs_of
from rnnzoo.export.onnx import export_graph, max_difference, session

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the minimum counts")
    parser.add_argument("--repeats", type=int, default=5, help="calls timed together in one round")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=40, help="longest sentence; the others are shorter")
    parser.add_argument("--vocab", type=int, default=5000)
    return parser.parse_args(argv)


def recipe(name: str) -> list[str]:
    """The model and task sizes of configs/experiment/NAME.yaml, as overrides."""
    values = OmegaConf.load(ROOT / "configs" / "experiment" / f"{name}.yaml")
    return [f"{section}.{key}={value}" for section in ("model", "task")
            for key, value in (values.get(section) or {}).items() if key not in ("sample_prompt",)]


def made_up_data(folder: Path, vocab: int) -> dict[str, list[str]]:
    """Data files of each kind, over `vocab` made-up words: enough to build the tasks' vocabularies."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(vocab)]
    tags = [f"{p}-X{i}" for i in range(11) for p in "BI"] + ["O"]
    tagged = "\n\n".join("\n".join(f"{w} X {rng.choice(tags)}" for w in words[i:i + 20]) for i in range(0, vocab, 20))
    labeled = "\n".join(f"{rng.choice(['pos', 'neg'])}\t{' '.join(words[i:i + 20])}" for i in range(0, vocab, 20))
    text = "".join(chr(32 + i % 65) for i in range(20000))
    files = {}
    for kind, content in (("tagged", tagged), ("labeled", labeled), ("text", text)):
        (folder / f"{kind}.txt").write_text(content + "\n")
    files["tagging"] = ["dataset=conll_files", *(f"dataset.{s}={folder / 'tagged.txt'}" for s in ("train", "valid"))]
    files["classification"] = ["dataset=labeled_files",
                               *(f"dataset.{s}={folder / 'labeled.txt'}" for s in ("train", "valid"))]
    files["generation"] = ["dataset=text_files", f"dataset.train={folder / 'text.txt'}"]
    return files


def graph_of(task: str, model: str, experiment: str, files: list[str], extra: list[str]) -> Graph:
    config = api.plain(compose_train([f"task={task}", f"model={model}", *files, *recipe(experiment), *extra]))
    task_object, network, _ = api.build(config)
    return graphs_of(task, task_object, network.eval())[0]


def fastest(call: Callable[[], Any], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats


def bench(graph: Graph, folder: Path, batch: int, length: int, args: argparse.Namespace) -> dict[str, float]:
    folder.mkdir(exist_ok=True)
    path = folder / f"{graph.name}.onnx"
    if not path.exists():
        export_graph(graph, path, 18)
    runtime = session(path, threads=1)
    inputs = graph.random(batch, length, torch.Generator().manual_seed(0))
    difference = max_difference(graph, runtime, inputs)
    wanted = {i.name for i in runtime.get_inputs()}
    feed = {n: t.numpy() for n, t in zip(graph.input_names, inputs) if n in wanted}
    tokens = int(inputs[1].sum()) if graph.input_names[1] == "lengths" else inputs[0].numel()
    times = {"pytorch": float("inf"), "onnxruntime": float("inf")}
    with torch.inference_mode():
        calls = {"pytorch": lambda: graph.pytorch(*inputs), "onnxruntime": lambda: runtime.run(None, feed)}
        for _ in range(args.rounds):
            for name, call in calls.items():
                times[name] = min(times[name], fastest(call, args.repeats))
    return {"tokens": tokens, "difference": difference,
            **{name: tokens / seconds for name, seconds in times.items()}}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = made_up_data(folder, args.vocab)
        long, gen = (args.batch, args.length), (1, args.length)  # a generation step: 1 token after length/2
        cases = [  # label, task, model, recipe, extra overrides, (batch, length) sizes
            ("tagging BiLSTM-CRF (conll2000_bilstm)", "tagging", "lstm", "conll2000_bilstm", [], [long, (1, 40)]),
            ("tagging BiLSTM-CRF, impl=reference: scripted ONNX Loop", "tagging", "lstm", "conll2000_bilstm",
             ["model.impl=reference"], [long]),
            ("classification BiLSTM (sst2_bilstm)", "classification", "lstm", "sst2_bilstm", [], [long, (1, 40)]),
            ("generation step LSTM (tinyshakespeare_lstm)", "generation", "lstm", "tinyshakespeare_lstm", [],
             [(1, 1), (args.batch, 1)]),
            ("generation step Transformer, KV cache (tinyshakespeare_transformer)", "generation", "transformer",
             "tinyshakespeare_transformer", [], [gen]),
        ]
        for index, (label, task, model, experiment, extra, sizes) in enumerate(cases):
            graph = graph_of(task, model, experiment, files[task], ["task.min_freq=1", *extra])
            for batch, length in sizes:
                row = bench(graph, folder / str(index), batch, length, args)
                rows.append((label, f"{batch}x{length}", row))
    print("| graph | batch x length | tokens | PyTorch eager tok/s | onnxruntime tok/s | ratio | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    for label, size, row in rows:
        print(f"| {label} | {size} | {row['tokens']} | {row['pytorch']:,.0f} | {row['onnxruntime']:,.0f} | "
              f"{row['onnxruntime'] / row['pytorch']:.2f}x | {row['difference']:.1e} |")


if __name__ == "__main__":
    main()
