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
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .readers import DataError, unreadable
from .remote import cache_dir

log = logging.getLogger("rnnzoo")

FORMAT = 1
SAMPLE_BLOCK = 1 << 16  # bytes per sampled block when hashing a large file
SAMPLE_BLOCKS = 16
WHOLE_FILE_LIMIT = 4 << 20  # files up to this size are hashed whole


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
        raise unreadable(path, error) from None
    if resolved.is_dir():  # as the readers say it, before sampled_md5 opens it
        raise unreadable(path, IsADirectoryError())
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
