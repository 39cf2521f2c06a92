"""Out of memory is not a failed run: a batch size that halves when a step runs out of device
memory and stays halved for the rest of the run (accelerate's `find_executable_batch_size` tells
an out-of-memory error apart and frees the cache the same way, but restarts its whole function)."""

from __future__ import annotations

import resource

import torch
from accelerate.utils.memory import clear_device_cache, should_reduce_batch_size


class OutOfMemory(RuntimeError):
    pass


class Halving:
    """`size` for `what` (a micro-batch, a prediction batch); `halvings` records each halving."""

    def __init__(self, size: int, what: str):
        self.size, self.what, self.halvings = size, what, []

    def run(self, step, where: str):
        """`step(size)`, retried at half the size while it runs out of memory; at size 1 it fails."""
        while True:
            try:
                return step(self.size)
            except Exception as err:  # noqa: BLE001 - anything else is re-raised at once
                if not should_reduce_batch_size(err):
                    raise
                if self.size == 1:
                    raise OutOfMemory(f"out of memory at {self.what} 1 ({where}): the model does not fit this "
                                      f"device even one sample at a time; give it more memory, shard it "
                                      f"(distributed: fsdp), or turn on gradient_checkpointing") from err
            # Retried outside the except block: the traceback holds the failed step's activations.
            clear_device_cache(garbage_collection=True)
            self.halvings.append({"at": where, "from": self.size, "to": self.size // 2})
            self.size //= 2


def peak_rss_mb() -> float:
    """Peak host memory (RSS) of this process."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


def peak_memory_mb() -> float:
    """The peak of the memory that bounds a run: device memory allocated on CUDA, else host RSS."""
    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak_rss_mb()
