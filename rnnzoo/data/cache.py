"""The token cache: a corpus tokenized once, then memory-mapped by every later run.

The first run that needs a split of a file dataset tokenizes it and writes what the task
trains on to disk; later runs, `rnnzoo eval`, `resume=` and every DDP process map those
files instead of reading the corpus again (nanoGPT's `prepare.py` + `np.memmap`, fairseq's
`fairseq-preprocess` + indexed datasets, inside the CLI). `rnnzoo prepare` builds it ahead.

    <root>/                                   dataset.cache_dir, else $RNNZOO_CACHE_DIR/tokens
      <dataset>-<task>-vocab-v1-<key>/        the task's vocabularies (tokenizer, tags, labels)
        meta.json                             format, key parts, and `task_state` (plain data)
      <dataset>-<task>-<split>-v1-<key>/      one split, encoded
        meta.json                             format, key parts, counts, array files and sizes
        stream.bin                            a language model's token stream (uint16 where
                                              the vocabulary fits, else uint32), or
        f0.data.bin, f0.offsets.bin, ...      examples: one flat array per field + offsets

`<key>` hashes everything the contents depend on: the format version, the source files'
identity (path, size, modification time and an md5 of sampled blocks: `file_identity`), the
dataset options, the task options that shape encoding, and for a split the vocabulary's
hash. Anything changed makes another key, so a stale entry is never read; removing the
whole folder is always safe.

Writing is atomic: an entry is built in a hidden temporary folder that is renamed into place
once complete, with meta.json written last; a crash leaves only the temporary folder, which
is never read. Two processes building one entry take turns on a lock file (`fcntl.flock`,
released by the kernel if the holder dies): the second waits, then maps what the first
wrote. A meta.json that is unreadable, of another format, or whose arrays are missing,
truncated or changed (sizes and sampled md5s are checked on every open) is rebuilt, with a
notice naming it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import itertools
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .readers import DataError
from .remote import cache_dir

log = logging.getLogger("rnnzoo")

FORMAT = 1
SAMPLE_BLOCK = 1 << 16  # bytes per sampled block when hashing a large file
SAMPLE_BLOCKS = 16
WHOLE_FILE_LIMIT = 4 << 20  # files up to this size are hashed whole
FLUSH_ITEMS = 1 << 16  # examples buffered before a field's arrays are written out


def cache_root(override: str | os.PathLike | None = None) -> Path:
    """Where token caches live: `override` (dataset.cache_dir), else $RNNZOO_CACHE_DIR/tokens."""
    return Path(override).expanduser() if override else cache_dir() / "tokens"


# --- identities and keys ---------------------------------------------------------------------
def sampled_md5(path: str | os.PathLike, size: int | None = None) -> str:
    """md5 of the whole file when small, else of its first, last and evenly spaced 64 KiB blocks.

    Bounded work for any size, and together with size and modification time it catches the
    edits that matter (a changed file keeps its size and time only when edited on purpose
    to fool it)."""
    size = os.path.getsize(path) if size is None else size
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        if size <= WHOLE_FILE_LIMIT:
            digest.update(stream.read())
        else:
            for i in range(SAMPLE_BLOCKS):
                stream.seek((size - SAMPLE_BLOCK) * i // (SAMPLE_BLOCKS - 1))
                digest.update(stream.read(SAMPLE_BLOCK))
    return digest.hexdigest()


def file_identity(path: str | os.PathLike) -> dict[str, Any]:
    """What says a source file is the one a cache was made from: path, size, mtime, sampled md5."""
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None
    return {"path": str(resolved), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "md5_sampled": sampled_md5(resolved, stat.st_size)}


def check_unchanged(identities: Sequence[dict[str, Any]]) -> None:
    """Raise if a source file changed since its identity was taken (while it was being read)."""
    for identity in identities:
        now = os.stat(identity["path"])
        if (now.st_size, now.st_mtime_ns) != (identity["size"], identity["mtime_ns"]):
            raise DataError(f"{identity['path']} changed while it was being tokenized (size {identity['size']} -> "
                            f"{now.st_size}); nothing was cached: run again once it is written")


def digest(value: Any) -> str:
    """A short stable hash of plain data (dicts, lists, strings, numbers)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --- entries ------------------------------------------------------------------------------------
@dataclass
class Entry:
    """One cache entry: its folder and its meta.json."""

    path: Path
    meta: dict[str, Any]
    built: bool = False  # written by this process just now (else found)

    def array(self, name: str) -> np.ndarray:
        """A read-only memory map of one of the entry's arrays (an empty array where empty)."""
        spec = self.meta["arrays"][name]
        dtype = np.dtype(spec["dtype"])
        if spec["bytes"] == 0:
            return np.empty(0, dtype)
        return np.memmap(self.path / spec["file"], dtype=dtype, mode="r")


class TokenCache:
    """A folder of entries, each built once under a lock and renamed into place when complete."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = cache_root(root)

    def entry_path(self, label: str, key_parts: dict[str, Any]) -> Path:
        return self.root / f"{label}-v{FORMAT}-{digest({'format': FORMAT, **key_parts})}"

    def get(self, label: str, key_parts: dict[str, Any], build: Callable[[Path], dict[str, Any]],
            describe: str = "") -> Entry:
        """The entry for `key_parts`, built by `build(folder) -> meta` if absent or broken.

        `build` writes its arrays into the (temporary) folder it is given and returns the meta
        data to record, with an "arrays" map {name: {"file", "dtype"}}; sizes and checksums
        are added here."""
        path = self.entry_path(label, key_parts)
        found = self._open(path, key_parts)
        if found is not None:
            return found
        self._make_root()
        with self._locked(path):
            found = self._open(path, key_parts)  # another process may have built it meanwhile
            if found is not None:
                return found
            return self._build(path, label, key_parts, build, describe or label)

    # --- reading ---
    def _open(self, path: Path, key_parts: dict[str, Any]) -> Entry | None:
        """The entry at `path` if it is complete and intact; None (with a notice if broken) else."""
        meta_file = path / "meta.json"
        if not meta_file.exists():
            return None
        problem = _problem(path, meta_file, key_parts)
        if problem is None:
            return Entry(path, json.loads(meta_file.read_text()))
        log.warning("token cache %s is unusable (%s): it will be rebuilt", path, problem)
        return None

    # --- writing ---
    def _make_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataError(_unwritable(self.root, error)) from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise DataError(_unwritable(self.root, PermissionError(errno.EACCES, "permission denied")))

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        lock_path = path.with_name(f".{path.name}.lock")
        with open(lock_path, "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("token cache: another process is building %s; waiting for it", path.name)
                started = time.monotonic()
                fcntl.flock(lock, fcntl.LOCK_EX)
                log.info("token cache: waited %.1f s", time.monotonic() - started)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _build(self, path: Path, label: str, key_parts: dict[str, Any], build: Callable[[Path], dict[str, Any]],
               describe: str) -> Entry:
        temporary = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{path.name}.tmp-"))
        try:
            os.chmod(temporary, 0o777 & ~_umask())  # mkdtemp's 0700 would hide a shared cache from others
            meta = build(temporary)
            meta = {**meta, "format": FORMAT, "label": label, "key": key_parts,
                    "created": time.strftime("%Y-%m-%d %H:%M:%S")}
            for spec in meta.get("arrays", {}).values():
                spec["bytes"] = (temporary / spec["file"]).stat().st_size
                spec["md5_sampled"] = sampled_md5(temporary / spec["file"], spec["bytes"])
            _write_json(temporary / "meta.json", meta)
            if path.exists():  # a broken entry: move it out of the way first
                shutil.rmtree(path)
            os.rename(temporary, path)
            os.utime(path.with_name(f".{path.name}.lock"))  # listing: when it was last built
        except OSError as error:
            shutil.rmtree(temporary, ignore_errors=True)
            if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise DataError(f"token cache {self.root}: writing {describe} failed ({error.strerror}: the disk "
                                "is full, or a quota or file size limit is reached); nothing was kept. Free space, "
                                "or set dataset.cache_dir=DIR elsewhere (or dataset.cache=false)") from None
            if error.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
                raise DataError(_unwritable(self.root, error)) from None
            raise
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        return Entry(path, meta, built=True)

    # --- listing ---
    def entries(self) -> list[Entry]:
        """Every complete entry under the root (unreadable ones are skipped)."""
        found = []
        for meta_file in sorted(self.root.glob("*/meta.json")):
            try:
                found.append(Entry(meta_file.parent, json.loads(meta_file.read_text())))
            except (OSError, ValueError):
                continue
        return found


def _problem(path: Path, meta_file: Path, key_parts: dict[str, Any]) -> str | None:
    """Why an entry cannot be trusted, or None."""
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as error:
        return f"meta.json unreadable: {error}"
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return f"format {meta.get('format') if isinstance(meta, dict) else '?'}, this rnnzoo reads {FORMAT}"
    if meta.get("key") != json.loads(json.dumps(key_parts, default=str)):
        return "made for other sources or options"
    for name, spec in meta.get("arrays", {}).items():
        file = path / spec["file"]
        if not file.is_file():
            return f"{spec['file']} is missing"
        size = file.stat().st_size
        if size != spec["bytes"]:
            return f"{spec['file']} has {size} bytes, {spec['bytes']} were written"
        if sampled_md5(file, size) != spec["md5_sampled"]:
            return f"{spec['file']} was changed after it was written"
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _unwritable(root: Path, error: OSError) -> str:
    return (f"token cache folder {root} is not writable ({error.strerror or error}): set dataset.cache_dir=DIR "
            "(or RNNZOO_CACHE_DIR) to a writable folder, or dataset.cache=false to read the corpus without caching")


def _write_json(path: Path, value: Any) -> None:
    with open(path, "w") as out:
        json.dump(value, out, indent=1, default=str)
        out.flush()
        os.fsync(out.fileno())


# --- arrays -------------------------------------------------------------------------------------
def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned type that holds ids 0 .. vocab_size - 1."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def smallest_int_dtype(low: int, high: int) -> np.dtype:
    for dtype in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


class ArrayFile:
    """An array appended to in chunks on disk, of a fixed dtype."""

    def __init__(self, folder: Path, name: str, dtype: np.dtype) -> None:
        self.file = f"{name}.bin"
        self.dtype = np.dtype(dtype)
        self.count = 0
        self._out = open(folder / self.file, "wb")

    def write(self, values: np.ndarray) -> None:
        self._out.write(np.ascontiguousarray(values, dtype=self.dtype).tobytes())
        self.count += len(values)

    def close(self) -> dict[str, Any]:
        self._out.close()
        return {"file": self.file, "dtype": self.dtype.str, "count": self.count}


# --- examples: tuples of int lists, ints, strings, lists of int lists ----------------------------------
FIELD_KINDS = ("ints", "int", "str", "nested", "none")


def field_kind(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (list, tuple)):
        return "nested" if value and isinstance(value[0], (list, tuple)) else "ints"
    raise TypeError(f"cannot cache an example field of type {type(value).__name__}")


class ExampleWriter:
    """Writes examples (tuples whose fields are int lists, ints, strings, int-list lists or None)
    as flat arrays plus offsets, a buffer of examples at a time, so memory stays bounded.

    Values go out as int64 while writing (their range is not known yet) and are narrowed to
    the smallest type that holds them in `close`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.kinds: list[str] | None = None
        self.count = 0
        self._buffer: list[tuple] = []
        self._files: dict[str, ArrayFile] = {}
        self._ends: dict[str, int] = {}
        self._range: dict[str, list[int]] = {}

    def add_all(self, items: Iterable[tuple]) -> None:
        for item in items:
            self.add(item)

    def add(self, item: tuple) -> None:
        if self.kinds is None:
            self.kinds = [field_kind(value) for value in item]
        elif len(item) != len(self.kinds):
            raise ValueError(f"example {self.count} has {len(item)} fields, the first had {len(self.kinds)}")
        self._buffer.append(item)
        self.count += 1
        if len(self._buffer) >= FLUSH_ITEMS:
            self._flush()

    def _flush(self) -> None:
        for index, kind in enumerate(self.kinds or []):
            values = [item[index] for item in self._buffer]
            name = f"f{index}"
            if kind == "int":
                self._append(f"{name}.data", np.asarray(values, dtype=np.int64))
            elif kind == "ints":
                self._append_ragged(name, values)
            elif kind == "str":
                self._append_ragged(name, [v.encode("utf-8") for v in values])  # bytes iterate as ints
            elif kind == "nested":
                self._append_ragged(f"{name}.inner", [row for value in values for row in value])
                self._append_offsets(f"{name}.outer.offsets", [len(value) for value in values])
        self._buffer = []

    def _append_ragged(self, name: str, rows: list) -> None:
        self._append(f"{name}.data", np.fromiter(itertools.chain.from_iterable(rows), np.int64))
        self._append_offsets(f"{name}.offsets", [len(r) for r in rows])

    def _append_offsets(self, name: str, lengths: list[int]) -> None:
        """Offsets are cumulative ends (the leading 0 is written by the first call)."""
        if name not in self._files:
            self._files[name] = ArrayFile(self.folder, name, np.int64)
            self._files[name].write(np.zeros(1, np.int64))
            self._ends[name] = 0
        ends = self._ends[name] + np.cumsum(np.asarray(lengths, dtype=np.int64))
        if len(ends):
            self._ends[name] = int(ends[-1])
        self._files[name].write(ends)

    def _append(self, name: str, values: np.ndarray) -> None:
        if name not in self._files:
            self._files[name] = ArrayFile(self.folder, f"{name}.wide", np.int64)
            self._range[name] = [0, 0]
        if len(values):
            low, high = self._range[name]
            self._range[name] = [min(low, int(values.min())), max(high, int(values.max()))]
        self._files[name].write(values)

    def close(self) -> dict[str, Any]:
        """Narrow the data arrays, close everything, return the meta data (kinds, count, arrays)."""
        self._flush()
        arrays = {}
        for name, array in self._files.items():
            spec = array.close()
            if name in self._range:  # a data array: narrow int64 -> the smallest type that fits
                spec = narrow(self.folder, array.file, f"{name}.bin", smallest_int_dtype(*self._range[name]))
            arrays[name] = spec
        return {"kinds": self.kinds or [], "count": self.count, "arrays": arrays}


def narrow(folder: Path, wide: str, file: str, dtype: np.dtype, chunk: int = 1 << 22) -> dict[str, Any]:
    """Copy an int64 array file into `file` as `dtype`, in chunks; delete the wide one."""
    source = folder / wide
    count = source.stat().st_size // 8
    with open(folder / file, "wb") as out:
        if count:
            values = np.memmap(source, dtype=np.int64, mode="r")
            for start in range(0, count, chunk):
                out.write(values[start:start + chunk].astype(dtype).tobytes())
            del values
    source.unlink()
    return {"file": file, "dtype": np.dtype(dtype).str, "count": count}


class Examples(Sequence):
    """Examples read back from an entry, memory-mapped: `examples[i]` is the tuple that was
    written, as Python lists and ints (what the tasks' `collate` takes)."""

    def __init__(self, entry: Entry) -> None:
        self.kinds: list[str] = entry.meta["kinds"]
        self.count: int = entry.meta["count"]
        self._arrays = {name: entry.array(name) for name in entry.meta["arrays"]}
        self._check()

    def _check(self) -> None:
        for name, values in self._arrays.items():
            if name.endswith("offsets") or name.endswith("outer"):
                if len(values) == 0 or values[0] != 0 or np.any(np.diff(values) < 0):
                    raise DataError(f"token cache: {name} is not a valid offsets array")

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.count))]
        if not -self.count <= index < self.count:
            raise IndexError(f"example {index} of {self.count}")
        index %= self.count
        return tuple(self._field(f"f{k}", kind, index) for k, kind in enumerate(self.kinds))

    def _field(self, name: str, kind: str, index: int) -> Any:
        if kind == "none":
            return None
        if kind == "int":
            return int(self._arrays[f"{name}.data"][index])
        if kind == "ints":
            return self._row(name, index).tolist()
        if kind == "str":
            return self._row(name, index).tobytes().decode("utf-8")
        outer = self._arrays[f"{name}.outer.offsets"]
        return [self._row(f"{name}.inner", row).tolist() for row in range(int(outer[index]), int(outer[index + 1]))]

    def _row(self, name: str, index: int) -> np.ndarray:
        offsets = self._arrays[f"{name}.offsets"]
        return self._arrays[f"{name}.data"][int(offsets[index]):int(offsets[index + 1])]

    def lengths(self, field: int = 0) -> np.ndarray:
        """(N,) lengths of one list field, from its offsets alone (nothing else is read)."""
        return np.diff(self._arrays[f"f{field}.offsets"])
