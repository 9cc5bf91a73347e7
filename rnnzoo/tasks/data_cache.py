"""How a task keeps its vocabularies and encoded splits in the token cache (`rnnzoo.data.cache`).

    cache_of(task)               the TokenCache of the task's dataset, or None (generated data,
                                 or `dataset.cache=false`: then the task reads its files as before)
    cached_vocab(task, build)    the task's vocabulary state, built by `build()` on a miss
    cached_stream(task, split, build)     a language model's token stream of a split (memory-mapped)
    cached_examples(task, split, items)   a split's encoded examples (memory-mapped `Examples`)

What the key of an entry holds (any change builds another entry): the dataset's options but
where the cache is kept, the identity of every file the dataset reads, the task's options
but those that only shape training (`TRAINING_ONLY`), what the task adds in `encoding_key`
(BERT framing, pretraining's pairs and seed), and for a split the vocabulary's hash. Building
an entry re-checks the source files afterwards: one that changed meanwhile is an error, and
nothing is kept.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from tqdm.auto import tqdm

from ..data.arrays import ArrayFile, Examples, ExampleWriter
from ..data.cache import Entry, TokenCache, check_unchanged, digest, file_identity
from ..data.readers import DataError
from ..data.sources import CACHE_OPTIONS, FileDataset, open_dataset
from ..data.streaming import PROGRESS_MIN_BYTES
from ..errors import RnnzooError
from ..registry import DATASETS

log = logging.getLogger("rnnzoo")

#: task options that shape training or evaluation only, never the tokens: left out of the keys
TRAINING_ONLY = frozenset({
    "batch_size", "eval_batch_size", "dropout", "target", "embedding_dim", "embedding_std", "tie_embeddings",
    "eval_tokens", "sample_tokens", "sample_prompt", "batches_per_epoch", "sampling", "bptt", "crf", "pooling",
    "beam_size", "length_penalty", "teacher_forcing", "label_smoothing", "monitor", "samples", "mask_prob",
    "eval_sentences", "char_filters", "char_width",
    # word vectors: read after the vocabulary is cached; a vocabulary they grow keys the splits by its hash
    "pretrained_embeddings", "pretrained_target_embeddings", "extend_vocab_from_vectors", "freeze_embeddings",
    "embedding_lr_scale",
})


def cache_of(task: Any) -> TokenCache | None:
    """The token cache of the task's dataset, or None where there is none to keep."""
    dataset = task.dataset_config
    entry = DATASETS.entry(dataset.get("name", "synthetic"))
    if not (isinstance(entry.target, type) and issubclass(entry.target, FileDataset)):
        return None
    if not dataset.get("cache", True):
        return None
    return TokenCache(dataset.get("cache_dir"))


def task_options(task: Any) -> dict[str, Any]:
    """The task's options that may change what it encodes."""
    values = dataclasses.asdict(task.config)
    return {key: value for key, value in values.items() if key not in TRAINING_ONLY}


def source_key(task: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(key parts of the task's data before any vocabulary, the source files' identities)."""
    configs = [task.dataset_config, *task.extra_datasets()]
    identities = [file_identity(path) for config in configs for path in open_dataset(config).source_files()]
    for identity in identities:
        if identity["size"] == 0:
            raise DataError(f"{identity['path']}: the file is empty; a dataset file needs at least one example")
    datasets = [{k: v for k, v in dict(config).items() if k not in CACHE_OPTIONS} for config in configs]
    key = {"task": type(task).__name__, "options": task_options(task), "extra": task.encoding_key(),
           "datasets": datasets, "files": identities}
    return key, identities


def label(task: Any, part: str) -> str:
    return f"{task.dataset_config.get('name', 'data')}-{type(task).__name__.removesuffix('Task').lower()}-{part}"


def cached_vocab(task: Any, build: Callable[[], dict[str, Any]], inherited: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The task's vocabulary state (what its `state_dict` returns), from the cache or `build()`.

    `inherited`: a tokenizer the task was handed (a pretraining run's), part of the key."""
    cache = cache_of(task)
    if cache is None:
        return build()
    key, identities = source_key(task)
    del key["extra"]  # framing and pairing shape the encoded splits, not the vocabulary
    if inherited is not None:
        key["inherited"] = digest(inherited)

    def write(folder: Path) -> dict[str, Any]:
        started = time.perf_counter()
        state = build()
        check_unchanged(identities)
        log.info("token cache: vocabularies of %s built in %.1f s", label(task, "train"), time.perf_counter() - started)
        return {"task_state": state}

    return remember(task, "vocab", cache.get(label(task, "vocab"), key, write)).meta["task_state"]


def split_key(task: Any, split: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    key, identities = source_key(task)
    dataset = open_dataset(task.dataset_config)
    return {**key, "split": dataset.split_identity(split), "vocab": digest(task.state_dict())}, identities


def cached_split(task: Any, split: str, fill: Callable[[Path], dict[str, Any]], what: Callable[[dict[str, Any]], str],
                 source_bytes: int | None = None) -> Entry | None:
    """The cache entry of one split, `fill(folder) -> meta` writing it on a miss (`what(meta)`
    says what was written, in the log line; `source_bytes` how much was read, by default every
    source file). None when the task's data has no cache."""
    cache = cache_of(task)
    if cache is None:
        return None
    key, identities = split_key(task, split)

    def write(folder: Path) -> dict[str, Any]:
        started = time.perf_counter()
        meta = fill(folder)
        check_unchanged(identities)
        read = source_bytes if source_bytes is not None else sum(identity["size"] for identity in identities)
        report(task, split, folder, what(meta), read, started)
        return meta

    part = split if key["split"].startswith("cut:") else Path(key["split"].removeprefix("file:")).name
    # named by its file where it has one: a validation file that is also the test file is one entry
    return remember(task, split, cache.get(label(task, part), key, write, describe=f"the {split} split"))


def cached_stream(task: Any, split: str, write_ids: Callable[[ArrayFile, Callable[[int], None]], None],
                  dtype: np.dtype, source_bytes: int) -> np.ndarray | None:
    """A split's token stream, memory-mapped; `write_ids(out, on_bytes)` writes it on a miss."""
    def fill(folder: Path) -> dict[str, Any]:
        out = ArrayFile(folder, "stream", dtype)
        with progress_bar(source_bytes, f"tokenizing {split}") as bar:
            write_ids(out, bar.update)
        spec = out.close()
        return {"count": spec["count"], "arrays": {"stream": spec}}

    entry = cached_split(task, split, fill, lambda meta: f"{meta['count']:,} tokens ({dtype.name})", source_bytes)
    return None if entry is None else entry.array("stream")


def cached_examples(task: Any, split: str, items: Callable[[], Iterable[tuple]]) -> Examples | None:
    """A split's encoded examples, memory-mapped; `items()` encodes them on a miss (as a stream,
    so the writer holds a bounded buffer)."""
    def fill(folder: Path) -> dict[str, Any]:
        writer = ExampleWriter(folder)
        writer.add_all(items())
        return writer.close()

    entry = cached_split(task, split, fill, lambda meta: f"{meta['count']:,} examples")
    if entry is None:
        return None
    examples = Examples(entry)
    if not len(examples):
        raise RnnzooError(f"dataset {task.dataset_config.get('name')}: the {split} split is empty")
    return examples


def remember(task: Any, part: str, entry: Entry) -> Entry:
    """Note on the task which entry holds `part` (what `rnnzoo prepare` prints)."""
    task.__dict__.setdefault("cache_entries", {}).setdefault(part, entry)  # a test split aliasing val: val's
    return entry


def report(task: Any, split: str, path: Path, what: str, source_bytes: int, started: float) -> None:
    seconds = max(time.perf_counter() - started, 1e-9)
    size = path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.iterdir())
    log.info("token cache: %s split of %s: %s, %.1f MB on disk, in %.1f s (%.1f MB/s of source)", split,
             task.dataset_config.get("name"), what, size / 1e6, seconds, source_bytes / 1e6 / seconds)


def progress_bar(total_bytes: int, what: str) -> tqdm:
    """A bar in megabytes with the rate, for files large enough to wait on."""
    return tqdm(total=total_bytes, unit="B", unit_scale=True, desc=what, dynamic_ncols=True,
                disable=total_bytes < PROGRESS_MIN_BYTES)
