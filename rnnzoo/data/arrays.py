"""The token cache's arrays: flat files of ids, written in chunks and read back memory-mapped.

    ArrayFile       an array appended to on disk a chunk at a time, of one dtype
    ExampleWriter   examples (tuples of int lists, ints, strings, lists of int lists, None) as
                    one flat array per field plus offsets, a buffer at a time; values are
                    narrowed to the smallest integer type that holds them when it closes
    Examples        those examples read back: `examples[i]` is the tuple written, `lengths()`
                    comes from the offsets alone

Offsets are cumulative ends with a leading 0 (fairseq's indexed datasets keep the same), so
example i is data[offsets[i]:offsets[i + 1]] and nothing else is read to find it.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from .readers import DataError

if TYPE_CHECKING:
    from .cache import Entry

FLUSH_ITEMS = 1 << 16  # examples buffered before a field's arrays are written out


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

    def __init__(self, entry: "Entry") -> None:
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
