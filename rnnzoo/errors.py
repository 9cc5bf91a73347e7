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
