"""Every registered model at two sizes: training and inference speed, peak memory, parameters.

`make bench` runs `python scripts/bench.py --out docs/bench.md`. The models are read from the
MODELS registry; how each is fed follows its traits:

* `sequence` models (elman, gru, jordan, lstm, modern_hopfield...): a language-model step as
  the tasks build it: token ids (B, T) -> an embedding of the row's width -> the model -> a
  linear head -> logits (B, T, V) -> cross-entropy against random targets.
* `token_input` + `masked_lm` models (bert): ids (B, T) -> the model -> its own masked-LM head
  at every position (BERT predicts 15% of them; here all) -> cross-entropy.
* `encoder_decoder` models (seq2seq, bahdanau, transformer): a source of T ids and a
  teacher-forced target of T ids -> logits (B, T, V), one pass (no decoding loop); tokens
  count the B x T target positions (the source, as long, is read but not counted).
* `associative_memory` models (hopfield, modern_hopfield): not token models; their rows count
  patterns: "train" stores P = N/10 random +-1 patterns of N units in an empty memory
  (patterns stored per second), "infer" recalls every stored pattern from a copy with 10% of
  its units flipped, until a fixed point or 100 sweeps (patterns recalled per second).

Every token row uses the same batch: B x T random ids from a vocabulary of V. Training
tokens/s time one whole step: forward, cross-entropy, backward, Adam step; inference tokens/s
one forward in eval mode under `torch.inference_mode`. Each call is warmed up, then timed in
interleaved rounds (rnnzoo.timing.measure: every round times every candidate once, in a rotated
order, so a busy moment of a shared machine hits all alike); the median round is reported.

Peak memory (MiB) = what stays between calls (parameters, buffers, Adam's moments) + the
largest growth of allocated tensor memory during one call: `torch.cuda.max_memory_allocated`
on CUDA, the CPU allocator's running total from `torch.profiler` allocation events on the CPU.
Tensor bytes, not RSS: the allocator's caches and Python's own memory are not counted.

Recurrent models with a PyTorch twin (nn.RNN, nn.GRU, nn.LSTM) are also timed, in the same
rounds, inside the same network with the body replaced by the twin (same weights) and by the
naive nn.*Cell loop; the ratio column divides our tokens/s by the faster of the two. Their
GFLOP/s count 2 x the weight-matrix entries of the model and the head per token
(rnnzoo.timing.forward_flops; training 3x forward; embedding lookups and elementwise work not
counted), given as a fraction of a plain (B x W) @ (W x W) matmul timed in the same rounds.

    python scripts/bench.py --out docs/bench.md      # the full run, one thread, a few minutes
    python scripts/bench.py --quick --out -          # tiny sizes, one round, stdout only
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnzoo.api import list_models
from rnnzoo.errors import RnnzooError
from rnnzoo.models.traits import model_traits
from rnnzoo.nn.recurrent import RecurrentEncoder
from rnnzoo.registry import MODELS, Entry
from rnnzoo.timing import CELLS, Candidate, cell_loop, cpu_name, forward_flops, load_average, matmul_candidates, measure
from rnnzoo.training.device import resolve_device

DEVICES = ("cpu", "cuda", "auto")
MiB = 2 ** 20
FLIPPED = 0.1  # share of a stored pattern's units flipped in its recall probe
RECALL_STEPS = 100  # most sweeps (or updates) a recall may take
SHOWN = {"d_model": "d_model", "embedding_dim": "E", "hidden_size": "H", "output_size": "O",
         "num_layers": "layers", "num_heads": "heads"}  # the options a row's configuration shows


@dataclass(frozen=True)
class Size:
    """One size of every family: `width` is hidden_size / d_model / embedding_dim, or the units
    N of a Hopfield net; `layers` and `heads` apply to the attention models only."""

    name: str
    width: int
    layers: int
    heads: int


@dataclass(frozen=True)
class Plan:
    """What a run measures and how long it times each candidate."""

    sizes: tuple[Size, ...]
    batch: int  # B sequences
    steps: int  # T tokens per sequence
    vocab: int  # V
    rounds: int
    min_time: float  # seconds per timing (rnnzoo.timing.measure repeats fast calls up to this)
    warmup: int
    peak_n: int  # side of the square matmul that gives the machine's peak


FULL = Plan((Size("small", 128, 4, 4), Size("large", 512, 6, 8)), batch=32, steps=64, vocab=256,
            rounds=3, min_time=0.2, warmup=1, peak_n=2048)
QUICK = Plan((Size("small", 16, 1, 2), Size("large", 32, 2, 2)), batch=4, steps=8, vocab=32,
             rounds=1, min_time=0.0, warmup=1, peak_n=64)


@dataclass
class Batch:
    """The one batch every token row reads, on the run's device."""

    source: Tensor  # (B, T) ids: a sequence model's input, an encoder-decoder's source
    lengths: Tensor  # (B,) all T: nothing is padded
    target_in: Tensor  # (B, T) ids: the teacher-forced decoder input
    targets: Tensor  # (B, T) ids the cross-entropy scores


@dataclass
class Workload:
    """A row's two timed calls and the bytes each keeps between calls."""

    train: Callable[[], object]
    infer: Callable[[], object]
    resident: Callable[[str], int]  # mode -> bytes of tensors alive between calls


@dataclass
class Row:
    """One line of the table: a model at one size, its candidates and its measurements."""

    model: str
    size: Size
    setting: str
    params: str
    unit: str  # "tokens" or "patterns"
    ours: Candidate
    workload: Workload
    twins: list[Candidate] = dataclasses.field(default_factory=list)
    memory: dict[str, int] = dataclasses.field(default_factory=dict)  # mode -> peak bytes


# --- the device -------------------------------------------------------------------------

def bench_device(name: str) -> torch.device:
    """cpu, cuda, or auto (rnnzoo's `resolve_device`); a one-line SystemExit otherwise."""
    choices = ", ".join(DEVICES)
    if name not in DEVICES:
        raise SystemExit(f"bench.py: unknown --device {name!r}; choices: {choices}")
    try:
        return resolve_device(name, "--device")
    except RnnzooError as error:
        raise SystemExit(f"bench.py: {error} (torch {torch.__version__}); choices: {choices}") from None


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def synced(fn: Callable[[], object], device: torch.device) -> Callable[[], object]:
    """`fn` followed by a wait for the device: CUDA runs kernels asynchronously, so a timing
    that did not wait would measure only the launches."""
    if device.type != "cuda":
        return fn

    def call() -> object:
        result = fn()
        torch.cuda.synchronize(device)
        return result
    return call


# --- feeding a model by its traits --------------------------------------------------------

def random_batch(plan: Plan, device: torch.device) -> Batch:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, plan.vocab, (3, plan.batch, plan.steps), generator=generator)  # past pad and specials
    lengths = torch.full((plan.batch,), plan.steps, dtype=torch.long)  # (B,)
    return Batch(ids[0].to(device), lengths.to(device), ids[1].to(device), ids[2].to(device))


class LanguageModel(nn.Module):
    """ids (B, T) -> logits (B, T, V) around a sequence model: embedding, the model, a linear head."""

    def __init__(self, body: nn.Module, input_size: int, output_size: int, vocab: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, input_size)
        self.body = body
        self.head = nn.Linear(output_size, vocab)

    def forward(self, batch: Batch) -> Tensor:
        features = self.body(self.embed(batch.source))[0]  # (B, T, output_size)
        return self.head(features)  # (B, T, V)


class MaskedLM(nn.Module):
    """ids (B, T) -> logits (B, T, V) of a token_input model through its own masked-LM head."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, batch: Batch) -> Tensor:
        hidden = self.body(batch.source, batch.lengths)[0]  # (B, T, H)
        return self.body.mlm_logits(hidden)  # (B, T, V)


class Translator(nn.Module):
    """(source, target_in) -> logits (B, T, V) of an encoder-decoder, teacher-forced in one pass."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, batch: Batch) -> Tensor:
        return self.body(batch.source, batch.lengths, batch.target_in)[0]  # (B, T, V)


class CellLoop(nn.Module):
    """PyTorch's naive way as a sequence model: one nn.*Cell call per step (rnnzoo.timing.cell_loop)."""

    def __init__(self, cell: nn.Module, lstm: bool) -> None:
        super().__init__()
        self.cell = cell
        self.loop = cell_loop(cell, lstm)

    def forward(self, x: Tensor) -> tuple[Tensor, None]:
        return self.loop(x), None  # (B, T, H)


def token_kind(traits: frozenset[str]) -> str | None:
    """How a model reads tokens: 'encoder_decoder', 'masked_lm', 'sequence', or None (it does not)."""
    if "encoder_decoder" in traits:
        return "encoder_decoder"
    if "token_input" in traits:
        return "masked_lm" if "masked_lm" in traits else None
    return "sequence" if "sequence" in traits else None


def is_recurrent(entry: Entry) -> bool:
    return isinstance(entry.target, type) and issubclass(entry.target, RecurrentEncoder)


def size_options(entry: Entry, size: Size, vocab: int) -> dict[str, Any]:
    """The options of `entry`'s config that size it: every width option the row's width, the
    attention models' layers and heads, the vocabularies. Jordan's output units are W/2, which
    gives it elman's FLOPs (as in bench_cells)."""
    W = size.width
    fields = {f.name for f in dataclasses.fields(entry.config)}
    wanted = {"input_size": W, "hidden_size": W, "d_model": W, "embedding_dim": W, "maxout_size": W,
              "attention_size": W, "output_size": W // 2 if is_recurrent(entry) else W,
              "num_heads": size.heads, "source_vocab_size": vocab, "target_vocab_size": vocab, "vocab_size": vocab}
    if "num_heads" in fields and "num_layers" in fields:  # the attention stacks
        wanted["num_layers"] = size.layers
    return {key: value for key, value in wanted.items() if key in fields}


def describe(options: dict[str, Any], traits: frozenset[str]) -> str:
    """The row's configuration as its sizing options, e.g. 'H=128 O=64' or 'd_model=512 layers=6 heads=8'."""
    shown = " ".join(f"{SHOWN[key]}={value}" for key, value in options.items() if key in SHOWN)
    if "encoder_decoder" in traits and "d_model" in options:
        shown += " (encoder and decoder)"
    return shown


def token_network(body: nn.Module, kind: str, options: dict[str, Any], vocab: int) -> nn.Module:
    """The network a token row trains: the model with what its kind needs around it."""
    if kind == "encoder_decoder":
        return Translator(body)
    if kind == "masked_lm":
        return MaskedLM(body)
    return LanguageModel(body, options["input_size"], body.output_size, vocab)


# --- the timed calls --------------------------------------------------------------------

def tensor_bytes(tensors: Iterable[Tensor]) -> int:
    """Bytes of distinct tensors (a tied weight counts once)."""
    unique = {t.data_ptr(): t.numel() * t.element_size() for t in tensors if t.numel()}
    return sum(unique.values())


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> Iterator[Tensor]:
    for state in optimizer.state.values():
        yield from (value for value in state.values() if isinstance(value, Tensor))


class TrainStep:
    """One optimizer step on the batch: forward, cross-entropy, backward, Adam step."""

    def __init__(self, net: nn.Module, batch: Batch) -> None:
        self.net, self.batch = net, batch
        self.optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)

    def __call__(self) -> None:
        self.net.train()
        logits = self.net(self.batch)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), self.batch.targets.flatten())
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)  # between steps only weights and Adam's moments stay

    def resident(self) -> int:
        return tensor_bytes([*self.net.parameters(), *self.net.buffers(), *optimizer_tensors(self.optimizer)])


def inference(net: nn.Module, batch: Batch) -> Callable[[], Tensor]:
    def infer() -> Tensor:
        net.eval()
        with torch.inference_mode():
            return net(batch)  # (B, T, V)
    return infer


def token_workload(net: nn.Module, batch: Batch, device: torch.device) -> Workload:
    step = TrainStep(net, batch)
    weights = tensor_bytes([*net.parameters(), *net.buffers()])
    return Workload(synced(step, device), synced(inference(net, batch), device),
                    lambda mode: step.resident() if mode == "train" else weights)


def candidate(label: str, family: str, kind: str, work: Workload, flops: float, count: int) -> Candidate:
    return Candidate(label, family, kind, flops, count, work.infer, work.train)


# --- the rows ---------------------------------------------------------------------------

def twin_bodies(body: RecurrentEncoder) -> dict[str, nn.Module]:
    """PyTorch's two ways of running our recurrent body: its twin (same weights), the cell loop."""
    twin = copy.deepcopy(body.rnn)
    cell_type = CELLS[type(twin)]
    extra = {"nonlinearity": twin.nonlinearity} if cell_type is nn.RNNCell else {}
    cell = cell_type(body.input_size, body.hidden_size, **extra).to(next(twin.parameters()).device)
    return {f"nn.{type(twin).__name__}": twin,
            f"nn.{cell_type.__name__} loop": CellLoop(cell, lstm=cell_type is nn.LSTMCell)}


def twin_candidates(name: str, net: LanguageModel, batch: Batch, flops: float, device: torch.device
                    ) -> list[Candidate]:
    """Our network with the body swapped for each PyTorch way (same embedding and head)."""
    found = []
    for label, replacement in twin_bodies(net.body).items():
        twin_net = copy.deepcopy(net)
        twin_net.body = replacement
        kind = "torch cell loop" if label.endswith("loop") else "torch twin"
        found.append(candidate(f"{name}: {label}", name, kind, token_workload(twin_net, batch, device), flops,
                               batch.targets.numel()))
    return found


def recurrent_flops(net: LanguageModel, tokens: int) -> float:
    """Forward FLOPs of one call: the model's and the head's weight matmuls (no embedding lookup)."""
    return (forward_flops(net.body) + forward_flops(net.head)) * tokens


def token_row(entry: Entry, size: Size, batch: Batch, plan: Plan, device: torch.device) -> Row:
    options = size_options(entry, size, plan.vocab)
    config = entry.make_config(options, where=f"model '{entry.name}'")
    traits = model_traits(entry.name, config)
    torch.manual_seed(0)
    body = entry.target(config)
    net = token_network(body, token_kind(traits), options, plan.vocab).to(device)
    tokens = batch.targets.numel()
    twin = is_recurrent(entry) and body.rnn is not None
    flops = recurrent_flops(net, tokens) if is_recurrent(entry) else 0.0
    work = token_workload(net, batch, device)
    ours = candidate(entry.name, entry.name, "rnnzoo", work, flops, tokens)
    params = f"{sum(p.numel() for p in body.parameters()):,}"
    twins = twin_candidates(entry.name, net, batch, flops, device) if twin else []
    return Row(entry.name, size, describe(options, traits), params, "tokens", ours, work, twins)


def noisy_copies(patterns: Tensor, generator: torch.Generator) -> Tensor:
    """Each pattern (P, N) with a random FLIPPED share of its units negated."""
    flip = torch.rand(patterns.shape, generator=generator) < FLIPPED  # (P, N)
    return torch.where(flip, -patterns, patterns)


def memory_row(entry: Entry, size: Size, device: torch.device) -> Row:
    """Store P = N/10 patterns of N = width units; recall each from a noisy copy."""
    N = size.width
    generator = torch.Generator().manual_seed(0)
    patterns = torch.randint(0, 2, (max(1, N // 10), N), generator=generator).float() * 2 - 1  # (P, N) of ±1
    probes = noisy_copies(patterns, generator).to(device)  # (P, N)
    patterns = patterns.to(device)

    def store() -> nn.Module:
        fresh = entry.target(entry.make_config({})).to(device)
        fresh.store(patterns)
        return fresh

    memory = store()
    stored = tensor_bytes(memory.buffers())

    def recall() -> Tensor:  # a fresh seed: every call walks the units in the same order
        return memory.recall(probes, RECALL_STEPS, torch.Generator().manual_seed(0))  # (P, N)

    work = Workload(synced(store, device), synced(recall, device), lambda mode: 0 if mode == "train" else stored)
    count = patterns.shape[0]
    ours = candidate(f"{entry.name} (memory)", entry.name, "rnnzoo", work, 0.0, count)
    values = sum(b.numel() for b in memory.buffers())
    return Row(entry.name, size, f"N={N} units, P={count} patterns", f"{values:,} stored", "patterns", ours, work)


def rows_for(size: Size, batch: Batch, plan: Plan, device: torch.device) -> list[Row]:
    """Every registered model's rows at `size`: a token row, a memory row, or both."""
    rows = []
    for entry in MODELS:
        traits = model_traits(entry.name)
        if token_kind(traits):
            rows.append(token_row(entry, size, batch, plan, device))
        if "associative_memory" in traits:
            rows.append(memory_row(entry, size, device))
    return rows


# --- memory -----------------------------------------------------------------------------

@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2: the profiler's C++ side prints two lines per use there."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def profiler_nodes(nodes: Iterable[Any]) -> Iterator[Any]:
    for node in nodes:
        yield node
        yield from profiler_nodes(node.children)


def cpu_peak_growth(fn: Callable[[], object]) -> int:
    """Largest growth of CPU tensor memory during fn(): the profiler's running allocation total."""
    with quiet_stderr(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                                profile_memory=True) as prof:
        fn()
    totals = [node.extra_fields.total_allocated
              for node in profiler_nodes(prof.profiler.kineto_results.experimental_event_tree())
              if hasattr(node.extra_fields, "total_allocated") and node.extra_fields.device.type == "cpu"]
    return max([0, *totals])


def cuda_peak_growth(fn: Callable[[], object], device: torch.device) -> int:
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    return torch.cuda.max_memory_allocated(device) - before


def measure_memory(row: Row, device: torch.device) -> None:
    """Peak bytes of each mode: what stays between calls + the largest growth during one call."""
    for mode in ("train", "infer"):
        fn = getattr(row.workload, mode)
        growth = cuda_peak_growth(fn, device) if device.type == "cuda" else cpu_peak_growth(fn)
        row.memory[mode] = row.workload.resident(mode) + growth


# --- report -----------------------------------------------------------------------------

def twin_ratio(row: Row) -> str:
    """Our tokens/s over the faster PyTorch way's, train / infer; '—' without a twin."""
    if not row.twins:
        return "—"
    ratios = [row.ours.tokens_per_s(mode) / max(t.tokens_per_s(mode) for t in row.twins)
              for mode in ("train", "infer")]
    return " / ".join(f"{r:.2f}x" for r in ratios)


def matmul_share(row: Row, reference: tuple[float, float]) -> str:
    """Training GFLOP/s and its share of the step-shaped and of the peak matmul's; '—' for
    non-recurrent rows."""
    if not row.ours.flops:
        return "—"
    achieved = row.ours.gflops("train")
    step, peak = reference
    return f"{short(achieved)} ({achieved / step:.0%} / {achieved / peak:.0%})"


def short(value: float) -> str:
    """One decimal; two significant digits below 1, so that a tiny model's numbers show > 0."""
    return f"{value:,.1f}" if value >= 1 else f"{value:.2g}"


def row_line(row: Row, reference: tuple[float, float]) -> str:
    c = row.ours
    memory = " / ".join(short(row.memory[mode] / MiB) for mode in ("train", "infer"))
    return (f"| {row.model} | {row.size.name} | {row.setting} | {row.params} | {row.unit} "
            f"| {c.tokens_per_s('train'):,.0f} | {c.tokens_per_s('infer'):,.0f} | {memory} | {twin_ratio(row)} "
            f"| {matmul_share(row, reference)} | {c.spread():.1f}x |")


def main_table(rows: list[Row], sizes: tuple[Size, ...], references: dict[str, tuple[float, float]]
               ) -> list[str]:
    """One line per model and size: by model, then size, token row before memory row."""
    lines = ["| model | size | configuration | parameters | unit | train /s | infer /s | peak MiB train / infer "
             "| vs faster torch twin, train / infer | train GFLOP/s (% of step / peak matmul) | spread |",
             "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    ordered = sorted(rows, key=lambda r: (r.model, sizes.index(r.size), r.unit == "patterns"))
    return lines + [row_line(row, references[row.size.name]) for row in ordered]


def twins_table(rows: list[Row]) -> list[str]:
    lines = ["| PyTorch way | size | train tokens/s | infer tokens/s | spread |", "|---|---|---:|---:|---:|"]
    for row in rows:
        lines += [f"| {t.label} | {row.size.name} | {t.tokens_per_s('train'):,.0f} | {t.tokens_per_s('infer'):,.0f} "
                  f"| {t.spread():.1f}x |" for t in row.twins]
    return lines


def matmul_lines(plan: Plan, matmuls: dict[str, list[Candidate]]) -> list[str]:
    lines = []
    for size in plan.sizes:
        step, peak = (c.gflops("infer") for c in matmuls[size.name])
        lines.append(f"* {size.name}: ({plan.batch}x{size.width}) @ ({size.width}x{size.width}) matmul "
                     f"{step:.1f} GFLOP/s; {plan.peak_n}^2 matmul (peak) {peak:.1f} GFLOP/s")
    return lines


def memory_measure(device: torch.device) -> str:
    if device.type == "cuda":
        return "torch.cuda.max_memory_allocated"
    return "the CPU allocator's running total, from torch.profiler's allocation events"


COLUMNS = """\
* parameters: the model's trainable parameters (not the embedding and head the bench puts around a
  sequence model); for the memories, the values they hold after storing (N x N weights and N
  thresholds, or the P x N patterns).
* train /s: tokens per second of a whole training step (forward, cross-entropy, backward, Adam
  step); for the memories (unit: patterns) patterns stored per second. infer /s: tokens per
  second of one forward in eval mode; for the memories, patterns recalled per second.
* encoder-decoders (seq2seq, bahdanau, transformer): one teacher-forced pass over a source and a
  target of T tokens each; the T target tokens are counted.
* peak MiB: parameters, buffers and Adam's moments + the largest growth of allocated tensor
  memory during one call ({memory}); tensors, not RSS.
* vs faster torch twin: our tokens/s over the faster of the twin module (nn.RNN/GRU/LSTM, same
  weights) and the nn.*Cell loop, each inside the same embedding and head; '—' where the family
  has no twin (jordan) or is not recurrent. Our lstm, gru and elman run PyTorch's kernel by
  default (impl=auto), so about 1.00x is expected: the ratio shows the cost of our wrapper and
  the noise; scripts/bench_cells.py times the reference loops.
* train GFLOP/s: the weight matmuls of the model and head (training 3x forward), as a share of
  the step-shaped (B x W) @ (W x W) matmul and of the peak (a large square matmul), both timed
  in the same rounds (below). Above 100% of the step matmul is possible: the LSTM's gate matmul
  is 4x wider and the head's reads all B x T tokens at once.
* spread: slowest round over fastest (the worse of train and infer), the noise of the machine.
"""


def header(argv: list[str], plan: Plan, device: torch.device, load_start: str) -> list[str]:
    command = " ".join(["python scripts/bench.py", *argv])
    return ["# Every model: speed, memory, size", "",
            f"`{command}`: {datetime.datetime.now().isoformat(timespec='minutes')}, torch {torch.__version__}, "
            f"{device.type} ({device_name(device)}), {torch.get_num_threads()} thread(s); load average "
            f"(1, 5, 15 min) at the start {load_start}. Batch {plan.batch} x {plan.steps} tokens, vocabulary "
            f"{plan.vocab}; median of {plan.rounds} interleaved rounds. How each model is fed: the docstring "
            "of scripts/bench.py.", "", COLUMNS.format(memory=memory_measure(device))]


def report(argv: list[str], plan: Plan, device: torch.device, load_start: str, rows: list[Row],
           matmuls: dict[str, list[Candidate]], seconds: float) -> str:
    references = {name: (step.gflops("infer"), peak.gflops("infer")) for name, (step, peak) in matmuls.items()}
    lines = header(argv, plan, device, load_start)
    lines += main_table(rows, plan.sizes, references) + ["", "Matmuls timed in the same rounds:", ""]
    lines += matmul_lines(plan, matmuls) + ["", "The PyTorch twins behind the ratio column:", ""]
    lines += twins_table(rows)
    lines += ["", f"Whole run {seconds:.0f} s; load average at the end {load_average()}."]
    return "\n".join(lines) + "\n"


# --- the run ----------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (auto: CUDA if there is one)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: reproducible on a shared machine)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round: a few seconds (the test's)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds, median taken (default 5)")
    parser.add_argument("--out", default="docs/bench.md", help="markdown file to write ('-': stdout only)")
    args = parser.parse_args(argv)
    if args.threads < 1 or (args.rounds is not None and args.rounds < 1):
        raise SystemExit("bench.py: --threads and --rounds must be >= 1")
    return args


def measure_size(size: Size, plan: Plan, device: torch.device) -> tuple[list[Row], list[Candidate]]:
    """Build, time (all candidates interleaved) and weigh every row of one size."""
    batch = random_batch(plan, device)
    rows = rows_for(size, batch, plan, device)
    matmuls = matmul_candidates(plan.batch, size.width, plan.peak_n, device)
    for m in matmuls:
        m.infer = synced(m.infer, device)
    candidates = [c for row in rows for c in (row.ours, *row.twins)] + matmuls
    measure(candidates, plan.rounds, plan.min_time, plan.warmup)
    for row in rows:
        measure_memory(row, device)
    return rows, matmuls


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; print the report, write it to --out unless '-'; return it."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    device = bench_device(args.device)
    torch.set_num_threads(args.threads)
    list_models()  # registers every model
    plan = QUICK if args.quick else FULL
    plan = dataclasses.replace(plan, rounds=args.rounds or plan.rounds)
    load_start, start = load_average(), time.perf_counter()
    rows, matmuls = [], {}
    for size in plan.sizes:
        size_rows, matmuls[size.name] = measure_size(size, plan, device)
        rows += size_rows
        print(f"{size.name}: measured {len(size_rows)} rows in {time.perf_counter() - start:.0f} s", flush=True)
    text = report(argv, plan, device, load_start, rows, matmuls, time.perf_counter() - start)
    print(text)
    if args.out != "-":
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    return text


if __name__ == "__main__":
    main()
