"""Tasks. Importing this package registers every task in `rnnzoo.registry.TASKS`."""

from . import adding, copy  # noqa: F401  (registers "adding", "copy")
from . import associative  # noqa: F401  (registers "associative")
from . import classification, tagging  # noqa: F401  (registers "classification", "tagging")
from . import generation  # noqa: F401  (registers "generation")
from .base import SequenceBatch, StepOutput, Task, TaskNetwork  # noqa: F401
from . import translation  # noqa: F401,E402  (registers "translation")
from . import pretraining  # noqa: F401,E402  (registers "pretraining")
