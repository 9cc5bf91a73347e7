"""`rnnzoo export format=onnx`: a checkpoint's inference graphs as ONNX, checked with onnxruntime.

    rnnzoo export checkpoint=runs/x/checkpoints/best.pt format=onnx out=model_onnx/

writes into `out`:

    <graph>.onnx      one per graph of the task (rnnzoo.export.graphs: tagger, classifier, step,
                      encoder + decoder_step), batch and length axes dynamic
    vocab.json        every vocabulary as a list of tokens (id = position): tokens, tags, labels...
    tokenizer.json    the task's tokenizer state (vocabularies, tags, labels) as rnnzoo keeps it;
    *.hf.json         for bpe/wordpiece levels, the Hugging Face `tokenizers` file (Tokenizer.from_file)
    crf.json          a CRF tagger's transitions (K, K), start and end scores: Viterbi runs outside
    manifest.json     task, model, each graph's input/output names, shapes and dtypes, special ids,
                      and how to run it, so the folder is usable without rnnzoo

How: `torch.onnx.export(..., dynamo=False)` traces each graph. The recurrent models with a
PyTorch twin (lstm, gru, elman: `nn.LSTM`, `nn.GRU`, `nn.RNN`) run their fused kernel, which
exports to ONNX's own LSTM/GRU/RNN operators, with `pack_padded_sequence` turned into their
`sequence_lens`: any length, no loop unrolled. A model whose time loop is Python (jordan, or any
recurrent model with impl=reference) would be unrolled to the traced length by a trace: its
loop is scripted instead (graphs.ScriptedRecurrence), which exports as an ONNX Loop.
Transformers trace into shape-generic graphs (the KV cache's length is an input axis; a
decoder step reads one token per call). docs/export.md has the table, model by model.

Every graph is run with onnxruntime against the PyTorch network on random inputs at the traced
size and at another batch and length, and on a batch of the task's validation data when the
data is there; the largest absolute difference is logged, and one above `tolerance` is an error
(`check=false` skips the check).
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from ..build import rebuild
from ..errors import RnnzooError
from ..models.traits import traits_of
from ..registry import help_field, typed
from ..training.setup import set_threads
from . import prepare_out
from .graphs import TASKS_EXPORTED, Graph, graphs_of, quiet, varying_axes

log = logging.getLogger("rnnzoo")

#: (batch, length) of the traced example, and of the second random check (other sizes: the
#: dynamic axes at work)
TRACE_SIZE, CHECK_SIZE = (2, 5), (3, 8)

@dataclass
class OnnxOptions:
    """`rnnzoo export format=onnx`'s own options (configs/export.yaml), typed and range-checked."""

    check: bool = help_field(True, "run each graph with onnxruntime against PyTorch; a mismatch is an error")
    tolerance: float = help_field(1e-4, "the largest absolute difference the check accepts", ge=0)
    opset: int = help_field(18, "ONNX opset (14: the first with the attention's operators; 20: the TorchScript "
                                "exporter's last)", ge=14, le=20)
    overwrite: bool = help_field(False, "replace an earlier export in `out`")


def export(cfg: Any) -> Path:
    """Export `cfg.checkpoint` to the folder `cfg.out`; the folder."""
    options = typed(OnnxOptions, {f.name: cfg[f.name] for f in fields(OnnxOptions) if f.name in cfg})
    out = prepare_out(Path(str(cfg.out)), options.overwrite, "onnx", WRITTEN)
    set_threads(cfg.get("trainer", {}).get("num_threads"))
    network, task, config = rebuild(str(cfg.checkpoint))
    task_name, model_name = config["task"]["name"], config["model"]["name"]
    if task_name not in TASKS_EXPORTED:
        raise RnnzooError(f"format=onnx exports checkpoints of the tasks {', '.join(TASKS_EXPORTED)}; "
                          f"{cfg.checkpoint} is one of task '{task_name}'")
    graphs = graphs_of(task_name, task, network)
    out.mkdir(parents=True, exist_ok=True)
    described = []
    for graph in graphs:
        path = out / f"{graph.name}.onnx"
        output_axes = export_graph(graph, path, options.opset)
        if options.check:
            check_graph(graph, path, options.tolerance, real_inputs(task, graph))
        described.append(describe(graph, output_axes, path))
    files = write_tokenizers(out, task)
    crf = getattr(network, "crf", None)
    if crf is not None:
        write_json(out / "crf.json", {k: getattr(crf, k).detach().tolist() for k in ("transitions", "start", "end")})
        files["crf"] = "crf.json"
    write_json(out / "manifest.json", manifest(task_name, model_name, task, network, graphs, described, files,
                                                          config))
    return out


#: what an export writes: overwrite=true removes these from `out` and nothing else
WRITTEN = ("*.onnx", "vocab.json", "tokenizer.json", "*.hf.json", "crf.json", "manifest.json")


# --- export ---------------------------------------------------------------------------------------
def export_graph(graph: Graph, path: Path, opset: int) -> dict[str, dict[int, str]]:
    """Trace `graph` to `path`; the dynamic axes of its outputs (see `output_axes`)."""
    generator = torch.Generator().manual_seed(0)
    example = graph.random(*TRACE_SIZE, generator)
    axes = output_axes(graph, example, graph.random(*CHECK_SIZE, generator))
    dynamic = {**{k: v for k, v in graph.input_axes.items() if k in graph.input_names}, **axes}
    module = graph.module.eval()
    attention = one_query_attention() if graph.one_query else nullcontext()
    with torch.no_grad(), quiet(), attention:
        if any(isinstance(m, torch.jit.ScriptModule) for m in module.modules()):
            # scripted time loops (graphs.ScriptedRecurrence): the exporter's own tracer refuses
            # script modules inside it; torch.jit.trace keeps them, as an ONNX Loop
            module = torch.jit.trace(module, example, check_trace=False, strict=False)
        torch.onnx.export(module, example, str(path), input_names=graph.input_names,
                          output_names=graph.output_names, dynamic_axes=dynamic, opset_version=opset,
                          dynamo=False)
    return axes


@contextmanager
def one_query_attention() -> Iterator[None]:
    """While tracing a KV-cache step: rnnzoo.nn.attention decides `is_causal = causal and T > 1`
    in Python, and under a trace T is a tensor, which scaled_dot_product_attention refuses. The
    step's one query (T = 1) sees every key, so the traced decision, False, holds for any input.
    (The one-line fix in attention.py, `int(T) > 1`, would make this unnecessary.)"""
    functional = torch.nn.functional
    original = functional.scaled_dot_product_attention

    def attention(*args: Any, is_causal: Any = False, **kwargs: Any) -> torch.Tensor:
        return original(*args, is_causal=bool(is_causal), **kwargs)

    functional.scaled_dot_product_attention = attention
    try:
        yield
    finally:
        functional.scaled_dot_product_attention = original


def output_axes(graph: Graph, first: tuple, second: tuple) -> dict[str, dict[int, str]]:
    """Which output axes vary with the input sizes, named as the input axis of the same size:
    the outputs of two differently sized inputs compared axis by axis."""
    sizes = {}
    for name, tensor in zip(graph.input_names, first):
        for axis, what in graph.input_axes.get(name, {}).items():
            sizes.setdefault(tensor.shape[axis], what)
    with torch.no_grad():
        a, b = as_tuple(graph.module(*first)), as_tuple(graph.module(*second))
    return varying_axes(list(zip(graph.output_names, a)), list(b), sizes)


def as_tuple(outputs: Any) -> tuple:
    return outputs if isinstance(outputs, tuple) else (outputs,)


# --- the check --------------------------------------------------------------------------------------
def session(path: Path, threads: int = 1) -> Any:
    """An onnxruntime CPU session of the graph at `path`."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # its errors come back as exceptions; its log would print them twice
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def max_difference(graph: Graph, runtime: Any, inputs: tuple) -> float:
    """The largest absolute difference between onnxruntime's and PyTorch's outputs on `inputs`."""
    with torch.no_grad():
        expected = as_tuple(graph.pytorch(*inputs))
    wanted = {i.name for i in runtime.get_inputs()}  # the exporter drops inputs a graph never reads
    feed = {name: t.numpy() for name, t in zip(graph.input_names, inputs) if name in wanted}
    sizes = " x ".join(str(n) for n in inputs[0].shape)
    try:
        got = runtime.run(graph.output_names, feed)
    except Exception as error:  # noqa: BLE001 (onnxruntime's own types: a graph that reads one size only)
        raise RnnzooError(f"{graph.name}.onnx fails in onnxruntime on inputs of {sizes}: "
                          f"{str(error).splitlines()[0][:300]}") from None
    worst = 0.0
    for name, e, g in zip(graph.output_names, expected, got):
        if tuple(e.shape) != g.shape:
            raise RnnzooError(f"{graph.name}.onnx: output {name} has shape {g.shape}, PyTorch's {tuple(e.shape)}")
        if e.numel():
            worst = max(worst, float(np.abs(e.double().numpy() - g.astype(np.float64)).max()))
    return worst


def check_graph(graph: Graph, path: Path, tolerance: float, real: tuple | None) -> float:
    """Run `path` with onnxruntime against PyTorch on random inputs of two sizes and on `real`;
    the largest difference, an RnnzooError above `tolerance`."""
    runtime = session(path)
    generator = torch.Generator().manual_seed(1)
    cases = {f"random {b}x{t}": graph.random(b, t, generator) for b, t in (TRACE_SIZE, CHECK_SIZE)}
    if real is not None:
        cases["validation data"] = real
    worst = 0.0
    for what, inputs in cases.items():
        difference = max_difference(graph, runtime, inputs)
        log.info("check %s.onnx on %s: max |onnxruntime - pytorch| = %.3g", graph.name, what, difference)
        if difference > tolerance:
            raise RnnzooError(f"{graph.name}.onnx differs from PyTorch by {difference:.3g} on {what} inputs, "
                              f"more than tolerance={tolerance:g} (check=false exports it anyway)")
        worst = max(worst, difference)
    if real is None:
        log.info("check %s.onnx: no validation data found, random inputs only", graph.name)
    return worst


def real_inputs(task: Any, graph: Graph) -> tuple | None:
    """The graph's inputs from the first batch of the task's validation data; None where the data
    is not there (a checkpoint exported on another machine)."""
    if graph.real is None:
        return None
    try:
        batch = task.eval_batches("val")[0]
    except (RnnzooError, OSError, IndexError) as error:
        log.info("no validation data for the check (%s)", str(error).splitlines()[0] if str(error) else error)
        return None
    return graph.real(batch)


# --- what goes beside the graphs --------------------------------------------------------------------
def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


#: the task's vocabularies, by the name vocab.json gives each: (attribute, whether it is a tokenizer)
VOCABULARIES = {"tokens": ("tokenizer", True), "source_tokens": ("source_tokenizer", True),
                "tags": ("tags", False), "labels": ("labels", False), "chars": ("chars", False)}


def write_tokenizers(out: Path, task: Any) -> dict[str, str]:
    """vocab.json (each vocabulary as its list of tokens, id = position: tokens, source_tokens,
    tags, labels, chars, whichever the task has), tokenizer.json (the task's state as rnnzoo
    keeps it) and, for each subword tokenizer, its Hugging Face `tokenizers` file; the names
    written, by role."""
    vocab: dict[str, Any] = {}
    for name, (attribute, tokenizer) in VOCABULARIES.items():
        found = getattr(task, attribute, None)
        if found is not None:
            vocab[name] = list((found.vocab if tokenizer else found).itos)
    vocab["lowercase"] = bool(getattr(task.config, "lowercase", False))
    write_json(out / "vocab.json", vocab)
    state = task.state_dict()
    write_json(out / "tokenizer.json", state)
    files = {"vocab": "vocab.json", "tokenizer": "tokenizer.json"}
    for role in ("tokenizer", "source", "target"):
        inner = state.get(role)
        if isinstance(inner, dict) and "subword" in inner:
            name = f"{role}.hf.json"
            (out / name).write_text(inner["subword"], encoding="utf-8")
            files[f"{role}_hf"] = name
    return files


def describe(graph: Graph, output_axes: dict[str, dict[int, str]], path: Path) -> dict[str, Any]:
    """A graph's manifest entry: file, what it does, inputs (those the graph reads: the exporter
    drops the others, as an encoder's final state where a decoder starts from zeros) and outputs
    with shapes and dtypes."""
    import onnx
    kept = {i.name for i in onnx.load(str(path), load_external_data=False).graph.input}
    example = graph.random(*TRACE_SIZE, torch.Generator().manual_seed(0))
    with torch.no_grad():
        outputs = as_tuple(graph.module(*example))

    def shapes(names: list[str], tensors: tuple, axes: dict[str, dict[int, str]]) -> dict[str, Any]:
        return {name: {"shape": [axes.get(name, {}).get(i, int(n)) for i, n in enumerate(t.shape)],
                       "dtype": str(t.dtype).removeprefix("torch.")} for name, t in zip(names, tensors)}

    return {"file": f"{graph.name}.onnx", "about": graph.about,
            "inputs": {k: v for k, v in shapes(graph.input_names, example, graph.input_axes).items() if k in kept},
            "outputs": shapes(graph.output_names, outputs, output_axes)}


HOW = {
    "tagging": "ids: token ids (0 = pad) right-padded, lengths: real lengths; emissions (B, W, K): argmax per word "
               "(index into vocab.json's tags), or Viterbi with crf.json where present",
    "classification": "ids, lengths as for tagging; argmax of logits indexes vocab.json's labels",
    "generation": "start from the state in `start` (zeros, or a KV cache of past length 0); feed the prompt's "
                  "ids (B, T) (a KV-cache graph: (B, 1), the prompt token by token), then one sampled id (B, 1) "
                  "per call, passing each new_state* back as state*; a KV cache holds at most max_positions",
    "translation": "run encoder once on source ids; then decoder_step from previous=<bos> with the encoder's "
                   "memory* and cache* outputs, passing new_cache* back as cache*, until <eos>",
}


def manifest(task_name: str, model_name: str, task: Any, network: nn.Module, graphs: list[Graph],
             described: list[dict], files: dict[str, str], config: dict[str, Any]) -> dict[str, Any]:
    """What a runtime needs to use the folder without rnnzoo."""
    tokenizer = getattr(task, "tokenizer", None)
    vocab = getattr(tokenizer, "vocab", None)
    specials = {role: getattr(vocab, f"{role}_id") for role in ("pad", "unk", "bos", "eos", "mask")} if vocab else {}
    value = {"format": "rnnzoo-onnx", "version": 1, "task": task_name, "model": model_name,
             "model_config": config["model"], "task_config": config["task"],
             "tokenizer_level": getattr(tokenizer, "level", None), "special_ids": specials, "files": files,
             "how": HOW[task_name],
             "graphs": {g.name: d for g, d in zip(graphs, described)}}
    if task_name == "generation":
        start = graphs[0].start(1)
        value["start"] = {name: {"shape": [int(n) for n in t.shape], "fill": 0.0}
                          for name, t in zip(graphs[0].input_names[1:], start)}
    positional = network if "positional" in traits_of(network) else getattr(network, "body", None)
    if positional is not None and "positional" in traits_of(positional):  # the trait names the attribute
        value["max_positions"] = int(positional.max_positions)
    return value
