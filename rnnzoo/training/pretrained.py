"""Starting a run from a pretrained checkpoint (`model.init_from`): its tokenizer, its
architecture and the weights of its model body, under the head of this run's task.

`init_from` is an rnnzoo checkpoint (best.pt), or for model=bert a Hugging Face BERT folder
(config.json, model.safetensors or pytorch_model.bin, vocab.txt), which `read_pretrained` turns
into the same parts: BERT's shape from config.json, the weights mapped by rnnzoo.models.hf_bert,
the task state holding the folder's WordPiece tokenizer (BertTokenizer's ids).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import RnnzooError
from ..registry import MODELS
from .checkpoint import load_checkpoint_file

log = logging.getLogger("rnnzoo")


def start_from_pretrained(config: dict[str, Any], model_config: Any, task: Any) -> tuple[dict[str, Any], Any]:
    """Read the `init_from` checkpoint, hand its tokenizer to the task, and return (its payload,
    the model config of its architecture with this run's `init_from` and dropouts).

    The architecture must be the pretrained one or its weights would not fit. Dropout is a
    matter of training, not of architecture, so the fine-tuning run chooses its own.
    `config["model"]` (the plain run config) is rewritten to match: the run's checkpoints
    must say what it really is.
    """
    path, model_name = model_config.init_from, config["model"]["name"]
    payload = read_pretrained(path, model_name)
    theirs = payload["config"]["model"]
    if theirs.get("name") != model_name:
        raise RnnzooError(f"model.init_from={path} is a checkpoint of model '{theirs.get('name')}' (task "
                          f"'{payload['config']['task']['name']}'); model '{model_name}' can only start from "
                          f"a '{model_name}' checkpoint")
    task.inherit_tokenizer(payload.get("task") or {})
    mine = config["model"]
    kept = {key: value for key, value in mine.items() if _chosen_per_run(key)}
    architecture = {key: value for key, value in theirs.items() if not _chosen_per_run(key)}
    shown = set(architecture) - set(task.model_sizes()) - {"name"}  # sizes come from the (inherited) data
    config["model"] = {**architecture, **kept}  # what this run's checkpoints will say it is
    log.info("model.init_from=%s: the architecture of that %s run (%s), this run's %s", path, model_name,
             ", ".join(f"{k}={v}" for k, v in architecture.items() if k in shown),
             ", ".join(f"{k}={v}" for k, v in kept.items() if k != "init_from") or "defaults")
    ignored = [f"{key}={mine[key]}" for key in sorted(shown) if key in mine and mine[key] != architecture[key]]
    if ignored:
        log.warning("model.init_from: this run's %s ignored: the pretrained weights fix the architecture",
                    ", ".join(ignored))
    return payload, MODELS.entry(model_name).make_config(config["model"], where="model")


def read_pretrained(path: str, model_name: str) -> dict[str, Any]:
    """The `init_from` checkpoint's payload, or a Hugging Face BERT folder's parts in its shape."""
    from ..models.hf_bert import is_hf_folder

    if is_hf_folder(path):
        if model_name != "bert":
            raise RnnzooError(f"model.init_from={path} is a Hugging Face BERT folder: it starts model 'bert' "
                              f"(model=bert_pretrained), not '{model_name}'")
        return hf_payload(path)
    if Path(path).is_dir():
        raise RnnzooError(f"model.init_from={path} is a folder without config.json: give an rnnzoo checkpoint "
                          "(best.pt) or a Hugging Face BERT folder (config.json, model.safetensors or "
                          "pytorch_model.bin, vocab.txt)")
    try:
        return load_checkpoint_file(path)
    except RnnzooError as error:
        raise RnnzooError(f"model.init_from: {error}") from None


def hf_payload(path: str) -> dict[str, Any]:
    """A Hugging Face BERT folder as what a run starts from: {"config": {"model": its BertConfig},
    "model": its weights under `body.`, "task": {"tokenizer", "lowercase"}} (RnnzooError naming
    the file for a folder that is not a BERT rnnzoo can compute, or whose vocabulary and
    config.json disagree)."""
    from ..models.hf_bert import load_pretrained, load_tokenizer

    try:
        model, bert = load_pretrained(path)
        tokenizer = load_tokenizer(path)
    except RnnzooError as error:
        raise RnnzooError(f"model.init_from: {error}") from None
    if len(tokenizer) != bert.vocab_size:
        raise RnnzooError(f"model.init_from={path}: config.json says vocab_size={bert.vocab_size}, but the "
                          f"folder's vocabulary (vocab.txt) holds {len(tokenizer)} tokens: they must agree")
    log.info("model.init_from=%s: a Hugging Face BERT (%d layers, width %d, %d tokens, %s)", path, bert.num_layers,
             bert.hidden_size, len(tokenizer), "uncased" if tokenizer.lowercases else "cased")
    return {"config": {"model": {"name": "bert", **asdict(bert)}, "task": {"name": "huggingface"}},
            "model": {f"body.{key}": value for key, value in model.state_dict().items()},
            "task": {"tokenizer": tokenizer.state_dict(), "lowercase": tokenizer.lowercases}}


def _chosen_per_run(key: str) -> bool:
    """Model options a run starting from a checkpoint chooses itself: where it starts from and
    its dropouts (regularization: no weight depends on them)."""
    return key == "init_from" or "dropout" in key


def load_pretrained_body(body: nn.Module, weights: dict[str, Any], path: str) -> None:
    """Load the `body.*` tensors of a saved task network into `body`.

    Every task network keeps the registry's model under `body` (TaskNetwork, Classifier,
    Tagger, the pretraining network), so a checkpoint of any task fits. A tensor on one side
    only (a head one run has and the other not: next-sentence, say) is left as it is; one of
    another shape is an error naming it.
    """
    theirs = {key[len("body."):]: value for key, value in weights.items() if key.startswith("body.")}
    ours = body.state_dict()
    for key, value in theirs.items():
        if key in ours and ours[key].shape != value.shape:
            raise RnnzooError(f"model.init_from={path}: {key} has shape {tuple(value.shape)} there and "
                              f"{tuple(ours[key].shape)} here")
    shared = {key: value for key, value in theirs.items() if key in ours}
    if not shared:
        raise RnnzooError(f"model.init_from={path}: no tensor of that checkpoint fits this model")
    body.load_state_dict(shared, strict=False)
    fresh = sorted(set(ours) - set(shared))
    log.info("model.init_from: loaded %d of the model's %d tensors from %s%s", len(shared), len(ours), path,
             f"; initialized afresh: {', '.join(fresh)}" if fresh else "")
