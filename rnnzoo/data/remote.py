"""Fetching a named dataset's official files into the cache, checked against their md5 sums.

The md5 is that of the file as stored (after gunzipping a `.gz` download), the sums that
torchtext and the datasets' own pages publish, so a file downloaded here and a copy the
user placed by hand are checked against the same number. Writes are atomic (a temporary file
in the same folder, renamed once complete and checked), so an interrupted download never
leaves a truncated file that a later run would take for the real one.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.request import urlopen

from .readers import DataError

CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """A file of a named dataset: its name on disk, its official URL and its md5 on disk."""

    name: str
    url: str
    md5: str
    gzipped: bool = False  # the URL serves the file gzipped; it is stored gunzipped


def cache_dir() -> Path:
    """Where downloads go: $RNNZOO_CACHE_DIR, else $XDG_CACHE_HOME/rnnzoo, else ~/.cache/rnnzoo."""
    if os.environ.get("RNNZOO_CACHE_DIR"):
        return Path(os.environ["RNNZOO_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "rnnzoo"


def md5sum(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(remote: RemoteFile, folder: str | Path, hint: str = "", timeout: float = 60.0) -> Path:
    """`folder/remote.name`, downloaded from `remote.url` and checked against `remote.md5`.

    Raises DataError when the URL cannot be reached (the message ends with `hint`: where the
    user can put the file instead) or when the checksum differs (the download is deleted).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=folder, prefix=f".{remote.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            actual = _fetch(remote, out, timeout)
        if actual != remote.md5:
            raise DataError(f"{remote.url}: checksum mismatch: expected md5 {remote.md5}, got {actual}; "
                            "the download was deleted (a changed or corrupted file)")
        target = folder / remote.name
        os.replace(partial, target)
        return target
    except (OSError, http.client.HTTPException, EOFError) as error:  # URLError is an OSError
        reason = getattr(error, "reason", None) or error
        raise DataError(f"could not download {remote.url} ({reason}){'. ' + hint if hint else ''}") from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _fetch(remote: RemoteFile, out: BinaryIO, timeout: float) -> str:
    """Copy the URL's content (gunzipped if need be) into `out`; return its md5."""
    digest = hashlib.md5()
    with urlopen(remote.url, timeout=timeout) as response:
        stream = gzip.GzipFile(fileobj=response) if remote.gzipped else response
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()
