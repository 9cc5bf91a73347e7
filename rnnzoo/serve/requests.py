"""The JSON bodies `POST /api/predict` accepts, one pydantic model per task.

Every model forbids unknown fields (a misspelt `top_kk` is a 422 naming it, not an option
silently ignored) and is strict about types (`"beam_size": "5"` is a wrong type, not 5).
Ranges are the ones `rnnzoo sample` and `rnnzoo translate` check; the server's own limits
(input tokens, generated tokens) depend on its config and are checked in rnnzoo.serve.model.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_BEAM = 16  # a wider beam costs the server beam-size times the work for little gain
MAX_RECALL_STEPS = 1000


class Ask(BaseModel):
    """What every task takes: the input text, and whether to send the model's recorded internals."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(description="the input: a sentence, a prompt, or a probe of + and - (associative)")
    inside: bool = Field(False, description="add what the model recorded inside (gates, attention, energies)")

    @field_validator("text")
    @classmethod
    def not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("is empty: give a sentence (or prompt, or probe) to answer")
        return text


class GenerationAsk(Ask):
    """A continuation of `text` (rnnzoo sample's options; `max_new_tokens` also under the server's limit)."""

    max_new_tokens: int | None = Field(None, ge=1, description="null: 50, or the server's limit if lower")
    temperature: float = Field(1.0, ge=0, le=100)
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int = 0


class TranslationAsk(Ask):
    """A translation of `text` (rnnzoo translate's options; the checkpoint's where null)."""

    beam_size: int | None = Field(None, ge=1, le=MAX_BEAM)
    length_penalty: float | None = Field(None, ge=0, le=10)


class AssociativeAsk(Ask):
    """A recall from the probe `text` (+ and - per unit); `steps`: the task's where null."""

    steps: int | None = Field(None, ge=1, le=MAX_RECALL_STEPS)
    seed: int = 0


ASKS: dict[str, type[Ask]] = {"generation": GenerationAsk, "translation": TranslationAsk,
                              "associative": AssociativeAsk}


def ask_type(task_name: str) -> type[Ask]:
    """The request model of a task (tagging and classification take only the common fields)."""
    return ASKS.get(task_name, Ask)


def explain(error: ValidationError) -> str:
    """Pydantic's errors as one line, each naming its field: `top_k: Input should be greater
    than or equal to 1 (got 0); foo: unknown field (allowed: text, inside, ...)`."""
    parts = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "body"
        if item["type"] == "extra_forbidden":
            parts.append(f"{field}: unknown field")
        elif item["type"] == "missing":
            parts.append(f"{field}: missing")
        else:
            message = item["msg"].removeprefix("Value error, ")
            parts.append(f"{field}: {message} (got {item.get('input')!r:.60})")
    return "; ".join(parts)
