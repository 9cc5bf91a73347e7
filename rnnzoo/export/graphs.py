"""Each task's inference graph as a module of plain tensors in and out, for `torch.onnx.export`.

A trained network reads task objects (a `TextBatch`, a `Memory`, a cache of nested dicts and
tuples); an exported graph reads and writes flat, named tensors. `graphs_of(task, network)`
gives the graphs of a task, each a `Graph`: the wrapper module, its input and output names,
which input axes are dynamic, and how to make inputs for it (random ones of any batch and
length, and real ones from a batch of the task's validation data). The networks themselves are
untouched: every wrapper calls the network's own methods.

| task | graph | inputs -> outputs |
|---|---|---|
| tagging | tagger | ids (B, T), lengths (B,) [, chars (B, T, C)] [, starts (B, W)] -> emissions (B, W, K) |
| classification | classifier | ids (B, T), lengths (B,) -> logits (B, C) |
| generation | step | ids (B, T), state... -> logits (B, T, V), new_state... |
| translation | encoder | source (B, S), source_lengths (B,) -> memory..., cache... (the decoder's start) |
| translation | decoder_step | previous (B,), memory..., cache... -> logits (B, V), new_cache... [, attention (B, S)] |

A tagger's CRF (Huang et al. 2015) stays outside the graph: its transition, start and end
scores go beside it (rnnzoo.export.onnx writes crf.json) and Viterbi runs in the caller,
O(T K^2) on the emissions. The generation step's state is an RNN's (h[, c]) of shape
(layers * directions, B, H), or a decoder Transformer's KV cache (`inputs`, `keys{i}`,
`values{i}`, past length P, which may be 0); passing `new_*` back as the next call's state
continues the text, as `rnnzoo sample` does.
"""

from __future__ import annotations

import copy
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from ..data.vocab import BOS
from ..nn.encoder_decoder import Memory
from ..nn.recurrent import RecurrentEncoder, reverse_padded
from ..tasks.text import TextBatch

Inputs = tuple[Tensor, ...]


@dataclass
class Graph:
    """One exported graph. `random(batch, length, generator)` makes inputs of that size;
    `real(batch)` turns a batch of the task's validation data into inputs (None: none)."""

    name: str
    module: nn.Module
    input_names: list[str]
    output_names: list[str]
    input_axes: dict[str, dict[int, str]]
    random: Callable[[int, int, torch.Generator], Inputs]
    real: Callable[[Any], Inputs] | None = None
    about: str = ""
    one_query: bool = False  # a KV-cache step: one query per call (see rnnzoo.export.onnx.one_query_attention)
    start: Callable[[int], list[Tensor]] | None = None  # generation: the state before any token, for a batch
    reference: nn.Module | None = field(default=None, repr=False)  # what the check compares with: the
    #: network as trained, where `module` runs a rewritten one (see `with_scripted_loops`)

    @property
    def pytorch(self) -> nn.Module:
        return self.reference if self.reference is not None else self.module


@contextmanager
def quiet() -> Iterator[None]:
    """Tracing and scripting warn about every traced shape, and that torch.jit is deprecated
    (torch 2.13): none of it says anything to the user of an export."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- flattening nested state --------------------------------------------------------------------
def flatten(prefix: str, structure: Any) -> list[tuple[str, Tensor]]:
    """(name, tensor) of every tensor in a nested dict/tuple: `state` for one tensor, `state0`,
    `state1` for a tuple, `cache.keys0` for a dict entry."""
    if isinstance(structure, Tensor):
        return [(prefix, structure)]
    if isinstance(structure, dict):
        return [item for key in sorted(structure) for item in flatten(f"{prefix}.{key}", structure[key])]
    if isinstance(structure, (tuple, list)):
        return [item for i, part in enumerate(structure) for item in flatten(f"{prefix}{i}", part)]
    raise TypeError(f"cannot flatten {type(structure).__name__}")


def unflatten(like: Any, tensors: list[Tensor]) -> Any:
    """The inverse of `flatten`: `tensors` in flatten's order, in the shape of `like`."""
    if isinstance(like, Tensor):
        return tensors.pop(0)
    if isinstance(like, dict):
        return {key: unflatten(like[key], tensors) for key in sorted(like)}
    return type(like)(unflatten(part, tensors) for part in like)


def varying_axes(first: list[tuple[str, Tensor]], second: list[Tensor], sizes: dict[int, str]
                 ) -> dict[str, dict[int, str]]:
    """The axes of each named tensor that differ between two runs at different sizes: the
    dynamic ones, each named by its size in the first run (`sizes`: 2 -> "batch", ...)."""
    return {name: {axis: sizes.get(x.shape[axis], f"{name}_{axis}")
                   for axis in range(x.dim()) if x.shape[axis] != y.shape[axis]}
            for (name, x), y in zip(first, second)}


def memory_dict(memory: Memory) -> dict[str, Tensor]:
    """A `Memory` as flat named tensors (its extras beside states and mask), and back below."""
    return {"states": memory.states, "mask": memory.mask, **memory.extras}


def dict_memory(values: dict[str, Tensor]) -> Memory:
    extras = {k: v for k, v in values.items() if k not in ("states", "mask")}
    return Memory(values["states"], values["mask"], extras)


def random_ids(batch: int, length: int, vocab: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Right-padded ids (B, T) in [1, vocab), 0 at pads, and lengths (B,): the first row full,
    the others of random lengths in [1, T]."""
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    lengths[0] = length
    ids = torch.randint(1, max(vocab, 2), (batch, length), generator=generator)
    return ids.masked_fill(torch.arange(length) >= lengths[:, None], 0), lengths


# --- tagging and classification -----------------------------------------------------------------
class TextGraph(nn.Module):
    """ids (B, T), lengths (B,) [, chars (B, T, C)] [, starts (B, W)] -> the network's output on
    the `TextBatch` they make (a tagger's emissions (B, W, K), a classifier's logits (B, C))."""

    def __init__(self, network: nn.Module, chars: bool, starts: bool) -> None:
        super().__init__()
        self.network, self.chars, self.starts = network, chars, starts

    def forward(self, ids: Tensor, lengths: Tensor, *extra: Tensor) -> Tensor:
        mask = torch.arange(ids.shape[1]) < lengths.unsqueeze(1)  # (B, T)
        batch = TextBatch(ids, mask.long(), mask, lengths)
        extra_list = list(extra)
        if self.chars:
            batch.chars = extra_list.pop(0)
        if self.starts:
            batch.starts = extra_list.pop(0)
        return self.network(batch)


def text_graph(name: str, task: Any, network: nn.Module, output: str, about: str) -> Graph:
    """The tagger's or the classifier's graph: character ids where the task has character
    features, first-piece positions where a tagger reads subwords or a framed (BERT) input."""
    chars = getattr(task, "chars", None) is not None
    starts = bool(getattr(task, "framed", False)) or task.tokenizer.level != "word"
    starts = starts and name == "tagger"
    vocab = len(task.tokenizer)
    names = ["ids", "lengths"] + (["chars"] if chars else []) + (["starts"] if starts else [])
    axes = {"ids": {0: "batch", 1: "length"}, "lengths": {0: "batch"}, "chars": {0: "batch", 1: "length", 2: "chars"},
            "starts": {0: "batch", 1: "words"}}

    def random(batch: int, length: int, generator: torch.Generator) -> Inputs:
        ids, lengths = random_ids(batch, length, vocab, generator)
        extra = []
        if chars:
            extra.append(torch.randint(0, len(task.chars), (batch, length, 4), generator=generator))
        if starts:  # every token starts a word: W = T
            extra.append(torch.arange(length).expand(batch, length).clone())
        return (ids, lengths, *extra)

    def real(batch: TextBatch) -> Inputs:
        extra = ([batch.chars] if chars else []) + ([batch.starts] if starts else [])
        return (batch.inputs, batch.lengths, *extra)

    return Graph(name, TextGraph(network, chars, starts), names, [output], {n: axes[n] for n in names},
                 random, real, about)


# --- generation -----------------------------------------------------------------------------
class StepGraph(nn.Module):
    """ids (B, T), state... -> logits (B, T, V), new_state...: the language model continuing
    from its state (`like`: the state's nesting, for `unflatten`)."""

    def __init__(self, network: nn.Module, like: Any) -> None:
        super().__init__()
        self.network, self.like = network, like

    def forward(self, ids: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        logits, new_state = self.network(ids, None, unflatten(self.like, list(state)))  # (B, T, V)
        return (logits, *(t for _, t in flatten("state", new_state)))


def generation_graph(task: Any, network: nn.Module) -> Graph:
    """The language model's step: token ids and the state in, logits and the new state out.
    The state's dynamic axes (batch; a KV cache's past) are found by comparing two runs."""
    vocab = task.vocab_size

    def state_after(prefix: Tensor) -> Any:
        """The network's state after reading `prefix` (B, P) from its start."""
        with torch.no_grad():
            _, state = network(prefix, None, None)
        return state

    like = state_after(torch.ones(2, 3, dtype=torch.long))
    state_names = [name for name, _ in flatten("state", like)]
    kv_cache = isinstance(like, dict)  # a decoder Transformer's; an RNN's state is a tensor or a tuple
    later = [t for _, t in flatten("state", state_after(torch.ones(3, 5, dtype=torch.long)))]
    axes = {"ids": {0: "batch"} if kv_cache else {0: "batch", 1: "length"},
            **varying_axes(flatten("state", like), later, {2: "batch", 3: "past"})}

    def start(batch: int) -> list[Tensor]:
        """The state before any token: an RNN's zeros, or a KV cache of no position (past = 0)."""
        started = []
        for name, tensor in flatten("state", state_after(torch.ones(batch, 1, dtype=torch.long))):
            past = [axis for axis, what in axes[name].items() if what == "past"]
            started.append(tensor.narrow(past[0], 0, 0) if past else torch.zeros_like(tensor))
        return started

    def random(batch: int, length: int, generator: torch.Generator) -> Inputs:
        prefix = torch.randint(0, vocab, (batch, length // 2 + 1), generator=generator)
        ids = torch.randint(0, vocab, (batch, 1 if kv_cache else length), generator=generator)
        return (ids, *(t for _, t in flatten("state", state_after(prefix))))

    def real(batch: Any) -> Inputs:
        """The state after the first half of each window of real text, and what follows it."""
        text = batch.inputs  # (B, T)
        cut = text.shape[1] // 2
        if cut == 0:
            return (text, *start(text.shape[0]))
        ids = text[:, cut:cut + 1] if kv_cache else text[:, cut:]
        return (ids, *(t for _, t in flatten("state", state_after(text[:, :cut]))))

    return Graph("step", StepGraph(network, like), ["ids", *state_names],
                 ["logits", *(f"new_{n}" for n in state_names)], axes, random, real,
                 "one token per call (a KV cache)" if kv_cache else "a chunk of tokens (one or more) from the state",
                 one_query=kv_cache, start=start)


# --- translation ----------------------------------------------------------------------------
class EncoderGraph(nn.Module):
    """source (B, S), source_lengths (B,) -> memory..., cache...: the source read once, and the
    decoder's cache before its first step."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, source: Tensor, source_lengths: Tensor) -> tuple[Tensor, ...]:
        memory = self.model.encode(source, source_lengths)
        cache = self.model.start(memory)
        return (*(t for _, t in flatten("memory", memory_dict(memory))), *(t for _, t in flatten("cache", cache)))


class DecoderStepGraph(nn.Module):
    """previous (B,), memory..., cache... -> logits (B, V), new_cache... [, attention (B, S)]."""

    def __init__(self, model: nn.Module, memory_like: dict[str, Tensor], cache_like: Any, attention: bool) -> None:
        super().__init__()
        self.model, self.memory_like, self.cache_like = model, memory_like, cache_like
        self.attention = attention
        self.memory_count = len(flatten("memory", memory_like))

    def forward(self, previous: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
        flat = list(tensors)
        memory = dict_memory(unflatten(self.memory_like, flat[:self.memory_count]))
        cache = unflatten(self.cache_like, flat[self.memory_count:])
        logits, cache, weights = self.model.decode_step(previous, memory, cache)
        out = (logits, *(t for _, t in flatten("cache", cache)))
        return (*out, weights) if self.attention else out


def translation_graphs(task: Any, network: nn.Module) -> list[Graph]:
    """The encoder, and the decoder step that reads its memory and carries the cache."""
    source_vocab, target_vocab = len(task.source_tokenizer), len(task.tokenizer)
    bos = task.specials[BOS]

    def encoded(source: Tensor, lengths: Tensor) -> tuple[dict[str, Tensor], Any]:
        with torch.no_grad():
            memory = network.encode(source, lengths)
            return memory_dict(memory), network.start(memory)

    generator = torch.Generator().manual_seed(0)
    memory_like, cache_like = encoded(*random_ids(2, 5, source_vocab, generator))
    with torch.no_grad():
        _, _, weights = network.decode_step(torch.tensor([bos, bos]), dict_memory(memory_like), cache_like)
    attention = weights is not None
    memory_names = [n for n, _ in flatten("memory", memory_like)]
    cache_names = [n for n, _ in flatten("cache", cache_like)]
    kv_cache = isinstance(cache_like, dict)  # a Transformer's keys and values, else an RNN's state

    def source_random(batch: int, length: int, generator: torch.Generator) -> Inputs:
        return random_ids(batch, length, source_vocab, generator)

    def step_inputs(source: Tensor, lengths: Tensor, previous: list[Tensor]) -> Inputs:
        """The decoder step's inputs after the steps `previous` (each (B,)) from the start."""
        memory, cache = encoded(source, lengths)
        with torch.no_grad():
            for ids in previous:
                _, cache, _ = network.decode_step(ids, dict_memory(memory), cache)
        last = previous[-1] if previous else torch.full((source.shape[0],), bos)
        return (last, *(t for _, t in flatten("memory", memory)), *(t for _, t in flatten("cache", cache)))

    def step_random(batch: int, length: int, generator: torch.Generator) -> Inputs:
        source, lengths = source_random(batch, length, generator)
        previous = [torch.randint(1, target_vocab, (batch,), generator=generator) for _ in range(length // 2)]
        return step_inputs(source, lengths, previous)

    # which axes of the memory and the cache vary: two runs compared, batch 2, source 7, 3 steps
    # done, and batch 3, source 9, 4 steps done
    first, second = step_random(2, 7, generator), step_random(3, 9, generator)
    step_axes = varying_axes(list(zip(memory_names + cache_names, first[1:])), list(second[1:]),
                             {2: "batch", 7: "source_length", 3: "past"})
    encoder = Graph("encoder", EncoderGraph(network), ["source", "source_lengths"], memory_names + cache_names,
                    {"source": {0: "batch", 1: "source_length"}, "source_lengths": {0: "batch"}},
                    source_random, lambda batch: (batch.source, batch.source_lengths),
                    "reads the source once: the memory and the decoder's first cache")
    step = Graph("decoder_step", DecoderStepGraph(network, memory_like, cache_like, attention),
                 ["previous", *memory_names, *cache_names],
                 ["logits", *(f"new_{n}" for n in cache_names), *(["attention"] if attention else [])],
                 {"previous": {0: "batch"}, **step_axes}, step_random,
                 lambda batch: step_inputs(batch.source, batch.source_lengths, list(batch.target_in.unbind(1))[:3]),
                 "one decoder step: the previous target token (<bos> first) to next-token logits", one_query=kv_cache)
    return [encoder, step]


# --- recurrent models whose time loop is Python ------------------------------------------------
class CellStep(nn.Module):
    """One cell's step with its weights, the state's parts concatenated:
    x_proj (B, G*H), state (B, arity * cell_size) -> h (B, cell_size), new state (same shape)."""

    def __init__(self, body: RecurrentEncoder, layer: int, direction: int) -> None:
        super().__init__()
        self.body, self.layer, self.direction = body, layer, direction

    def forward(self, x_proj: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        _, w_hh, _, b_hh, *extra = self.body.cell_weights(self.layer, self.direction)
        h, new = self.body.cell_step(x_proj, tuple(state.chunk(self.body.state_arity, -1)), w_hh, b_hh, *extra)
        return h, torch.cat(new, -1)


class TimeLoop(nn.Module):
    """The time loop, for `torch.jit.script`: the ONNX exporter turns it into an ONNX Loop over
    however many steps the input has. `step` is a traced `CellStep`. Past a sequence's end
    (mask 0) the state is kept and the output is 0, as in rnnzoo.nn.recurrent."""

    def __init__(self, step: nn.Module) -> None:
        super().__init__()
        self.step = step

    def forward(self, x_proj: Tensor, mask: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        outputs: list[Tensor] = []  # x_proj (T, B, G*H), mask (T, B, 1) bool, state (B, arity * H)
        for t in range(x_proj.size(0)):
            h, new = self.step(x_proj[t], state)
            state = torch.where(mask[t], new, state)
            outputs.append(h * mask[t].to(h.dtype))
        return torch.stack(outputs, 0), state  # (T, B, cell_size)


class ScriptedRecurrence(nn.Module):
    """A recurrent stack run as `RecurrentEncoder`'s reference loop does (layers, directions,
    padding, PyTorch's state layout), with each cell's time loop a scripted `TimeLoop`, so that
    the exported graph reads any length. For models without a PyTorch twin (jordan), whose
    Python loop a trace would unroll."""

    def __init__(self, body: RecurrentEncoder) -> None:
        super().__init__()
        self.body = body
        self.output_size = body.output_size
        size, arity = body.cell_size, body.state_arity
        loops = []
        for layer, direction in ((layer, direction) for layer in range(body.num_layers)
                                 for direction in range(body.num_directions)):
            w_ih = body.cell_weights(layer, direction)[0]
            example = (torch.zeros(2, w_ih.shape[0]), torch.zeros(2, arity * size))  # (B, G*H), (B, arity*H)
            with quiet():
                traced = torch.jit.trace(CellStep(body, layer, direction).eval(), example, check_trace=False)
                loops.append(torch.jit.script(TimeLoop(traced)))
        self.loops = nn.ModuleList(loops)

    def forward(self, x: Tensor, lengths: Tensor | None = None, state: Any = None) -> tuple[Tensor, Any]:
        body = self.body
        B, T, _ = x.shape
        steps = torch.arange(T).unsqueeze(0)  # (1, T)
        mask = (steps < lengths.unsqueeze(1)) if lengths is not None else steps.expand(B, T) >= 0  # (B, T)
        mask = mask.t().unsqueeze(-1)  # (T, B, 1)
        parts = (state,) if isinstance(state, Tensor) else state
        layer_input, finals = x, []
        for layer in range(body.num_layers):
            outputs = []
            for direction in range(body.num_directions):
                index = layer * body.num_directions + direction
                w_ih, _, b_ih, *_ = body.cell_weights(layer, direction)
                if parts is None:
                    start = x.new_zeros(B, body.state_arity * body.cell_size)
                else:
                    start = torch.cat([p[index] for p in parts], -1)
                seq = reverse_padded(layer_input, lengths) if direction else layer_input
                x_proj = nn.functional.linear(seq, w_ih, b_ih).transpose(0, 1)  # (T, B, G*H)
                out, final = self.loops[index](x_proj, mask, start)
                out = out.transpose(0, 1)  # (B, T, cell_size)
                outputs.append(reverse_padded(out, lengths) if direction else out)
                finals.append(final.chunk(body.state_arity, -1))
            layer_input = torch.cat(outputs, -1)  # (B, T, D * cell_size); no dropout: eval
        merged = tuple(torch.stack([f[k] for f in finals]) for k in range(body.state_arity))
        return layer_input, merged[0] if body.state_arity == 1 else merged


    def __getattr__(self, name: str) -> Any:
        """What the model around it asks of its recurrent layer (state_arity, num_layers...): the body's."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("body"), name)


def needs_loop(module: nn.Module) -> bool:
    """A recurrent stack that would run its Python time loop (no PyTorch twin, or impl=reference)."""
    return isinstance(module, RecurrentEncoder) and (module.rnn is None or module.impl == "reference")


def with_scripted_loops(network: nn.Module) -> nn.Module:
    """`network` itself, or a copy in which every recurrent stack that runs a Python time loop
    (a tagger's body, a seq2seq's encoder and decoder) is a `ScriptedRecurrence` of its own."""
    if not any(needs_loop(m) for m in network.modules()):
        return network
    copied = copy.deepcopy(network)
    for parent in list(copied.modules()):
        for name, child in list(parent.named_children()):
            if needs_loop(child):
                setattr(parent, name, ScriptedRecurrence(child))
    return copied


TASKS_EXPORTED = ("tagging", "classification", "generation", "translation")


def graphs_of(task_name: str, task: Any, network: nn.Module) -> list[Graph]:
    """The inference graphs of a task's network (see the module docstring); where the network's
    body has a Python time loop, each graph runs it scripted and is checked against the original."""
    exported = with_scripted_loops(network)
    graphs = task_graphs(task_name, task, exported)
    if exported is not network:
        for graph, original in zip(graphs, task_graphs(task_name, task, network)):
            graph.reference = original.module
    return graphs


def task_graphs(task_name: str, task: Any, network: nn.Module) -> list[Graph]:
    if task_name == "tagging":
        return [text_graph("tagger", task, network, "emissions", "emission scores per word")]
    if task_name == "classification":
        return [text_graph("classifier", task, network, "logits", "class logits per text")]
    if task_name == "generation":
        return [generation_graph(task, network)]
    if task_name == "translation":
        return translation_graphs(task, network)
    raise ValueError(task_name)
