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
| masked_lm | `mlm_logits(hidden (N,H)) -> (N,V)`: predicts masked tokens (masked-LM pretraining); |
| | `next_sentence` (bool): whether it also has `nsp_logits(hidden (B,T,H)) -> (B,2)` |
| positional | reads at most `max_positions` (an int attribute) positions: position vectors exist up to there |
| bidirectional | its features are [forward; backward] halves, the backward one read right to left |
| pooler | `pooled(hidden (B,T,H)) -> (B,H)`: its own sequence vector (BERT's [CLS] pooler) |

Traits are the only statement of what a model can do: tasks ask `traits_of(model)` of a built
model, never probe it for attributes; where a task needs a value, it reads the attribute its
trait names above (`max_positions` of a positional model).

`token_input` changes what a sequence model reads, so a task must say it can feed token ids
(`Task.accepts`, see INPUT_TRAITS): the text tasks can, the synthetic ones (float features)
cannot, and `check_compatible` refuses such a pair.

Some models serve more tasks under other options than their defaults (the Transformer in each
of its shapes), and some tasks need less under other options (generation on random windows
carries no state across them). Each declares those option changes as `variants` (a model: an
attribute of its registered target; a task: `Task.variants`), and `find_fit` picks the change
that makes a pair fit. `fit_to_task` applies a change of the model's own options that the
user left at their defaults; otherwise `rnnzoo list` and the refusal give the exact overrides.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from ..errors import IncompatibleError
from ..registry import MODELS, TASKS

log = logging.getLogger("rnnzoo")

TRAIT_HELP = {
    "sequence": "maps a (B, T, input_size) sequence to (B, T, output_size) features",
    "causal": "output at t depends only on inputs up to t",
    "stateful": "carries its state across chunks (truncated BPTT, streaming)",
    "encoder_decoder": "reads a source sequence and writes a target sequence",
    "associative_memory": "stores patterns and recalls them from noisy probes",
    "token_input": "reads token ids and owns its embeddings",
    "masked_lm": "predicts masked tokens from both sides (masked-LM pretraining)",
    "positional": "reads at most max_positions positions",
    "bidirectional": "reads each sequence both ways: [forward; backward] features",
    "pooler": "has its own pooled sequence vector (BERT's [CLS] pooler)",
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


def misfits(task_name: str, traits: frozenset[str], requires: frozenset[str] | None = None) -> list[str]:
    """Why a model with `traits` cannot serve the task, one phrase per reason; [] when it fits.

    `requires`: the task instance's needs where they differ from its class's (see check_compatible)."""
    task = TASKS.get(task_name)
    needs = task.requires if requires is None else requires
    why = [f"it must be {trait} ({TRAIT_HELP.get(trait, trait)}), and this configuration is not"
           for trait in sorted(needs - traits)]
    why += [f"it {TRAIT_HELP.get(trait, trait)} ({trait}), which this task cannot feed it"
            for trait in sorted((traits & INPUT_TRAITS) - task.accepts)]
    return why


def models_fitting(task_name: str) -> list[str]:
    """Models whose default configs have every trait the task needs, and read what it can feed."""
    return [name for name in MODELS.names() if not misfits(task_name, model_traits(name))]


def check_compatible(task_name: str, model_name: str, model_config: Any,
                     requires: frozenset[str] | None = None) -> None:
    """Fail before any work when the model lacks a trait the task needs, saying which fit.

    `requires`: what this task instance needs, where its config adds to the class's needs
    (generation with sampling=streams also needs a stateful model)."""
    why = misfits(task_name, model_traits(model_name, model_config), requires)
    if why:
        fitting = ", ".join(models_fitting(task_name) + fitting_with_options(task_name)) or "none yet"
        raise IncompatibleError(f"model '{model_name}' cannot serve task '{task_name}': {'; '.join(why)}. "
                                f"Models that fit: {fitting}")


def traits_of(model: Any) -> frozenset[str]:
    """The traits of a built model, under the config it was built with (`model.config`): its
    class's `traits(config)` where it computes them (a class that one registered entry builds
    among others, as each Transformer shape), else its registered entry's. A module that no
    entry builds (a test's stand-in) has none."""
    dynamic = getattr(type(model), "traits", None)
    if callable(dynamic):
        return frozenset(dynamic(model.config))
    for entry in MODELS:
        if entry.target is type(model):
            return model_traits(entry.name, getattr(model, "config", None))
    return frozenset()


def fits(traits: frozenset[str], needs: frozenset[str], accepts: frozenset[str]) -> bool:
    """A model with `traits` serves a task that needs `needs` and can feed `accepts`."""
    return needs <= traits and not (traits & INPUT_TRAITS) - accepts


@dataclass(frozen=True)
class Fit:
    """Option changes under which a model serves a task: empty when it does as configured."""

    model: dict[str, Any] = field(default_factory=dict)
    task: dict[str, Any] = field(default_factory=dict)

    def overrides(self) -> str:
        """The changes as command-line overrides: `model.shape=decoder task.sampling=random`."""
        return " ".join([f"model.{k}={v}" for k, v in self.model.items()] +
                        [f"task.{k}={v}" for k, v in self.task.items()])


def find_fit(task_name: str, model_name: str, model_config: Any = None, task_config: Any = None) -> Fit | None:
    """The option changes (the declared `variants`) under which the model serves the task;
    None when none do. Configs None: their defaults.

    Preferred: no task change over one (the task is what the user asked for); then the model
    variant with the fewest traits the task does not need (an encoder, which reads both ways,
    for tagging rather than a causal decoder); then declared order."""
    task_class, model_entry = TASKS.get(task_name), MODELS.entry(model_name)
    if model_config is None and model_entry.config is not None:
        model_config = model_entry.config()
    if task_config is None and TASKS.entry(task_name).config is not None:
        task_config = TASKS.entry(task_name).config()
    model_variants = [{}] + list(getattr(model_entry.target, "variants", ()))
    for task_change in [{}] + list(task_class.variants):
        needs = task_class.needs(_changed(task_config, task_change))
        fitting = [change for change in model_variants
                   if fits(model_traits(model_name, _changed(model_config, change)), needs, task_class.accepts)]
        if fitting:  # the model as configured comes first: a default that fits stays
            best = fitting[0] if fitting[0] == {} else min(
                fitting, key=lambda change: len(model_traits(model_name, _changed(model_config, change)) - needs))
            return Fit(_real(model_config, best), _real(task_config, task_change))
    return None


def fitting_with_options(task_name: str) -> list[str]:
    """Models that serve the task only under other options than their defaults, each with the
    overrides: `transformer (model.shape=decoder task.sampling=random)`."""
    found = []
    for name in MODELS.names():
        fit = find_fit(task_name, name)
        if fit is not None and (fit.model or fit.task):
            found.append(f"{name} ({fit.overrides()})")
    return found


def fit_to_task(config: dict[str, Any], model_config: Any, task_config: Any) -> Any:
    """The run's model config, changed to the variant that serves the task (`find_fit`) where
    the model fits only under other options of its own and the user left those at their
    defaults (`model=transformer task=tagging` gets `model.shape=encoder`). The change is
    written into `config` too, so the run's checkpoints rebuild it, and logged.

    Anything else is returned as it is, for `check_compatible` to refuse with the exact
    overrides that work: an option the user chose is the user's, and so is the task's config
    (generation's `task.sampling` decides how it trains, not only which models it takes)."""
    model_name, task_name = config["model"]["name"], config["task"]["name"]
    fit = find_fit(task_name, model_name, model_config, task_config)
    if fit is None or fit.task or not fit.model:
        return model_config
    if any(getattr(model_config, key) != _default(model_config, key) for key in fit.model):
        return model_config
    log.warning("model '%s' serves task '%s' only with %s: using it (give it on the command line to "
                "silence this)", model_name, task_name, fit.overrides())
    config["model"].update(fit.model)
    return _changed(model_config, fit.model)


def _changed(config: Any, change: dict[str, Any]) -> Any:
    return dataclasses.replace(config, **change) if change and config is not None else config


def _real(config: Any, change: dict[str, Any]) -> dict[str, Any]:
    """The part of `change` that differs from `config` (a variant may restate the defaults)."""
    return {key: value for key, value in change.items() if getattr(config, key) != value}


def _default(config: Any, key: str) -> Any:
    return getattr(type(config)(), key)
