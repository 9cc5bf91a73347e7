"""File datasets: the base class of each kind and the user's own files (the named ones, built on
these, are in rnnzoo.data.named), registered in `rnnzoo.registry.DATASETS`.

Every dataset has a kind (its registry trait; what a task's `reads` names), a config
dataclass and `load(split)` for split in train / val / test, returning a `str` (text) or a
list of examples (`rnnzoo.data.examples`). See docs/datasets.md for the table.

    kind      named datasets                          your own files
    text      tinyshakespeare, ptb                    text_files
    tagged    conll2000, wnut17 (CoNLL columns),      conll_files, conllu_files
              ud_english_ewt (CoNLL-U)
    labeled   sst2, trec                              labeled_files
    parallel  multi30k                                parallel_files

Where the files are (`dataset.root`, default null):
  1. `dataset.root` if given, else $RNNZOO_DATA_DIR/<name> if that variable is set, else
     ../shared/data/<name> beside the repository checkout or the working directory if that
     folder exists, else the download cache;
  2. then the cache ($RNNZOO_CACHE_DIR, else ~/.cache/rnnzoo)/<name>;
  3. else the official files are downloaded into the cache and checked against their md5.
`dataset.train`, `dataset.valid`, `dataset.test` replace a named file by one of the user's own
(same format); the *_files datasets need `dataset.train` and nothing else.

Splits without a file are cut from train, reproducibly:
  text: contiguous, nanoGPT style: the first 1 - valid_fraction - test_fraction of the
        characters train, then valid_fraction validation, then test_fraction test;
        test_fraction 0 makes the test split the validation split (logged as a warning).
  lists: a seeded random sample (Python's `random.Random(split_seed).shuffle`, stable across
        Python versions): the first int(n * valid_fraction) shuffled indices validate, the
        next int(n * test_fraction) test; train keeps the rest, in file order.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from omegaconf import DictConfig, OmegaConf

from ..errors import RnnzooError
from ..registry import DATASETS, help_field
from .readers import DataError, read_conll, read_conllu, read_labeled, read_parallel, read_text, read_tsv_pairs
from .remote import RemoteFile, cache_dir, download
from .streaming import TextLength, TextSpan, count_chars

log = logging.getLogger("rnnzoo")

SPLITS = ("train", "val", "test")
SPLIT_OPTIONS = {"train": "train", "val": "valid", "test": "test"}  # split -> config field naming a file
CHECKOUT = Path(__file__).resolve().parent.parent.parent

Data = Any  # str for text, list of examples otherwise
D = TypeVar("D", bound=type)


def shared_data_dirs() -> list[Path]:
    """The reference copies beside a checkout: ../shared/data from the repo and from the cwd."""
    return [CHECKOUT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]


def default_root(name: str) -> Path:
    """Where dataset `name` is looked for when `dataset.root` is null (see the module doc)."""
    if os.environ.get("RNNZOO_DATA_DIR"):
        return Path(os.environ["RNNZOO_DATA_DIR"]).expanduser() / name
    for base in shared_data_dirs():
        if (base / name).is_dir():
            return base / name
    return cache_dir() / name


# --- configs -----------------------------------------------------------------------------
@dataclass
class FilesConfig:
    """What every file dataset takes: where the files are, and how to cut missing splits."""

    root: str | None = help_field(None, "folder holding the files (null: $RNNZOO_DATA_DIR/<name>, else "
                                        "../shared/data/<name>, else the download cache)")
    train: str | None = help_field(None, "your own training file, in the dataset's format (null: the named one)")
    valid: str | None = help_field(None, "your own validation file (null: the named one, else cut from train)")
    test: str | None = help_field(None, "your own test file (null: the named one, else cut from train)")
    valid_fraction: float = help_field(0.1, "share of train cut off for validation when there is no validation file",
                                       gt=0, lt=1)
    test_fraction: float = help_field(0.1, "share of train cut off for test when there is no test file "
                                           "(0: test on the validation split)", ge=0, lt=1)
    split_seed: int = help_field(0, "seed of the random cut of validation/test examples (list data)", ge=0)
    cache: bool = help_field(True, "tokenize each split once into the memory-mapped token cache, which later runs "
                                   "map (false: read and tokenize the files on every run)")
    cache_dir: str | None = help_field(None, "folder of the token cache (null: $RNNZOO_CACHE_DIR/tokens, else "
                                             "~/.cache/rnnzoo/tokens); removing it is always safe")
    vocab_sample_mb: float | None = help_field(50.0, "train word and subword vocabularies of a text corpus on "
                                                      "about this many MB of its training split, evenly spaced "
                                                      "lines, when it is larger (null: always all of it)", gt=0)


#: dataset options that change where or whether the token cache is kept, never what it holds
CACHE_OPTIONS = ("cache", "cache_dir")


@dataclass
class TextConfig(FilesConfig):
    encoding: str = help_field("utf-8", "text encoding of the files")


@dataclass
class ConllConfig(FilesConfig):
    token_column: int = help_field(0, "0-based column of the token (negative: from the end)", unbounded=True)
    tag_column: int = help_field(-1, "0-based column of the tag (negative: from the end)", unbounded=True)
    separator: str | None = help_field(None, "column separator (null: any whitespace)")


@dataclass
class ConlluConfig(FilesConfig):
    tagset: str = help_field("upos", "upos (universal POS, column 4) or xpos (language-specific, column 5)")


@dataclass
class LabeledConfig(FilesConfig):
    separator: str | None = help_field(None, "between label and text (null: a tab if the line has one, "
                                             "else the first whitespace)")
    encoding: str = help_field("utf-8", "text encoding of the files")
    fallback_encoding: str | None = help_field("latin-1", "encoding of lines that do not decode "
                                                          "(null: such a line is an error)")


@dataclass
class ParallelConfig(FilesConfig):
    source_lang: str | None = help_field(None, "with target_lang: files are PREFIX.<lang> pairs "
                                               "(null: one source<TAB>target file per split)")
    target_lang: str | None = help_field(None, "language suffix of the target files")


# --- the dataset classes ---------------------------------------------------------------------
class FileDataset:
    """A dataset read from files: named files in a folder, or the user's own."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    files: ClassVar[dict[str, str]] = {}  # split -> file name in the folder (a PREFIX for parallel pairs)
    remotes: ClassVar[tuple[RemoteFile, ...]] = ()

    def __init__(self, config: FilesConfig) -> None:
        self.config = config
        valid, test = config.valid_fraction, config.test_fraction  # each in its range (the config says)
        if valid + test >= 1:
            raise DataError(f"dataset '{self.name}': valid_fraction + test_fraction must be below 1, got {valid} "
                            f"and {test}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"

    # what a kind defines
    def read(self, path: Path) -> Data:
        raise NotImplementedError

    def cut(self, data: Data, splits: set[str]) -> dict[str, Data]:
        """Train split into {"train", "val", "test"}; only the `splits` named are cut off."""
        return _random_cut(data, splits, self.config.valid_fraction, self.config.test_fraction,
                           self.config.split_seed)

    def members(self, stem: str) -> list[str]:
        """The files a split's name stands for (one, except for parallel PREFIX.<lang> pairs)."""
        return [stem]

    # loading
    def load(self, split: str) -> Data:
        """The examples of `split` (train, val or test); read from disk on every call."""
        if split not in SPLITS:
            raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if self.alias(split) != split:
            log.warning("dataset %s has no test file and test_fraction=0: its test split is the validation "
                        "split", self.name)
            return self.load("val")
        cut = self.cut_splits()
        if split not in cut and split != "train":
            return self.read(self.locate(split))
        if not self.has_file("train"):
            raise DataError(f"dataset '{self.name}' reads your files: give dataset.train=PATH "
                            "(and dataset.valid=, dataset.test= if you have them)")
        data = self.read(self.locate("train"))
        return self.cut(data, cut)[split] if cut else data

    def alias(self, split: str) -> str:
        """The split whose data `split` is: "val" for a test split that is the validation split."""
        if split == "test" and not self.has_file("test") and self.config.test_fraction == 0:
            return "val"
        return split

    def split_source(self, split: str) -> Path:
        """The file a split is read from: its own, or train's when cut from it."""
        split = self.alias(split)
        return self.locate(split if split == "train" or split not in self.cut_splits() else "train")

    def split_identity(self, split: str) -> str:
        """What a split's data is a function of, beside the dataset's options and files: its own
        file (so a validation file that is also the test file is encoded once), or which part of
        the cut it is."""
        split = self.alias(split)
        if split != "train" and split not in self.cut_splits():
            return f"file:{self.locate(split).expanduser().resolve()}"
        return f"cut:{split}"

    def source_files(self) -> list[Path]:
        """Every file the splits read (what the token cache's key identifies), found or downloaded."""
        files: list[Path] = []
        for split in SPLITS:
            if self.has_file(split):
                files += [Path(member) for member in self.members(str(self.locate(split)))]
        return sorted(set(files))

    def has_file(self, split: str) -> bool:
        return getattr(self.config, SPLIT_OPTIONS[split]) is not None or split in self.files

    def cut_splits(self) -> set[str]:
        """The splits cut from train: those without a file (test only if test_fraction > 0)."""
        cut = {split for split in ("val", "test") if not self.has_file(split)}
        return cut - {"test"} if self.config.test_fraction == 0 else cut

    def locate(self, split: str) -> Path:
        """The file (or PREFIX) of `split`: the user's, else the named one, found or downloaded."""
        own = getattr(self.config, SPLIT_OPTIONS[split])
        return Path(own).expanduser() if own is not None else self._named(self.files[split])

    def folder(self) -> Path:
        return Path(self.config.root).expanduser() if self.config.root is not None else default_root(self.name)

    def _named(self, stem: str) -> Path:
        wanted = self.members(stem)
        cache = cache_dir() / self.name
        for folder in (self.folder(), cache):
            if all((folder / file).is_file() for file in wanted):
                return folder / stem
        for file in wanted:
            if not (cache / file).is_file():
                download(self._remote(file), cache, hint=self._where_hint(wanted))
        return cache / stem

    def _remote(self, file: str) -> RemoteFile:
        for remote in self.remotes:
            if remote.name == file:
                return remote
        raise DataError(f"dataset '{self.name}': {file} is in neither {self.folder()} nor {cache_dir() / self.name}, "
                        "and rnnzoo knows no download for it")

    def _where_hint(self, files: list[str]) -> str:
        return (f"Without internet access, put {' and '.join(files)} in {self.folder()} (or set dataset.root=FOLDER, "
                f"or RNNZOO_DATA_DIR=FOLDER holding {self.name}/)")


def _random_cut(items: list, splits: set[str], valid: float, test: float, seed: int) -> dict[str, list]:
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_val = int(len(items) * valid) if "val" in splits else 0
    n_test = int(len(items) * test) if "test" in splits else 0
    part = {index: "val" for index in order[:n_val]}
    part.update({index: "test" for index in order[n_val:n_val + n_test]})
    parts: dict[str, list] = {split: [] for split in SPLITS}
    for index, item in enumerate(items):
        parts[part.get(index, "train")].append(item)
    return parts


class TextDataset(FileDataset):
    kind = "text"

    def read(self, path: Path) -> str:
        return read_text(path, self.config.encoding)

    def span(self, split: str) -> tuple[TextSpan, list[tuple[int, int]] | None]:
        """What `load(split)` returns, as a span of a file to stream rather than a string; and
        for a span cut from train, the character/byte marks of that file (`count_chars`).
        The same splits as `cut`, computed from the character count alone."""
        split = self.alias(split)
        cut = self.cut_splits()
        if split not in cut and split != "train":
            return TextSpan(self.locate(split), self.config.encoding), None
        if not self.has_file("train"):
            self.load("train")  # raises, naming the option to give
        path = self.locate("train")
        if not cut:
            return TextSpan(path, self.config.encoding), None
        total, marks = count_chars(path, self.config.encoding)
        bounds = self.cut(TextLength(total), cut)
        return TextSpan(path, self.config.encoding, *bounds[split]), marks

    def cut(self, text: Any, splits: set[str]) -> dict[str, Any]:
        """The text's (or a `TextLength`'s) train, val and test parts: contiguous, so a character LM
        validates on unseen text; nanoGPT's boundary is int(n * 0.9)."""
        valid = self.config.valid_fraction if "val" in splits else 0.0
        test = self.config.test_fraction if "test" in splits else 0.0
        train_end, val_end = int(len(text) * (1 - valid - test)), int(len(text) * (1 - test))
        return {"train": text[:train_end], "val": text[train_end:val_end], "test": text[val_end:]}


class ConllDataset(FileDataset):
    kind = "tagged"

    def read(self, path: Path) -> list:
        c = self.config
        return read_conll(path, c.token_column, c.tag_column, c.separator)


class ConlluDataset(FileDataset):
    kind = "tagged"

    def read(self, path: Path) -> list:
        return read_conllu(path, self.config.tagset)


class LabeledDataset(FileDataset):
    kind = "labeled"

    def read(self, path: Path) -> list:
        c = self.config
        return read_labeled(path, c.separator, c.encoding, c.fallback_encoding)


class ParallelDataset(FileDataset):
    kind = "parallel"

    def __init__(self, config: ParallelConfig) -> None:
        super().__init__(config)
        langs = (config.source_lang, config.target_lang)
        if (langs[0] is None) != (langs[1] is None) or (langs[0] is not None and langs[0] == langs[1]):
            raise DataError(f"dataset '{self.name}': give two different languages source_lang and target_lang, "
                            f"or neither (one source<TAB>target file per split); got {langs[0]} and {langs[1]}")

    def members(self, stem: str) -> list[str]:
        c = self.config
        return [stem] if c.source_lang is None else [f"{stem}.{c.source_lang}", f"{stem}.{c.target_lang}"]

    def read(self, path: Path) -> list:
        if self.config.source_lang is None:
            return read_tsv_pairs(path)
        source, target = self.members(str(path))
        return read_parallel(source, target)


def register(name: str, config: type) -> Any:
    """Register a dataset class under `name` with its kind as trait; the class learns its name."""
    def decorate(cls: D) -> D:
        cls.name = name
        return DATASETS.register(name, config=config, traits={cls.kind})(cls)
    return decorate


# --- the user's own files --------------------------------------------------------------------
@dataclass
class TextFilesConfig(TextConfig):
    pass


@dataclass
class ConllFilesConfig(ConllConfig):
    pass


@dataclass
class ConlluFilesConfig(ConlluConfig):
    pass


@dataclass
class LabeledFilesConfig(LabeledConfig):
    pass


@dataclass
class ParallelFilesConfig(ParallelConfig):
    pass


@register("text_files", TextFilesConfig)
class TextFiles(TextDataset):
    """Your plain-text corpus: dataset.train=PATH (valid/test optional, else cut from the end of train)."""


@register("conll_files", ConllFilesConfig)
class ConllFiles(ConllDataset):
    """Your CoNLL column files: dataset.train=PATH (valid/test optional, else a seeded 10% each)."""


@register("conllu_files", ConlluFilesConfig)
class ConlluFiles(ConlluDataset):
    """Your CoNLL-U treebank: dataset.train=PATH (valid/test optional, else a seeded 10% each)."""


@register("labeled_files", LabeledFilesConfig)
class LabeledFiles(LabeledDataset):
    """Your 'label<TAB>text' or 'label text' files: dataset.train=PATH (valid/test optional)."""


@register("parallel_files", ParallelFilesConfig)
class ParallelFiles(ParallelDataset):
    """Your parallel corpus: source<TAB>target files, or PREFIX.<lang> pairs with source_lang/target_lang."""


# --- for tasks -----------------------------------------------------------------------------
def open_dataset(config_or_name: Any, **overrides: Any) -> FileDataset:
    """A dataset ready to `load(split)`, from a registry name, a config mapping or
    DictConfig with a `name`, or a config dataclass instance (`api._typed`'s), plus overrides.

    >>> open_dataset("trec", labels="fine").load("test")[0].label
    'NUM:dist'
    """
    if isinstance(config_or_name, FileDataset) and not overrides:
        return config_or_name
    name, values = _name_and_values(config_or_name)
    entry = DATASETS.entry(name)
    if entry.config is None or not hasattr(entry.target, "load"):
        raise DataError(f"dataset '{name}' has no files to load: its task generates its data")
    try:
        config = entry.make_config({**values, **overrides}, where=f"dataset '{name}'")
    except RnnzooError as error:  # an option of the wrong type or out of its range: a DataError, as bad files are
        raise DataError(str(error)) from None
    return entry.target(config)


def _name_and_values(config_or_name: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(config_or_name, str):
        return config_or_name, {}
    if isinstance(config_or_name, DictConfig):
        config_or_name = OmegaConf.to_container(config_or_name, resolve=True)
    if isinstance(config_or_name, Mapping):
        values = dict(config_or_name)
    elif dataclasses.is_dataclass(config_or_name) and not isinstance(config_or_name, type):
        values = dataclasses.asdict(config_or_name)
        if "name" not in values:  # a registered config class: each dataset has its own
            names = [e.name for e in DATASETS if e.config is type(config_or_name)]
            if len(names) == 1:
                values["name"] = names[0]
    else:
        raise TypeError(f"open_dataset takes a name, a mapping or a config dataclass, got {config_or_name!r}")
    if not values.get("name"):
        raise DataError(f"dataset config {values} has no name; which dataset is it?")
    return values.pop("name"), values
