"""What a model is, as the tasks ask it: its traits.

Tasks declare the traits they need (`Task.requires`); a model's traits may depend on its
config (a bidirectional LSTM is no longer causal), so a model class can compute them with a
classmethod `traits(config)`; otherwise the registration's static set holds.

| trait | meaning |
|---|---|
| sequence | `forward(x (B,T,input_size), lengths=None, state=None) -> (features (B,T,output_size), state)` |
| causal | output at t depends only on inputs <= t (generation needs it) |
| stateful | returns a state that, passed back, continues the sequence (truncated BPTT needs it) |
| encoder_decoder | `encode`, `decode_step`, `forward(src, tgt_in)` (translation) |
| associative_memory | `store(patterns)`, `recall(probe, steps)` (Hopfield) |
| token_input | `forward(ids (B,T) long, lengths, state)`: reads token ids and owns its embeddings (BERT) |
| masked_lm | `mlm_logits(hidden (N,H)) -> (N,V)`: predicts masked tokens (masked-LM pretraining) |

`token_input` changes what a sequence model reads, so a task must say it can feed token ids
(`Task.accepts`, see INPUT_TRAITS): the text tasks can, the synthetic ones (float features)
cannot, and `check_compatible` refuses such a pair.
"""

from __future__ import annotations

from typing import Any

from ..registry import MODELS

TRAIT_HELP = {
    "sequence": "maps a (B, T, input_size) sequence to (B, T, output_size) features",
    "causal": "output at t depends only on inputs up to t",
    "stateful": "carries its state across chunks (truncated BPTT, streaming)",
    "encoder_decoder": "reads a source sequence and writes a target sequence",
    "associative_memory": "stores patterns and recalls them from noisy probes",
    "token_input": "reads token ids and owns its embeddings",
    "masked_lm": "predicts masked tokens from both sides (masked-LM pretraining)",
}

#: traits that change what a model reads: a task serves such a model only if it lists the
#: trait in `Task.accepts` (a task feeding float features cannot feed token ids)
INPUT_TRAITS = frozenset({"token_input"})


def model_traits(name: str, config: Any = None) -> frozenset[str]:
    """The traits of model `name` under `config` (its defaults when None)."""
    entry = MODELS.entry(name)
    if config is None and entry.config is not None:
        config = entry.config()
    dynamic = getattr(entry.target, "traits", None)
    return frozenset(dynamic(config)) if callable(dynamic) else entry.traits
