"""Model families. Importing this package registers every model in `rnnzoo.registry.MODELS`.

Each file is one architecture family, read top to bottom: a config dataclass (typed, with
help text), the module, and its registration. Models are plain `nn.Module`s that know
nothing of losses: the task adds embeddings and heads (see `rnnzoo.tasks`).
"""

from . import (  # noqa: F401  (register "elman", "gru", "jordan")  # noqa: F401  (register "hopfield", "modern_hopfield")  # noqa: F401,E402  (register "seq2seq", "bahdanau"; they build on the recurrent ones)
    bahdanau,
    bert,  # noqa: F401,E402  (registers "bert"; builds on the transformer's layers)
    elman,
    gru,
    hopfield,
    jordan,
    lstm,  # noqa: F401  (registers "lstm")
    modern_hopfield,
    seq2seq,
    transformer,  # noqa: F401,E402  (registers "transformer")
)
from .traits import model_traits  # noqa: F401
