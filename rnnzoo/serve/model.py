"""The served checkpoint: loaded once, asked from worker threads, its inside recorded on request.

`ServedModel.answer(body)` validates a request against the task's request model and the
server's limits, runs the task's own answer (rnnzoo.serve.answers) and, with `"inside": true`,
records what the model reports inside (rnnzoo.nn.inside) while it runs.

A recording belongs to the thread that opened it (rnnzoo.nn.inside), and `answer` opens it
in the worker thread that runs the model: requests running beside a recorded one neither add
their tensors to it nor wait for it.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from ..api import _checkpoint_of, _load_for_inference, config_name
from ..errors import RnnzooError
from ..nn.inside import recording
from ..training.checkpoint import load_checkpoint_file
from . import views
from .answers import ANSWERS, example_input, input_tokens
from .requests import ask_type, explain

DEFAULT_NEW_TOKENS = 50  # a generation request's length when it names none (and the server allows it)


class RequestError(Exception):
    """A request the server refuses: its HTTP status and a message naming the field and the limit."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ServedModel:
    """A checkpoint's network and task, and the limits of `configs/serve.yaml`."""

    def __init__(self, config: dict[str, Any]) -> None:
        payload = load_checkpoint_file(_checkpoint_of(config, "serve"))  # read once: the model and /info
        self.network, self.task, self.device = _load_for_inference(config, "serve", payload)
        self.task_name = config_name(self.task)
        if self.task_name not in ANSWERS:
            raise RnnzooError(f"checkpoint {config['checkpoint']} is a '{self.task_name}' run; rnnzoo serve answers "
                              f"{', '.join(ANSWERS)} checkpoints")
        self.ask = ask_type(self.task_name)
        self.max_input_tokens = int(config["max_input_tokens"])
        self.max_new_tokens = int(config["max_new_tokens"])
        self.info = self._info(Path(config["checkpoint"]), payload)

    def _info(self, checkpoint: Path, payload: dict[str, Any]) -> dict[str, Any]:
        """GET /info: what is served, its vocabularies and the metrics the checkpoint was chosen by."""
        run_metrics = checkpoint.parent.parent / "metrics.json"  # the run folder's, when it is beside
        sizes = {name: len(getattr(self.task, name)) for name in ("tokenizer", "source_tokenizer", "tags", "labels")
                 if getattr(self.task, name, None) is not None}
        return {"checkpoint": str(checkpoint), "task": self.task_name, "model": payload["config"]["model"],
                "parameters": sum(t.numel() for t in self.network.state_dict().values()),  # a Hopfield memory: buffers
                "vocab_sizes": sizes,
                "metrics": {"step": payload.get("step"), "monitor": getattr(self.task, "monitor", None),
                            "best": payload.get("best_metric"),
                            **(json.loads(run_metrics.read_text()) if run_metrics.is_file() else {})},
                "request_fields": sorted(self.ask.model_fields), "example": example_input(self.task, self.task_name),
                "limits": {"max_input_tokens": self.max_input_tokens, "max_new_tokens": self.max_new_tokens}}

    def parse(self, body: Any) -> Any:
        """The request model of `body` (decoded JSON), within the server's limits, or a RequestError."""
        if not isinstance(body, dict):
            raise RequestError(422, f"the body must be a JSON object with a 'text' field, got {type(body).__name__}")
        try:
            ask = self.ask.model_validate(body)
        except ValidationError as error:
            raise RequestError(422, explain(error)) from None
        tokens = input_tokens(self.task, self.task_name, ask.text)
        if tokens > self.max_input_tokens:
            raise RequestError(422, f"text: {tokens} input tokens, over this server's limit of "
                                    f"{self.max_input_tokens} (max_input_tokens)")
        if "max_new_tokens" in self.ask.model_fields and ask.max_new_tokens is None:
            ask.max_new_tokens = min(DEFAULT_NEW_TOKENS, self.max_new_tokens)
        if getattr(ask, "max_new_tokens", 0) > self.max_new_tokens:
            raise RequestError(422, f"max_new_tokens: {ask.max_new_tokens} is over this server's limit of "
                                    f"{self.max_new_tokens} (max_new_tokens)")
        return ask

    def answer(self, ask: Any) -> dict[str, Any]:
        """The task's answer to a parsed request, with its views; with `inside`, the recorded tensors too."""
        with torch.no_grad(), recording() if ask.inside else nullcontext() as inside:
            try:
                answer = ANSWERS[self.task_name](self.task, self.network, self.device, ask)
            except RnnzooError as error:
                raise RequestError(422, str(error)) from None
        reply = {"task": self.task_name, "answer": answer.result, "views": answer.views}
        if ask.inside:
            tensors = views.recorded(inside)
            reply["inside"] = tensors
            reply["views"] = answer.views + views.recorded_views(tensors, answer.token_lists)
        return reply
