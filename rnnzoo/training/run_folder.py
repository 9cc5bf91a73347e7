"""A run folder belongs to one run: never overwritten by another, never shared by two at once.

    claim(folder, resume, overwrite)   held for the run's life (rnnzoo.api.train): refuses a
                                       folder that holds another run, locks it, checks it is writable
    check_free(folder, resume, overwrite)   the refusal alone (the CLI's check before Hydra writes)
    write_metrics(path, metrics)       metrics.json: strict JSON (NaN and inf become null)
    resume_command(checkpoint, folder) the command that continues a run in its own folder

A folder "holds a run" when it has `checkpoints/` or `metrics.json`; Hydra's `.hydra/` and
`train.log` do not count (Hydra writes them before any rnnzoo code runs). Such a folder may
be written only by `resume=` of one of its own checkpoints, or with `overwrite=true`, which
first removes what the old run wrote, so the two runs' files never mix.

The lock is `<run>/.lock` holding the PID, locked with `fcntl.flock`: the kernel releases it
when the process ends however it ends, so a lock left by a killed process is free (its file
remains with a dead PID, and is taken over with a notice), and a second run into a folder in
use fails at once. Under torchrun only rank 0 has a run folder, so only rank 0 claims it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import shlex
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..errors import RnnzooError

log = logging.getLogger("rnnzoo")

RUN_MARKERS = ("checkpoints", "metrics.json")  # a folder with either holds a run
RUN_OUTPUTS = ("checkpoints", "metrics.json", "tb", "grad_probe.jsonl")  # what overwrite=true removes
LOCK_NAME = ".lock"


class RunFolderError(RnnzooError):
    """A run folder that holds another run, is in use, or cannot be written."""


def holds_run(folder: Path) -> bool:
    return any((Path(folder) / marker).exists() for marker in RUN_MARKERS)


def own_run_folder(checkpoint: str | Path) -> Path | None:
    """The run folder a checkpoint was saved in (`<run>/checkpoints/NAME.pt`), or None."""
    path = Path(checkpoint).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else None


def check_free(folder: str | Path, resume: str | Path | None = None, overwrite: bool = False) -> None:
    """Refuse a folder holding a run, unless this run continues it (`resume=` one of its own
    checkpoints) or replaces it (`overwrite=true`)."""
    folder = Path(folder)
    if overwrite or not holds_run(folder):
        return
    if resume is not None and own_run_folder(resume) == folder.resolve():
        return
    found = " and ".join(m for m in RUN_MARKERS if (folder / m).exists())
    raise RunFolderError(
        f"{folder} already holds a run ({found}); choose a new folder (hydra.run.dir=NEW), continue it "
        f"({resume_command(folder / 'checkpoints' / 'last.pt', folder)}), or replace it (overwrite=true)")


@contextmanager
def claim(folder: str | Path, resume: str | Path | None = None, overwrite: bool = False) -> Iterator[Path]:
    """Hold `folder` for the body's life: created, locked, free of another run, writable."""
    folder = Path(folder)
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    lock = RunLock(folder)
    lock.acquire()
    try:
        check_free(folder, resume, overwrite)
        if overwrite and holds_run(folder):
            clear_outputs(folder)
        check_writable(folder)
        yield folder
    finally:
        lock.release()


def clear_outputs(folder: Path) -> None:
    """overwrite=true: remove what the previous run wrote, so no file of it survives into this one."""
    removed = [name for name in RUN_OUTPUTS if (folder / name).exists()]
    with writing(folder):
        for name in removed:
            path = folder / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    log.warning("overwrite=true: removed the previous run's %s from %s", ", ".join(removed), folder)


def check_writable(folder: Path) -> None:
    """The run folder created where missing, and it and its checkpoints/ writable: fail now,
    naming the folder, rather than at the first checkpoint after minutes of training."""
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    for where in (folder, folder / "checkpoints"):
        if where.is_dir():
            probe = where / f".write-probe-{os.getpid()}"
            with writing(where):
                probe.touch()
                probe.unlink()


@contextmanager
def writing(folder: Path) -> Iterator[None]:
    """An OSError while writing into `folder` (read-only, not a folder, disk full) as one line."""
    try:
        yield
    except OSError as error:
        raise RunFolderError(f"cannot write the run folder {folder}: {error.strerror or error} "
                             f"({error.filename or folder}); choose another with hydra.run.dir=") from None


class RunLock:
    """`<folder>/.lock`: flock'd while held, holding the PID of its holder (for the messages)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.path = folder, folder / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> None:
        while self.fd is None:
            with writing(self.folder):
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                holder = _read_pid(fd)
                os.close(fd)
                if error.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise
                raise RunFolderError(f"{self.folder} is in use by another run (PID {holder or '?'}, lock "
                                     f"{self.path}); wait for it to end, or choose another folder with "
                                     "hydra.run.dir=") from None
            if not _same_file(fd, self.path):  # its holder removed it between our open and flock
                os.close(fd)
                continue
            self._take(fd)

    def _take(self, fd: int) -> None:
        previous = _read_pid(fd)
        if previous and previous != os.getpid():
            state = "no longer running" if not pid_alive(previous) else "not holding it"
            log.warning("taking over the stale lock %s of PID %d (%s)", self.path, previous, state)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink()  # while still locked: a waiting process then finds no stale file
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


# --- what a run writes ------------------------------------------------------------------------
def write_metrics(path: str | Path, metrics: dict[str, Any]) -> None:
    """metrics.json as strict JSON: a NaN or infinite value (a diverged run's loss) is written as
    null, since bare `NaN` is not JSON and breaks every reader but Python's."""
    finite = {key: None if isinstance(value, float) and not math.isfinite(value) else value
              for key, value in metrics.items()}
    Path(path).write_text(json.dumps(finite, indent=2, allow_nan=False) + "\n")


def resume_command(checkpoint: str | Path, folder: str | Path) -> str:
    """`rnnzoo train resume=CHECKPOINT hydra.run.dir=FOLDER`, quoted for the shell and for Hydra:
    the whole run config comes from the checkpoint, and the run goes on in its own folder."""
    return " ".join(["rnnzoo", "train", _argument("resume", checkpoint), _argument("hydra.run.dir", folder)])


def _argument(key: str, path: str | Path) -> str:
    return shlex.quote(f"{key}={hydra_value(path)}")


def hydra_value(path: str | Path) -> str:
    """A path as the value of a Hydra override: quoted where Hydra's grammar needs it."""
    value = str(path)
    if any(c in value for c in " ,=[]{}()'\"\\:*?$`!#&;|<>"):
        value = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return value


def resume_in_its_folder(overrides: list[str]) -> list[str]:
    """`rnnzoo train resume=RUN/checkpoints/last.pt` without `hydra.run.dir=` goes on in RUN, the
    folder the checkpoint was saved in (Hydra would open a new folder named from the default
    config). A checkpoint outside a run's `checkpoints/` keeps Hydra's folder."""
    given = [o.partition("=")[2] for o in overrides if o.startswith("resume=")]
    chosen = any(o.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for o in overrides)
    if len(given) != 1 or chosen or {"-m", "--multirun"} & set(overrides):
        return overrides
    value = given[0]
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":  # Hydra's quotes
        value = value[1:-1].replace("\\'", "'").replace("\\\\", "\\")
    folder = own_run_folder(value)
    if folder is None or not folder.is_dir():
        return overrides
    return [*overrides, f"hydra.run.dir={hydra_value(folder)}"]
