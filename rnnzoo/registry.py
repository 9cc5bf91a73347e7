"""One registry type for models, tasks and datasets.

Each entry is a name (the key used on the command line and stored in checkpoints), the
object it builds, and a typed config: a dataclass whose fields carry defaults and
`metadata={"help": ...}`. Names, not import paths, are what configs and checkpoints hold,
so a checkpoint survives a refactor of the code behind it.

    MODELS = Registry("model")

    @MODELS.register("lstm", config=LSTMConfig, traits={"sequence", "causal", "stateful"})
    class LSTM(nn.Module): ...

    MODELS.get("lsmt")   # RnnzooError: unknown model 'lsmt'; did you mean: lstm? choices: ...

Every numeric field declares its allowed values in its metadata (`help_field(0.1, "...",
ge=0, lt=1)`, or `unbounded=True` where any finite number will do): `make_config` checks them
once, where the config is made, and `rnnzoo list` shows them, so no model, task or trainer
repeats a hand-written range check.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar, get_type_hints

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import RnnzooError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object: what it is called, what builds it, and its typed config."""

    name: str
    target: T
    config: type | None
    traits: frozenset[str] = frozenset()
    summary: str = ""

    def make_config(self, values: dict[str, Any] | None = None, *, where: str = "") -> Any:
        """Validate `values` against the config dataclass and return a dataclass instance.

        Unknown keys, values of the wrong type and numbers out of their range raise RnnzooError
        naming the key.
        """
        values = dict(values or {})
        values.pop("name", None)
        if self.config is None:
            if values:
                raise RnnzooError(f"{where or self.name} takes no options, got: {', '.join(values)}")
            return None
        return typed(self.config, values, where or self.name)


def typed(config: type, values: dict[str, Any], where: str = "") -> Any:
    """`values` merged onto the defaults of dataclass `config`, typed and range-checked.

    `where` prefixes the keys in errors: "model" gives `model.dropout=1.5`; "" gives `top_k=0`
    (a verb's own options)."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(config), values)
    except OmegaConfBaseException as error:
        raise RnnzooError(_config_message(error, where or config.__name__, config)) from None
    instance = OmegaConf.to_object(merged)
    check_ranges(instance, where)
    return instance


def _config_message(error: OmegaConfBaseException, where: str, config: type) -> str:
    key = getattr(error, "key", None) or getattr(error, "full_key", None)
    allowed = ", ".join(f.name for f in dataclasses.fields(config))
    reason = str(error).splitlines()[0]
    if key and key not in {f.name for f in dataclasses.fields(config)}:
        return f"{where}: unknown option '{key}'; options are: {allowed}"
    return f"{where}: bad value for '{key}': {reason}"


@dataclass(frozen=True)
class Range:
    """The values a numeric option may take: inclusive (ge, le) or exclusive (gt, lt) bounds,
    None where a side is open. NaN and infinities are never in range: every option here is a
    size, a count, a rate or a probability, and a non-finite one only fails later, far away."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))

    def __str__(self) -> str:
        low = f"[{_number(self.ge)}" if self.ge is not None else f"({_number(self.gt)}" if self.gt is not None else ""
        high = f"{_number(self.le)}]" if self.le is not None else f"{_number(self.lt)})" if self.lt is not None else ""
        if low and high:
            return f"in {low}, {high}"
        if low:
            return f"{'>=' if low[0] == '[' else '>'} {low[1:]}"
        if high:
            return f"{'<=' if high[-1] == ']' else '<'} {high[:-1]}"
        return "any number"


def _number(value: float | None) -> str:
    return f"{value:g}"


def field_range(config_field: dataclasses.Field) -> Range | None:
    """The allowed values a config field declares; None for a field that is not numeric."""
    return config_field.metadata.get("range")


def range_text(config_field: dataclasses.Field) -> str:
    """What `rnnzoo list` shows and an error says: "in [0, 1)", "> 0 or null", "" (not numeric)."""
    allowed = field_range(config_field)
    if allowed is None:
        return ""
    nullable = "None" in str(config_field.type)
    return f"{allowed}{' or null' if nullable else ''}"


def check_value(key: str, value: Any, allowed: Range, nullable: bool = True) -> None:
    """RnnzooError in one line naming `key`, `value` and the range, where `value` is outside it."""
    if (value is None and nullable) or value in allowed:
        return
    raise RnnzooError(f"{key}={value} is out of range: must be {allowed}{' or null' if nullable else ''}")


def check_ranges(config: Any, where: str) -> None:
    """Check every numeric field of a config dataclass instance against its declared range.

    `where` names the section ("model", "trainer"), the object ("model 'lstm'") or nothing (a
    verb's own options): keys read `model.dropout`, `model 'lstm': dropout` or `top_k`."""
    for config_field in dataclasses.fields(config):
        allowed = field_range(config_field)
        if allowed is not None:
            key = _key(where, config_field.name)
            check_value(key, getattr(config, config_field.name), allowed, "None" in str(config_field.type))


def _key(where: str, name: str) -> str:
    if not where:
        return name
    return f"{where}.{name}" if where.isidentifier() else f"{where}: {name}"


def help_text(config: type) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, help) for each field of a config dataclass."""
    rows = []
    for f in dataclasses.fields(config):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "???")
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        rows.append((f.name, kind, default, f.metadata.get("help", "")))
    return rows


class Registry(Generic[T]):
    """Named objects of one kind ("model", "task", "dataset"), and named variants of them.

    A variant is one entry at other defaults (timm's `create_model("vit_tiny_patch16_224")`,
    fairseq's `register_model_architecture`): `MODELS.register_variant("bert_mini", "bert",
    hidden_size=256, ...)` beside the model makes `create_model("bert_mini")` and `model=bert_mini`
    work. It builds and is saved as its base (`name` stays "bert"); `names()` and iteration list
    entries only, `variants()` the variants."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._variants: dict[str, Entry[T]] = {}

    def register(self, name: str, *, config: type | None = None,
                 traits: set[str] | frozenset[str] = frozenset(),
                 summary: str = "") -> Callable[[T], T]:
        """Class decorator: register `target` under `name`. A second use of a name is an error."""
        if config is not None and not dataclasses.is_dataclass(config):
            raise TypeError(f"{self.kind} '{name}': config must be a dataclass, got {config!r}")

        def decorate(target: T) -> T:
            if name in self._entries or name in self._variants:
                existing = self.entry(name).target
                raise RnnzooError(f"{self.kind} '{name}' is already registered (by {existing!r})")
            doc = summary or _first_line(getattr(target, "__doc__", None))
            self._entries[name] = Entry(name, target, config, frozenset(traits), doc)
            return target

        return decorate

    def register_variant(self, name: str, base: str, *, summary: str = "", **defaults: Any) -> None:
        """Register `name` as entry `base` with other defaults (checked against its config now)."""
        if name in self._entries or name in self._variants:
            raise RnnzooError(f"{self.kind} '{name}' is already registered (by {self.entry(name).target!r})")
        entry = self.entry(base) if base not in self._variants else None
        if entry is None or entry.config is None:
            raise RnnzooError(f"{self.kind} variant '{name}': '{base}' is not an entry with options")
        typed(entry.config, defaults, f"{self.kind} variant '{name}'")  # unknown keys, types, ranges
        config = _with_defaults(entry.config, defaults, f"{name}_config")
        self._variants[name] = Entry(base, entry.target, config, entry.traits, summary or f"{base} at other defaults")

    def unregister(self, name: str) -> None:
        """Forget entry or variant `name` (and an entry's variants): a test's throwaway registration."""
        self.entry(name)
        self._entries.pop(name, None)
        self._variants.pop(name, None)
        for variant in [v for v, e in self._variants.items() if e.name == name]:
            del self._variants[variant]

    def variants(self) -> dict[str, Entry[T]]:
        """Variant name -> its entry (named as its base, with a config of the variant's defaults)."""
        return dict(sorted(self._variants.items()))

    def entry(self, name: str) -> Entry[T]:
        """The entry for `name` (a variant's: its base at the variant's defaults); an unknown name
        lists close matches and every choice."""
        try:
            return self._entries[name] if name in self._entries else self._variants[name]
        except KeyError:
            raise RnnzooError(self.unknown_message(name)) from None

    def get(self, name: str) -> T:
        return self.entry(name).target

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), [*self._entries, *self._variants], n=3, cutoff=0.5)
        hint = f"; did you mean: {', '.join(close)}?" if close else ""
        variants = f" (variants: {', '.join(self.variants())})" if self._variants else ""
        return f"unknown {self.kind} '{name}'{hint} choices: {', '.join(self.names())}{variants}"

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard, sorted."""
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._variants

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)


def _with_defaults(config: type, defaults: dict[str, Any], name: str) -> type:
    """Dataclass `config` with other defaults for some fields (same types, help and ranges)."""
    hints = get_type_hints(config)
    changed = []
    for old in dataclasses.fields(config):
        if old.name in defaults:
            value = defaults[old.name]
            default = (dict(default_factory=lambda v=value: type(v)(v)) if isinstance(value, (list, dict, set))
                       else dict(default=value))
            changed.append((old.name, hints[old.name], field(metadata=old.metadata, **default)))
    return dataclasses.make_dataclass(name, changed, bases=(config,))


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc and doc.strip() else ""


MODELS: Registry[Any] = Registry("model")
TASKS: Registry[Any] = Registry("task")
DATASETS: Registry[Any] = Registry("dataset")


def load_registries() -> None:
    """Fill MODELS, TASKS and DATASETS: import the packages whose modules register into them.

    Cheap after the first call (Python caches the imports); every public entry point calls it."""
    from . import data, models, tasks  # noqa: F401


def help_field(default: Any, help: str, *, ge: float | None = None, gt: float | None = None,
               le: float | None = None, lt: float | None = None, unbounded: bool = False, **kwargs: Any) -> Any:
    """A dataclass field with a default, help text and, for a number, its allowed range:
    `dropout: float = help_field(0.0, "...", ge=0, lt=1)`; `unbounded=True` says any finite
    number is meant (a test requires every numeric field of a registered config to say one)."""
    metadata: dict[str, Any] = {"help": help}
    if unbounded or any(bound is not None for bound in (ge, gt, le, lt)):
        metadata["range"] = Range(ge, gt, le, lt)
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata, **kwargs)
    return field(default=default, metadata=metadata, **kwargs)
