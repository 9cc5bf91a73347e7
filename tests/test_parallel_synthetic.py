"""The generated translation datasets: reversal, sorting, dates (rnnzoo/data/synthetic_parallel.py)."""

from __future__ import annotations

import re
from datetime import date

import pytest

from rnnzoo.data import DATE_FORMATS, DataError, ParallelPair, length_split, open_dataset
from rnnzoo.registry import DATASETS

from .conftest import compose_config

NAMES = ("reversal", "sorting", "dates")
SMALL = {"train_size": 200, "val_size": 50, "test_size": 50}
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
REQUIRED_FORMATS = {"tuesday 3 march 1987", "03/03/87", "3/3/1987", "3rd of March, 1987", "March 3, 1987",
                    "3 Mar 1987", "1987.03.03", "Tue, 3 Mar 1987", "march 3rd 1987", "03.03.1987", "3 MARCH 1987"}


def load_all(name: str, **options) -> dict[str, list[ParallelPair]]:
    dataset = open_dataset(name, **{**SMALL, **options})
    return {split: dataset.load(split) for split in ("train", "val", "test")}


def parse_date(source: str) -> tuple[date, str | None]:
    """An independent reading of a date source: (the date it denotes, its weekday abbreviation if any).

    Numbers are day-first (or year-first when the first has 4 digits); a 2-digit year yy is
    19yy for yy >= 50, else 20yy. Month and weekday names are matched on their first 3 letters.
    """
    numbers = re.findall(r"\d+", source)
    words = [w[:3] for w in re.findall(r"[a-z]+", source.lower()) if w not in {"st", "nd", "rd", "th", "of", "the"}]
    months = [MONTHS.index(w) + 1 for w in words if w in MONTHS]
    weekdays = [w for w in words if w in WEEKDAYS]
    assert len(months) <= 1 and len(weekdays) <= 1 and len(months) + len(weekdays) == len(words), source
    if months:
        assert len(numbers) == 2, source
        (day, year), month = numbers, months[0]
    elif len(numbers[0]) == 4:
        year, month, day = numbers
    else:
        day, month, year = numbers
    year = int(year) if len(year) == 4 else (1900 if int(year) >= 50 else 2000) + int(year)
    return date(year, int(month), int(day)), (weekdays[0] if weekdays else None)


# --- loading ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_each_set_loads_its_splits_deterministically_and_independently(name):
    entry = DATASETS.entry(name)
    assert entry.traits == {"parallel"} and entry.target.level == ("char" if name == "dates" else "word")
    splits = load_all(name)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [200, 50, 50]
    assert all(isinstance(p, ParallelPair) and isinstance(p.source, str) and isinstance(p.target, str)
               for pairs in splits.values() for p in pairs)
    assert load_all(name) == splits  # deterministic
    bigger = load_all(name, train_size=300)
    assert bigger["val"] == splits["val"] and bigger["test"] == splits["test"]  # independent of train_size
    assert bigger["train"][:200] == splits["train"]  # a larger train extends a smaller one
    assert load_all(name, seed=5)["val"] != splits["val"]
    assert splits["train"][:50] != splits["val"] != splits["test"]


def test_defaults_are_documented_sizes():
    for name in NAMES:
        config = open_dataset(name).config
        assert (config.train_size, config.val_size, config.test_size, config.seed) == (20000, 1000, 1000, 1234)


def test_reversal_reverses_and_sorting_sorts_within_the_length_bounds():
    for name, expected in (("reversal", lambda s: s[::-1]), ("sorting", sorted)):
        pairs = open_dataset(name, train_size=500, alphabet=30, min_length=3, max_length=7).load("train")
        lengths = {len(p.source.split()) for p in pairs}
        assert lengths == set(range(3, 8))
        assert all(p.target.split() == expected(p.source.split()) for p in pairs)
        assert {s for p in pairs for s in p.source.split()} == set("abcdefghijklmnopqrstuvwxyz") | {"a0", "b0",
                                                                                                    "c0", "d0"}
    defaults = open_dataset("reversal", train_size=300).load("train")
    assert min(len(p.source.split()) for p in defaults) >= 5 and max(len(p.source.split()) for p in defaults) <= 20


def test_dates_targets_are_what_the_sources_say():
    pairs = open_dataset("dates", train_size=2000).load("train")
    weekday_seen = 0
    for pair in pairs:
        target = date.fromisoformat(pair.target)
        assert pair.target == target.isoformat() and date(1950, 1, 1) <= target <= date(2049, 12, 31)
        denoted, weekday = parse_date(pair.source)
        assert denoted == target, pair
        if weekday is not None:
            weekday_seen += 1
            assert weekday == WEEKDAYS[target.weekday()], pair
    assert weekday_seen > 200


def test_all_date_formats_occur_and_show_their_example():
    examples = {form.example for form in DATE_FORMATS}
    assert REQUIRED_FORMATS <= examples and len(examples) >= len(REQUIRED_FORMATS) + 3
    assert all(form.render(date(1987, 3, 3)) == form.example for form in DATE_FORMATS)
    assert all(parse_date(form.example)[0] == date(1987, 3, 3) for form in DATE_FORMATS)
    pairs = open_dataset("dates", train_size=2000).load("train")
    seen = {form.example for pair in pairs for form in DATE_FORMATS
            if form.render(date.fromisoformat(pair.target)) == pair.source}
    assert seen == examples
    assert any(p.source.isupper() for p in pairs) and any(p.source.islower() for p in pairs)
    assert any(p.source[0].isupper() and not p.source.isupper() for p in pairs)


def test_two_digit_years_cover_1950_to_2049():
    pairs = open_dataset("dates", train_size=2000).load("train")
    short = [p for p in pairs if re.search(r"\D\d\d$", p.source)]
    years = {date.fromisoformat(p.target).year for p in short}
    assert min(years) < 1960 and max(years) > 2040 and len(short) > 100


def test_dates_splits_are_disjoint():
    splits = load_all("dates", train_size=3000, val_size=500, test_size=500)
    sources = {split: {p.source for p in pairs} for split, pairs in splits.items()}
    assert not sources["train"] & sources["test"]
    assert not sources["train"] & sources["val"] and not sources["val"] & sources["test"]


def test_dates_length_bounds_are_characters():
    pairs = open_dataset("dates", train_size=300, min_length=10, max_length=12).load("train")
    assert {len(p.source) for p in pairs} == {10, 11, 12}
    assert all(len(p.source) >= 20 for p in open_dataset("dates", train_size=100, min_length=20).load("val"))


# --- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, options, field", [
    ("reversal", {"min_length": 6, "max_length": 5}, "min_length=6"),
    ("sorting", {"min_length": 0}, "min_length=0"),
    ("reversal", {"train_size": 0}, "train_size=0"),
    ("sorting", {"val_size": -1}, "val_size=-1"),
    ("dates", {"test_size": 0}, "test_size=0"),
    ("reversal", {"alphabet": 287}, "alphabet=287"),
    ("sorting", {"alphabet": 0}, "alphabet=0"),
    ("dates", {"min_length": 12, "max_length": 10}, "max_length=10"),
    ("dates", {"min_length": 40}, "min_length=40"),
    ("dates", {"max_length": 5}, "max_length=5"),
])
def test_bad_values_raise_a_data_error_naming_the_field(name, options, field):
    with pytest.raises(DataError, match=re.escape(field)):
        open_dataset(name, **options)


def test_unknown_split_and_alphabet_limit_are_explained():
    with pytest.raises(DataError, match="split must be one of train, val, test, got 'dev'"):
        open_dataset("reversal").load("dev")
    with pytest.raises(DataError, match=re.escape("alphabet=1000 is out of range: must be in [1, 286]")):
        open_dataset("reversal", alphabet=1000)
    assert len({s for p in open_dataset("reversal", alphabet=286, train_size=300).load("train")
                for s in p.source.split()}) > 250


# --- Hydra -----------------------------------------------------------------------------------
def test_hydra_composes_each_set():
    cfg = compose_config(["dataset=dates", "dataset.train_size=10"])
    assert cfg.dataset.name == "dates" and cfg.dataset.train_size == 10 and cfg.dataset.max_length is None
    assert len(open_dataset(cfg.dataset).load("train")) == 10
    for name in ("reversal", "sorting"):
        cfg = compose_config([f"dataset={name}", "dataset.alphabet=8"])
        assert cfg.dataset.name == name and open_dataset(cfg.dataset).config.alphabet == 8


# --- the length experiment ---------------------------------------------------------------------
def test_length_split_gives_exactly_the_requested_length():
    for name in ("reversal", "sorting"):
        for length in (1, 12, 40):  # 40: longer than anything trained on by default
            pairs = length_split(name, length, 30, seed=1234, alphabet=10)
            assert len(pairs) == 30 and {len(p.source.split()) for p in pairs} == {length}
        assert length_split(name, 7, 30, seed=1) == length_split(name, 7, 30, seed=1)
    sorted_pairs = length_split("sorting", 9, 20, seed=3)
    assert all(p.target.split() == sorted(p.source.split()) for p in sorted_pairs)
    train = {p.source for p in open_dataset("dates", train_size=2000).load("train")}
    for length in (6, 15, 29):
        pairs = length_split("dates", length, 40, seed=1234)
        assert len(pairs) == 40 and {len(p.source) for p in pairs} == {length}
        assert all(parse_date(p.source)[0] == date.fromisoformat(p.target) for p in pairs)
        assert not {p.source for p in pairs} & train
    with pytest.raises(DataError, match="no date source has 5 characters"):
        length_split("dates", 5, 10, seed=1234)
    with pytest.raises(DataError, match="length=0"):
        length_split("reversal", 0, 10, seed=1234)
    with pytest.raises(DataError, match="reversal, sorting, dates"):
        length_split("multi30k", 5, 10, seed=1234)
