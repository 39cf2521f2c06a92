"""Out of memory is not a failed run: a batch size that halves when a step runs out of device
memory and stays halved for the rest of the run (accelerate's `find_executable_batch_size` tells
an out-of-memory error apart and frees the cache the same way, but restarts its whole function).
A multi-process job halves by restarting its processes (`run_or_relaunch`)."""

from __future__ import annotations

import resource
from pathlib import Path

import torch
from accelerate.utils.memory import clear_device_cache, should_reduce_batch_size

from ..files import read_json, write_json


class OutOfMemory(RuntimeError):
    pass


class Relaunch(OutOfMemory):
    """Raised by the processes of a multi-process job that ran out of memory: the job starts them again."""


class Halving:
    """`size` for `what` (a micro-batch, a prediction batch); `halvings` records each halving."""

    def __init__(self, size: int, what: str):
        self.size, self.what, self.halvings = size, what, []

    def _failed(self, err: Exception, where: str) -> bool:
        """Whether `err` is an out-of-memory error worth a halving (at size 1 it fails the job)."""
        if not should_reduce_batch_size(err):
            return False
        if self.size == 1:
            raise OutOfMemory(f"out of memory at {self.what} 1 ({where}): the model does not fit this "
                              f"device even one sample at a time; give it more memory, shard it "
                              f"(distributed: fsdp), or turn on gradient_checkpointing") from err
        return True

    def _halve(self, where: str) -> None:
        self.halvings.append({"at": where, "from": self.size, "to": self.size // 2})
        self.size //= 2

    def run(self, step, where: str):
        """`step(size)`, retried at half the size while it runs out of memory."""
        while True:
            try:
                return step(self.size)
            except Exception as err:  # noqa: BLE001 - anything else is re-raised at once
                if not self._failed(err, where):
                    raise
            # Retried outside the except block: the traceback holds the failed step's activations.
            clear_device_cache(garbage_collection=True)
            self._halve(where)

    def run_or_relaunch(self, step, where: str, note: Path):
        """`step(size)` in one of several processes, which cannot agree on a halving mid-step (the
        others wait in a collective): on out of memory the halved size goes to `note` and the
        processes end; the job starts them again at that size (train.launch.run_stage), resuming
        from the last checkpoint."""
        try:
            return step(self.size)
        except Exception as err:  # noqa: BLE001
            if not self._failed(err, where):
                raise
            failed = self.size
        self._halve(where)
        write_json({"size": self.size, "halvings": self.halvings}, note)
        raise Relaunch(f"out of memory at {self.what} {failed} ({where}): restarting at {self.size}")

    def resume(self, note: Path) -> None:
        """The size and halvings a relaunched job's note holds, if any."""
        if Path(note).exists():
            noted = read_json(note)
            self.size, self.halvings = min(self.size, noted["size"]), noted["halvings"]


def peak_rss_mb() -> float:
    """Peak host memory (RSS) of this process."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


def peak_memory_mb() -> float:
    """The peak of the memory that bounds a run: device memory allocated on CUDA, else host RSS."""
    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak_rss_mb()
