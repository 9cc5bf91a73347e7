"""Built-in translation datasets generated from a seed: reversal, sorting, dates. No download.

Three small seq2seq problems of kind "parallel", loaded like multi30k:
`open_dataset("dates").load("train")` is a `list[ParallelPair]` of raw strings.

    name      source (example)            target            level  why
    reversal  "d a c b"                   "b c a d"         word   Sutskever et al. (2014) reversed
                                                                   the source to shorten the paths
                                                                   between aligned words; reversing
                                                                   is the purest test of that memory
    sorting   "d a c b"                   "a b c d"         word   Vinyals et al. (2015), "Order
                                                                   matters" and pointer networks:
                                                                   the output order depends on the
                                                                   whole input, not on position
    dates     "tuesday 3 march 1987"      "1987-03-03"      char   date normalization, the toy task
                                                                   of the well-known attention
                                                                   tutorials: many formats to one,
                                                                   and an attention map that shows
                                                                   which source characters each
                                                                   output digit reads

reversal / sorting: a source is `min_length`..`max_length` symbols (length uniform in that
range, symbols uniform, with repetition) from an alphabet of `alphabet` short lowercase
tokens, "a".."z" then "a0".."z0", "a1".. (at most 286), separated by single spaces. The
reversal target is the symbols reversed; the sorting target is them in Python's string
order (`sorted`, so "a" < "a0" < "b"; plain alphabetical order up to 26 symbols). Their
class attribute `level` is "word": a symbol is a whitespace token.

dates: a day drawn uniformly from 1950-01-01..2049-12-31, written in one of the
`DATE_FORMATS` (drawn uniformly; 17 of them, lower, title and upper case), target its ISO
8601 form. Weekday names are the day's true weekday. Numeric formats are day-first
("03/03/87" is 3 March) or year-first ("1987.03.03"), never month-first, so no source is
ambiguous; a two-digit year yy means 19yy for yy >= 50 and 20yy below, exactly the range
drawn from. `min_length` / `max_length` bound the source in characters (0 / null: no
bound), by rejection sampling (the format drawn in proportion to how many of its dates fit,
then dates until one fits); bounds no format can meet (sources have 6..29 characters) are a
DataError naming them, and `MAX_MISSES` misses in a row one too. `level` is "char": the
translation task tokenizes dates by characters by default.

Splits: each split has its own generator, `random.Random(f"{seed}-{split}")` (string seeds
are hashed with SHA-512, the same on every machine and Python version), so val and test
never change when train_size changes, and a larger train_size extends a smaller one.
`seed` is the data's own seed, independent of the run's seed. For dates the three splits
are disjoint: every source string belongs to one split, by the md5 of (seed, string)
(1 in 10 to test, 1 in 10 to val, the rest to train), and each split keeps only the draws
that belong to it, so no test source string is ever seen in training whatever the sizes.
The same date may appear in two splits written in different formats. reversal / sorting
draw each split freely: with the defaults, the chance that some test source repeats a
training source is about 1 in 40 (a 5-symbol one), and harmless.

`length_split(name, length, size, seed, ...)` draws sources of exactly `length` symbols
(reversal / sorting) or characters (dates), for plotting accuracy against source length,
also beyond the lengths trained on. Its generator is `random.Random(f"{seed}-length-{length}")`;
date sources come from the test side of the partition, so none is a training source of
the same seed.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass
from datetime import date
from functools import cache
from string import ascii_lowercase
from typing import Any, Callable, ClassVar, NamedTuple

from ..registry import DATASETS, help_field
from .examples import ParallelPair
from .readers import DataError
from .sources import SPLITS, open_dataset, register

MAX_ALPHABET = 26 * 11  # a..z, then a0..z0 up to a9..z9
FIRST_DAY, LAST_DAY = date(1950, 1, 1), date(2049, 12, 31)
MAX_MISSES = 100_000  # dates: draws in a row that miss before giving up (a safety net)
GENERATED = ("reversal", "sorting", "dates")
HELD_OUT = {0: "test", 1: "val"}  # md5 bucket (of 10) -> split; the other buckets train


# --- configs -----------------------------------------------------------------------------
@dataclass
class GeneratedConfig:
    """What every generated dataset takes: split sizes and the data's own seed."""

    train_size: int = help_field(20000, "training pairs generated", ge=1)
    val_size: int = help_field(1000, "validation pairs generated", ge=1)
    test_size: int = help_field(1000, "test pairs generated", ge=1)
    seed: int = help_field(1234, "seed of the data, independent of the run's seed; each split "
                                 "draws from its own generator, so val/test do not depend on train_size", ge=0)


@dataclass
class SymbolsConfig(GeneratedConfig):
    alphabet: int = help_field(20, f"distinct symbols, 1..{MAX_ALPHABET}: a..z, then a0..z0, a1..",
                               ge=1, le=MAX_ALPHABET)
    min_length: int = help_field(5, "fewest symbols in a source", ge=1)
    max_length: int = help_field(20, "most symbols in a source", ge=1)


@dataclass
class ReversalConfig(SymbolsConfig):
    pass


@dataclass
class SortingConfig(SymbolsConfig):
    pass


@dataclass
class DatesConfig(GeneratedConfig):
    min_length: int = help_field(0, "fewest characters in a source date (0: no bound)", ge=0)
    max_length: int | None = help_field(None, "most characters in a source date (null: no bound)", ge=1)


# --- the datasets ------------------------------------------------------------------------
class GeneratedParallel:
    """Pairs generated from (seed, split); subclasses say how one split is drawn."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "parallel"
    level: ClassVar[str] = ""  # how the translation task tokenizes by default: "word" or "char"
    generated: ClassVar[bool] = True  # exact match is the figure that counts (task.monitor=auto)

    def __init__(self, config: GeneratedConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"

    def load(self, split: str) -> list[ParallelPair]:
        """The pairs of `split` (train, val or test), generated anew on every call."""
        if split not in SPLITS:
            raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        c = self.config
        return self.generate(random.Random(f"{c.seed}-{split}"), getattr(c, f"{split}_size"), split,
                             c.min_length, c.max_length)

    def length_split(self, length: int, size: int) -> list[ParallelPair]:
        """`size` pairs whose source is exactly `length` long (symbols, or characters for dates)."""
        self._at_least("length", length, 1)
        self._at_least("size", size, 1)
        return self.generate(random.Random(f"{self.config.seed}-length-{length}"), size, "test", length, length)

    def generate(self, rng: random.Random, size: int, split: str, min_length: int,
                 max_length: int | None) -> list[ParallelPair]:
        raise NotImplementedError

    def _at_least(self, field: str, value: int, low: int) -> None:
        if value < low:
            raise DataError(f"dataset '{self.name}': {field} must be at least {low}, got {field}={value}")

    def _check_lengths(self, min_length: int, max_length: int | None, low: int) -> None:
        self._at_least("min_length", min_length, low)
        if max_length is not None and max_length < max(min_length, 1):
            raise DataError(f"dataset '{self.name}': max_length must be at least min_length and 1, got "
                            f"min_length={min_length} and max_length={max_length}")


def symbols(alphabet: int) -> list[str]:
    """The first `alphabet` symbols: a..z, then a0..z0, a1..z1, ... a9..z9."""
    if not 1 <= alphabet <= MAX_ALPHABET:
        raise DataError(f"alphabet must be between 1 and {MAX_ALPHABET} (symbols a..z, then a0..z9), "
                        f"got alphabet={alphabet}")
    tokens = list(ascii_lowercase) + [letter + digit for digit in "0123456789" for letter in ascii_lowercase]
    return tokens[:alphabet]


class SymbolSequences(GeneratedParallel):
    """Sources of uniformly random symbols; the target is `transform` of the source's symbols."""

    level = "word"

    def __init__(self, config: SymbolsConfig) -> None:
        super().__init__(config)
        self._check_lengths(config.min_length, config.max_length, 1)
        try:
            self.symbols = symbols(config.alphabet)
        except DataError as error:
            raise DataError(f"dataset '{self.name}': {error}") from None

    def generate(self, rng: random.Random, size: int, split: str, min_length: int,
                 max_length: int | None) -> list[ParallelPair]:
        pairs = []
        for _ in range(size):
            source = rng.choices(self.symbols, k=rng.randint(min_length, max_length))
            pairs.append(ParallelPair(" ".join(source), " ".join(self.transform(source))))
        return pairs

    def transform(self, source: list[str]) -> list[str]:
        raise NotImplementedError


@register("reversal", ReversalConfig)
class Reversal(SymbolSequences):
    """Reverse a random symbol sequence ("d a c" -> "c a d"); word level (symbols are tokens)."""

    def transform(self, source: list[str]) -> list[str]:
        return source[::-1]


@register("sorting", SortingConfig)
class Sorting(SymbolSequences):
    """Sort a random symbol sequence ("d a c" -> "a c d", string order); word level."""

    def transform(self, source: list[str]) -> list[str]:
        return sorted(source)


# --- dates -------------------------------------------------------------------------------
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ... 11th, 12th, 13th, ... 21st, 22nd, 23rd, ... 31st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _month(d: date) -> str:
    return MONTHS[d.month - 1]


def _weekday(d: date) -> str:
    return WEEKDAYS[d.weekday()]


class DateFormat(NamedTuple):
    """One way of writing a date; `example` is how it writes Tuesday 1987-03-03."""

    example: str
    render: Callable[[date], str]


DATE_FORMATS: tuple[DateFormat, ...] = (
    DateFormat("tuesday 3 march 1987", lambda d: f"{_weekday(d)} {d.day} {_month(d)} {d.year}".lower()),
    DateFormat("03/03/87", lambda d: f"{d.day:02d}/{d.month:02d}/{d.year % 100:02d}"),
    DateFormat("3/3/1987", lambda d: f"{d.day}/{d.month}/{d.year}"),
    DateFormat("3rd of March, 1987", lambda d: f"{ordinal(d.day)} of {_month(d)}, {d.year}"),
    DateFormat("March 3, 1987", lambda d: f"{_month(d)} {d.day}, {d.year}"),
    DateFormat("3 Mar 1987", lambda d: f"{d.day} {_month(d)[:3]} {d.year}"),
    DateFormat("1987.03.03", lambda d: f"{d.year}.{d.month:02d}.{d.day:02d}"),
    DateFormat("Tue, 3 Mar 1987", lambda d: f"{_weekday(d)[:3]}, {d.day} {_month(d)[:3]} {d.year}"),
    DateFormat("march 3rd 1987", lambda d: f"{_month(d)} {ordinal(d.day)} {d.year}".lower()),
    DateFormat("03.03.1987", lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}"),
    DateFormat("3 MARCH 1987", lambda d: f"{d.day} {_month(d)} {d.year}".upper()),
    DateFormat("Tuesday, March 3, 1987", lambda d: f"{_weekday(d)}, {_month(d)} {d.day}, {d.year}"),
    DateFormat("03-mar-87", lambda d: f"{d.day:02d}-{_month(d)[:3]}-{d.year % 100:02d}".lower()),
    DateFormat("1987/3/3", lambda d: f"{d.year}/{d.month}/{d.day}"),
    DateFormat("the 3rd of march 1987", lambda d: f"the {ordinal(d.day)} of {_month(d)} {d.year}".lower()),
    DateFormat("TUE 03 MAR 1987", lambda d: f"{_weekday(d)[:3]} {d.day:02d} {_month(d)[:3]} {d.year}".upper()),
    DateFormat("3.3.87", lambda d: f"{d.day}.{d.month}.{d.year % 100:02d}"),
)


def date_split(source: str, seed: int) -> str:
    """The one split a date source string belongs to (train, val or test) under `seed`."""
    bucket = int.from_bytes(hashlib.md5(f"{seed}\t{source}".encode()).digest()[:4], "big") % 10
    return HELD_OUT.get(bucket, "train")


@cache
def format_lengths() -> tuple[Counter[int], ...]:
    """Per format, how many days of a 28-year calendar cycle it writes in each length.

    A source's length depends on its day, month and weekday only (years are fixed-width),
    and 28 years (2000..2027) hold every combination in its proportion over 1950..2049.
    """
    days = [date.fromordinal(n) for n in range(date(2000, 1, 1).toordinal(), date(2027, 12, 31).toordinal() + 1)]
    return tuple(Counter(len(form.render(day)) for day in days) for form in DATE_FORMATS)


@register("dates", DatesConfig)
class Dates(GeneratedParallel):
    """Normalize a date in one of 17 human formats to ISO 8601 ("3rd of March, 1987" -> "1987-03-03").

    Character level: the translation task tokenizes its sources and targets by characters
    by default. The splits are disjoint: no source string is in two of them.
    """

    level = "char"

    def __init__(self, config: DatesConfig) -> None:
        super().__init__(config)
        self._check_lengths(config.min_length, config.max_length, 0)
        self._format_weights(config.min_length, config.max_length)

    def generate(self, rng: random.Random, size: int, split: str, min_length: int,
                 max_length: int | None) -> list[ParallelPair]:
        first, last = FIRST_DAY.toordinal(), LAST_DAY.toordinal()
        upper = max_length if max_length is not None else float("inf")
        weights = self._format_weights(min_length, max_length)
        pairs: list[ParallelPair] = []
        misses = 0
        while len(pairs) < size:
            form = rng.choice(DATE_FORMATS) if weights is None else rng.choices(DATE_FORMATS, weights)[0]
            day = date.fromordinal(rng.randint(first, last))
            source = form.render(day)
            if min_length <= len(source) <= upper and date_split(source, self.config.seed) == split:
                pairs.append(ParallelPair(source, day.isoformat()))
                misses = 0
                continue
            misses += 1
            if misses >= MAX_MISSES:
                bound = self._bound(min_length, max_length)
                raise DataError(f"dataset '{self.name}': no {split} date source of {bound} "
                                f"in {MAX_MISSES} draws in a row (min_length={min_length}, max_length={max_length})")
        return pairs

    def _format_weights(self, min_length: int, max_length: int | None) -> list[int] | None:
        """How often each format meets the length bounds (None: no bounds, formats equally likely).

        Drawing the format by these weights, then days until one fits, is rejection sampling
        of (format, day) given the bounds, without wasting draws on formats that never fit.
        """
        if min_length == 0 and max_length is None:
            return None
        upper = max_length if max_length is not None else float("inf")
        weights = [sum(n for length, n in lengths.items() if min_length <= length <= upper)
                   for lengths in format_lengths()]
        if not any(weights):
            possible = sorted(set().union(*format_lengths()))
            raise DataError(f"dataset '{self.name}': no date source has {self._bound(min_length, max_length)} "
                            f"(min_length={min_length}, max_length={max_length}); sources have "
                            f"{possible[0]}..{possible[-1]} characters")
        return weights

    @staticmethod
    def _bound(min_length: int, max_length: int | None) -> str:
        if max_length is None:
            return f"at least {min_length} characters"
        return f"{min_length}..{max_length} characters" if min_length != max_length else f"{min_length} characters"


# --- for the length experiment ----------------------------------------------------------
def length_split(name: str, length: int, size: int, seed: int, **config: Any) -> list[ParallelPair]:
    """`size` pairs of dataset `name` whose source has exactly `length` symbols (reversal,
    sorting) or characters (dates), to plot accuracy against source length.

    `seed` is the data's seed (the dataset's `seed` option); `config` holds its other options
    (alphabet=...), whose min_length/max_length do not apply here. Deterministic in
    (seed, length); date sources come from the test side of the split partition.

    >>> [p.source for p in length_split("reversal", 3, 2, seed=1234)]  # doctest: +SKIP
    ['k b q', 'c c a']
    """
    target = DATASETS.entry(name).target
    if not (isinstance(target, type) and issubclass(target, GeneratedParallel)):
        raise DataError(f"length_split generates its pairs: dataset must be one of "
                        f"{', '.join(GENERATED)}, got {name!r}")
    return open_dataset(name, **{**config, "seed": seed}).length_split(length, size)
