"""One registry type for models, tasks and datasets.

Each entry is a name (the key used on the command line and stored in checkpoints), the
object it builds, and a typed config: a dataclass whose fields carry defaults and
`metadata={"help": ...}`. Names, not import paths, are what configs and checkpoints hold,
so a checkpoint survives a refactor of the code behind it.

    MODELS = Registry("model")

    @MODELS.register("lstm", config=LSTMConfig, traits={"sequence", "causal", "stateful"})
    class LSTM(nn.Module): ...

    MODELS.get("lsmt")   # RnnzooError: unknown model 'lsmt'; did you mean: lstm? choices: ...
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

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

        Unknown keys and values of the wrong type raise RnnzooError naming the key.
        """
        values = dict(values or {})
        values.pop("name", None)
        if self.config is None:
            if values:
                raise RnnzooError(f"{where or self.name} takes no options, got: {', '.join(values)}")
            return None
        schema = OmegaConf.structured(self.config)
        try:
            merged = OmegaConf.merge(schema, values)
        except OmegaConfBaseException as error:
            raise RnnzooError(_config_message(error, where or self.name, self.config)) from None
        return OmegaConf.to_object(merged)


def _config_message(error: OmegaConfBaseException, where: str, config: type) -> str:
    key = getattr(error, "key", None) or getattr(error, "full_key", None)
    allowed = ", ".join(f.name for f in dataclasses.fields(config))
    reason = str(error).splitlines()[0]
    if key and key not in {f.name for f in dataclasses.fields(config)}:
        return f"{where}: unknown option '{key}'; options are: {allowed}"
    return f"{where}: bad value for '{key}': {reason}"


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
    """Named objects of one kind ("model", "task", "dataset")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, config: type | None = None,
                 traits: set[str] | frozenset[str] = frozenset(),
                 summary: str = "") -> Callable[[T], T]:
        """Class decorator: register `target` under `name`. A second use of a name is an error."""
        if config is not None and not dataclasses.is_dataclass(config):
            raise TypeError(f"{self.kind} '{name}': config must be a dataclass, got {config!r}")

        def decorate(target: T) -> T:
            if name in self._entries:
                existing = self._entries[name].target
                raise RnnzooError(f"{self.kind} '{name}' is already registered (by {existing!r})")
            doc = summary or _first_line(getattr(target, "__doc__", None))
            self._entries[name] = Entry(name, target, config, frozenset(traits), doc)
            return target

        return decorate

    def entry(self, name: str) -> Entry[T]:
        """The entry for `name`; an unknown name lists close matches and every choice."""
        try:
            return self._entries[name]
        except KeyError:
            raise RnnzooError(self.unknown_message(name)) from None

    def get(self, name: str) -> T:
        return self.entry(name).target

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self._entries, n=3, cutoff=0.5)
        hint = f"; did you mean: {', '.join(close)}?" if close else ""
        return f"unknown {self.kind} '{name}'{hint} choices: {', '.join(self.names())}"

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard, sorted."""
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc and doc.strip() else ""


MODELS: Registry[Any] = Registry("model")
TASKS: Registry[Any] = Registry("task")
DATASETS: Registry[Any] = Registry("dataset")


def help_field(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a default and help text: `hidden_size: int = help_field(128, "...")`."""
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)
