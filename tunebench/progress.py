"""One summary line at the end of every job (what it did, its result, its time), on stderr so it lands in
Snakemake's console output and in SLURM job logs."""

from __future__ import annotations

import sys
import time

_STARTED = time.monotonic()  # first import of the package, i.e. the start of the job's script


def done(what: str, result: str) -> str:
    line = f"[tunebench] done {what}: {result} ({time.monotonic() - _STARTED:.1f} s)"
    print(line, file=sys.stderr, flush=True)
    return line
