"""Tasks. Importing this package registers every task in `rnnzoo.registry.TASKS`."""

from . import adding, copy  # noqa: F401  (registers "adding", "copy")
from . import associative  # noqa: F401  (registers "associative")
from .base import SequenceBatch, StepOutput, Task, TaskNetwork  # noqa: F401
