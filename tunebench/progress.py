"""One summary line at the end of every job (what it did, its result, its time), on stderr so it lands in
Snakemake's console output and in SLURM job logs."""

from __future__ import annotations

import sys
import time

import psutil


def done(what: str, result: str) -> str:
    # From the job process's start: interpreter start-up and imports count too.
    line = f"[tunebench] done {what}: {result} ({time.time() - psutil.Process().create_time():.1f} s)"
    # A fresh line first: concurrent jobs share stderr, and another job's progress bar may have
    # left its line open (bars end with a carriage return, not a newline).
    print("\n" + line, file=sys.stderr, flush=True)
    return line
