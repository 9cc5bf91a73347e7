"""Tasks. Importing this package registers every task in `rnnzoo.registry.TASKS`."""

from . import (  # noqa: F401  (registers "adding", "copy")  # noqa: F401  (registers "classification", "tagging")
    adding,
    associative,  # noqa: F401  (registers "associative")
    classification,
    copy,
    generation,  # noqa: F401  (registers "generation")
    pretraining,  # noqa: F401,E402  (registers "pretraining")
    tagging,
    translation,  # noqa: F401,E402  (registers "translation")
)
from .base import SequenceBatch, StepOutput, Task, TaskNetwork  # noqa: F401
