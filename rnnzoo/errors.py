"""The one exception type users see.

Anything the user can fix (a bad name, value, file or checkpoint) raises `RnnzooError`
with a sentence that says what is wrong and what would be right. The CLI prints that
sentence on one line and exits with status 2; every other exception is a bug in rnnzoo
and keeps its traceback.
"""

from __future__ import annotations


class RnnzooError(Exception):
    """A problem with the user's input: printed as one line, never as a traceback."""


class CheckpointError(RnnzooError):
    """A checkpoint file that is missing, truncated, foreign or from a newer format."""


class IncompatibleError(RnnzooError):
    """A model that cannot serve a task (for example a bidirectional net asked to generate)."""


def excerpt(text: str, limit: int = 80) -> str:
    """`text` (a line of the user's input) quoted for a message, cut to its first `limit`
    characters: an error that echoes a 1 MB line stays one short line."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"
