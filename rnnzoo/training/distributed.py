"""Several processes, one run: PyTorch's DistributedDataParallel (DDP), started by torchrun.

    torchrun --nproc_per_node=N -m rnnzoo train ...   # or, the same processes:
    rnnzoo train trainer.devices=N ...                # relaunches itself through torch.distributed.run

On CUDA one process per GPU (backend nccl, the process of local rank r on cuda:r); on the CPU
N processes (backend gloo). The scheme, and why:

* Every rank iterates the same batches (tasks make them deterministically from the seed, the
  epoch and the index) and trains on its own contiguous share of each batch's rows
  (`shard_rows`). The global batch stays the task's batch whatever N is, so N processes
  compute the gradient one process computes on the same batches: the same run, faster, and
  testably so. Whole batches i ≡ rank (mod N) instead would multiply the batch by N and
  break the tasks that carry a model state from batch to batch (text streams), which need
  the same rows in the same process batch after batch.
* DDP averages gradients over ranks. A rank's StepOutput.loss is a mean over its own `count`
  targets, and counts differ between shares (padding, masks), so the trainer backpropagates
  loss · count · N / global_count, global_count all-reduced: the average over ranks is
  exactly the mean over the global batch, as one process computes it.
* Statistics are sums (rnnzoo.tasks.base); they are all-reduced before `metrics`, so every
  rank logs the numbers one process would.
* Rank 0 evaluates, logs, writes TensorBoard, checkpoints and metrics.json; the others wait
  for the number it monitors (`from_main`) and take the same decisions from it (best
  checkpoint, plateau schedule, early stop). Every rank reads the checkpoint to resume.
* DDP wraps the task's whole step (`TaskStep`), not the network: DDP reduces gradients only
  for work done inside its wrapper's forward, and tasks do more than call `network(...)`
  (translation's scheduled sampling calls `encode` and `decode_step`, tagging reads
  `network.crf`).
* Ranks draw different dropout masks: those other than 0 reseed from (seed, rank, step), and
  checkpoints written at evaluations keep every rank's RNG and carried state, so resuming
  with the same number of processes continues exactly (see Trainer.resume_from).

Only rank 0 has a run folder: the CLI runs the other ranks' Hydra in the working directory
without `.hydra/` or a log file (`hydra_overrides_for_rank`), and the trainer writes nothing
from them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import RnnzooError
from ..nn.recurrent import State

T = TypeVar("T")

#: how long a rank waits at a collective: rank 0 evaluates (a beam search over a test set...)
#: while the others wait, longer than the backends' defaults (NCCL: 10 minutes)
WAIT = timedelta(hours=1)


@dataclass
class Distributed:
    """This process's place in the run; a world of one (every method a no-op) without torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this object started the process group, so it ends it

    @classmethod
    def from_env(cls, devices: int) -> "Distributed":
        """Read torchrun's variables; `devices` (trainer.devices) must agree with them."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        if devices not in (1, local_world):
            where = (f"torchrun started {local_world} processes on this machine" if world > 1 else
                     "this process was not started by `rnnzoo train trainer.devices=N` or torchrun")
            raise RnnzooError(f"trainer.devices={devices} but {where}; choices here: 1"
                              + (f" or {local_world}" if local_world > 1 else ""))
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # --- setting up -------------------------------------------------------------------
    def device_for(self, device: torch.device) -> torch.device:
        """The device of this rank: its own GPU on CUDA."""
        if not self.enabled:
            return device
        check_devices(device, self.world_size)
        return torch.device("cuda", self.local_rank) if device.type == "cuda" else device

    def start(self, device: torch.device) -> None:
        """Join the process group (torchrun's rendezvous, read from the environment)."""
        self.device = device
        if not self.enabled or dist.is_initialized():
            return
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=WAIT)
        self.owns_group = True
        if not self.is_main:  # only rank 0 logs
            logging.getLogger("rnnzoo").setLevel(logging.ERROR)

    def close(self) -> None:
        if self.owns_group:
            dist.destroy_process_group()
            self.owns_group = False

    def wrap(self, step: nn.Module) -> DistributedDataParallel:
        """DDP around a TaskStep. find_unused_parameters: a task may leave parameters out of a
        step (a head only some batches use), which DDP otherwise fails on at the next step;
        the price is a walk of the autograd graph per step, and DDP's one warning per process
        when every parameter was used."""
        return DistributedDataParallel(step, find_unused_parameters=True)

    # --- during training --------------------------------------------------------------
    def shard(self, batch: Any) -> Any:
        return shard_rows(batch, self.rank, self.world_size) if self.enabled else batch

    def sum(self, tensor: Tensor) -> Tensor:
        """`tensor` summed over ranks, in place."""
        if self.enabled:
            dist.all_reduce(tensor)
        return tensor

    def sum_values(self, values: list[Any]) -> list[float]:
        """Numbers (tensors or floats) summed over ranks, in one collective."""
        if not self.enabled:
            return [float(v) for v in values]
        packed = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=self.device) for v in values])
        return self.sum(packed).tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank when it is True on one (a time budget each rank reads off its own clock)."""
        if not self.enabled:
            return flag
        return bool(self.sum(torch.tensor([float(flag)], device=self.device)).item() > 0)

    def from_main(self, compute: Callable[[], T]) -> T:
        """`compute()` run on rank 0, its result handed to every rank (the others wait meanwhile)."""
        if not self.enabled:
            return compute()
        box = [compute() if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's `value`, in rank order, on every rank (None in a world of one)."""
        if not self.enabled:
            return None
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values


def check_devices(device: torch.device, processes: int) -> None:
    """Several processes need the CPU or one CUDA device each."""
    if device.type == "cuda":
        if device.index is not None:
            raise RnnzooError(f"trainer.device={device} names one GPU, but each of the {processes} processes takes "
                              "its own; use trainer.device=cuda")
        if processes > torch.cuda.device_count():
            raise RnnzooError(f"trainer.devices={processes} but {torch.cuda.device_count()} CUDA device(s) are "
                              f"visible; choices: 1 to {torch.cuda.device_count()}")
    elif device.type != "cpu":
        raise RnnzooError(f"several processes run on cpu (gloo) or cuda (nccl), not {device.type}; "
                          "use trainer.device=cpu or cuda")


class TaskStep(nn.Module):
    """`task.step(network, batch, state)` as a module's forward, for DDP to wrap (see the module
    docstring). Returns (loss, count, stats, state): plain containers DDP can search for tensors."""

    def __init__(self, task: Any, network: nn.Module) -> None:
        super().__init__()
        self.task = task
        self.network = network

    def forward(self, batch: Any, state: State | None) -> tuple[Tensor, Tensor, dict[str, Tensor], State | None]:
        out = self.task.step(self.network, batch, state)
        return out.loss, out.count, out.stats, out.state


def shard_rows(batch: Any, rank: int, world_size: int) -> Any:
    """Rank `rank`'s contiguous share of a batch: rows rank·B/N up to (rank+1)·B/N.

    The rule of the batch contract (rnnzoo.tasks.batch): every batch type here (SequenceBatch,
    TextBatch, TranslationBatch) is a dataclass whose tensors and lists are batch first, so the
    share is each of them sliced on dim 0. A batch type of another shape says how to share it
    with a method `shard(rank, world_size)`.
    """
    own = getattr(batch, "shard", None)
    if own is not None:
        return own(rank, world_size)
    if not dataclasses.is_dataclass(batch):
        raise TypeError(f"cannot share a {type(batch).__name__} between processes: give it a method "
                        "shard(rank, world_size) or make it a dataclass of batch-first fields")
    rowed = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)
             if isinstance(getattr(batch, f.name), (Tensor, list))}
    rows = next(len(value) for value in rowed.values() if isinstance(value, Tensor))
    if rows < world_size:
        raise RnnzooError(f"a training batch of {rows} rows cannot be shared by {world_size} processes; "
                          f"make task.batch_size at least {world_size}")
    start, stop = rank * rows // world_size, (rank + 1) * rows // world_size
    return dataclasses.replace(batch, **{name: value[start:stop] for name, value in rowed.items()})


# --- launching: used by the CLI -----------------------------------------------------------
def torchrun_worker() -> bool:
    """True in a process that torchrun started (it sets these for its workers)."""
    return "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def process_rank() -> int:
    """This process's global rank, read before any process group exists (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def hydra_overrides_for_rank(overrides: list[str]) -> list[str]:
    """Ranks other than 0 get no run folder: Hydra runs them in the working directory, writing
    neither `.hydra/` nor a log file (rank 0 writes both)."""
    if process_rank() == 0:
        return overrides
    kept = [o for o in overrides if not o.startswith("hydra.run.dir=")]
    return [*kept, "hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=none",
            "hydra/hydra_logging=none"]


def launch_arguments(devices: int, overrides: list[str]) -> list[str]:
    """torchrun's arguments for `rnnzoo train OVERRIDES` in `devices` processes (standalone: a
    free local port is chosen, so runs side by side do not collide)."""
    return ["--standalone", f"--nproc_per_node={devices}", "-m", "rnnzoo", "train", *overrides]


def launch(devices: int, device: torch.device, overrides: list[str]) -> int:
    """Run `torchrun --standalone --nproc_per_node=N -m rnnzoo train OVERRIDES`; the exit status
    of the first worker that failed, or 0.

    torch.distributed.run runs in this process (its workers are new ones), so a worker's
    user error, which the worker prints, ends the command with the worker's status 2 rather
    than with torchrun's traceback; Ctrl-C, which torchrun passes on to the workers (rank 0
    then writes last.pt), ends it as a KeyboardInterrupt.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    check_devices(device, devices)
    try:
        run(parse_args(launch_arguments(devices, overrides)))
    except ChildFailedError as failed:
        status = failed.get_first_failure()[1].exitcode
        return status if status > 0 else 128 - status  # killed by signal S: the shell's 128 + S
    except SignalException:
        raise KeyboardInterrupt from None
    return 0
