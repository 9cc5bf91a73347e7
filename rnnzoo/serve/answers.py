"""One answer per task: the task's own structured method called, its result and its views.

Nothing here decodes: each function calls the method `rnnzoo predict`, `sample` or `translate`
also goes through (TaggingTask.tag_lines, ClassificationTask.class_probabilities,
GenerationTask.sample_steps, TranslationTask.decode_lines, AssociativeTask.recall_steps), so
the CLI and the server give the same answer to the same input. An `Answer` also names the
token lists a recorded tensor's time axis may be labelled with (rnnzoo.serve.views).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..errors import RnnzooError
from . import views
from .requests import Ask

TOP_TOKENS = 10  # next-token candidates shown per generated step


@dataclass
class Answer:
    result: dict[str, Any]
    views: list[dict[str, Any]]
    token_lists: list[list[str]] = field(default_factory=list)


Answerer = Callable[[Any, nn.Module, torch.device, Any], Answer]


def tagging(task: Any, network: nn.Module, device: torch.device, ask: Ask) -> Answer:
    tagged = task.tag_lines(network, [ask.text], device)[0]
    chosen = [probs[task.tags.stoi[tag]] for tag, probs in zip(tagged["tags"], tagged["probabilities"])]
    tokens = [{"text": w, "label": t, "p": p} for w, t, p in zip(tagged["words"], tagged["tags"], chosen)]
    return Answer({**tagged, "tag_probabilities": chosen},
                  [{"kind": "tokens", "title": "tags", "tokens": tokens},
                   views.heatmap("tag probabilities", tagged["probabilities"], tagged["words"], tagged["tag_set"],
                                 "word", "tag")],
                  [tagged["words"]])


def classification(task: Any, network: nn.Module, device: torch.device, ask: Ask) -> Answer:
    probabilities = task.class_probabilities(network, [ask.text], device)[0].tolist()  # (C,)
    labels = list(task.labels.itos)
    best = max(range(len(labels)), key=probabilities.__getitem__)
    return Answer({"label": labels[best], "probabilities": dict(zip(labels, probabilities))},
                  [views.bars("class probabilities", labels, probabilities)], [ask.text.split()])


def generation(task: Any, network: nn.Module, device: torch.device, ask: Any) -> Answer:
    generator = torch.Generator(device=device).manual_seed(ask.seed)
    itos = task.tokenizer.vocab.itos
    steps, pieces = [], []
    for piece, token, logits in task.sample_steps(network, ask.text, ask.max_new_tokens, device, generator,
                                                  ask.temperature, ask.top_k, ask.top_p):
        probabilities = logits.float().softmax(-1)  # (V,)
        top = probabilities.topk(min(TOP_TOKENS, len(probabilities)))
        steps.append({"token": itos[token], "p": float(probabilities[token]),
                      "top": [{"token": itos[i], "p": float(p)} for p, i in zip(top.values, top.indices.tolist())]})
        pieces.append(piece)
    prompt = [itos[i] for i in task.tokenizer.encode(ask.text)]
    generated = [step["token"] for step in steps]
    return Answer({"continuation": "".join(pieces), "tokens": generated},
                  [{"kind": "steps", "title": "next-token distribution at each step", "steps": steps}],
                  [prompt + generated, prompt, generated])


def translation(task: Any, network: nn.Module, device: torch.device, ask: Any) -> Answer:
    items, found = task.decode_lines(network, [ask.text], device, ask.beam_size, ask.length_penalty)
    result = task.translation_answer(items, found, 0)
    shown = [] if result["attention"] is None else [
        views.heatmap("attention", result["attention"], result["target_tokens"], result["source_tokens"],
                      "target", "source")]
    return Answer(result, shown, [result["source_tokens"], result["target_tokens"]])


def associative(task: Any, network: nn.Module, device: torch.device, ask: Any) -> Answer:
    probe = parse_probe(ask.text, task.config.num_units).to(device)
    generator = torch.Generator(device=device).manual_seed(ask.seed)
    result = task.recall_steps(network, probe, ask.steps, generator)
    units = [str(i) for i in range(task.config.num_units)]
    return Answer(result, [views.curve("energy", result["energies"], "step", "E"),
                           views.heatmap("state", result["states"], [str(i) for i in range(len(result["states"]))],
                                         units, "step", "unit")])


ANSWERS: dict[str, Answerer] = {"tagging": tagging, "classification": classification, "generation": generation,
                                "translation": translation, "associative": associative}


def parse_probe(text: str, units: int) -> torch.Tensor:
    """A probe written as one + or - per unit (spaces ignored) -> (N,) of ±1."""
    symbols = "".join(text.split())
    bad = sorted(set(symbols) - {"+", "-"})
    if bad:
        raise RnnzooError(f"text: a probe is written with + and - only, got {', '.join(map(repr, bad))}")
    if len(symbols) != units:
        raise RnnzooError(f"text: a probe needs one + or - per unit, {units} in all; got {len(symbols)}")
    return torch.tensor([1.0 if s == "+" else -1.0 for s in symbols])


def input_tokens(task: Any, task_name: str, text: str) -> int:
    """How many tokens the model will read from `text`, as the task's tokenizer counts them
    (whitespace words for tagging and classification, the units of a probe)."""
    if task_name == "generation":
        return len(task.tokenizer.encode(text))
    if task_name == "translation":
        return len(task.source_tokenizer.encode(task.normalize(text)))
    if task_name == "associative":
        return len("".join(text.split()))
    return len(text.split())


def example_input(task: Any, task_name: str) -> str:
    """A ready input for the page's box: a corrupted stored pattern for a Hopfield memory (whose
    probe nobody types), nothing for the text tasks."""
    if task_name == "associative":
        probe = task.probes("test")[0][0]  # (N,)
        return "".join("+" if x > 0 else "-" for x in probe.tolist())
    return ""
