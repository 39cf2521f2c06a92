"""How a tuning or prediction job given N GPUs starts N processes: `accelerate launch` of the
stage's module, every flag explicit so no user-level accelerate config file changes what runs.
Light: no torch import."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Callable

from .. import numerics
from ..files import write_json

PORTS = range(20000, 40000)


def main_process_port(job_key: str) -> int:
    """A rendezvous port derived from the job (its output path): jobs sharing a node do not collide."""
    return PORTS.start + zlib.crc32(job_key.encode()) % len(PORTS)


def accelerate_command(module: str, args: list[str], num_processes: int, port: int,
                       mixed_precision: str = "no") -> list[str]:
    """`python -m <module> <args>` as `num_processes` data-parallel processes on this machine."""
    if num_processes < 1:
        raise ValueError(f"num_processes must be at least 1, got {num_processes}")
    command = [sys.executable, "-m", "accelerate.commands.launch",
               "--num_processes", str(num_processes), "--num_machines", "1",
               "--mixed_precision", mixed_precision, "--dynamo_backend", "no",
               "--main_process_port", str(port)]
    if num_processes > 1:
        command.append("--multi_gpu")  # torchrun-style DDP; without GPUs accelerate falls back to gloo on CPU
    return command + ["--module", module, *args]


def run_stage(module: str, main: Callable[[dict], None], args: dict, processes: int, threads: int,
              args_path: Path, relaunch_note: Path | None = None) -> None:
    """`main(args)` here (0 or 1 processes), or in `processes` processes: `python -m module
    ARGS.json` under `accelerate launch`, ARGS.json (at `args_path`) holding the arguments, the
    thread count and the job's numerics. Every process computes with `threads` threads. When the
    processes fail after writing `relaunch_note` (they ran out of memory and halved their
    micro-batch: tunebench.train.memory), they are started again."""
    if processes <= 1:
        numerics.set_up_torch(threads)
        main(args)
        return
    write_json({**args, "threads": threads, "numerics": numerics.handed_on()}, args_path)
    port = main_process_port(str(Path(args_path).resolve()))
    command = accelerate_command(module, [str(args_path)], processes, port)
    while True:
        started = time.time()
        returncode = subprocess.run(command).returncode
        if returncode == 0:
            return
        note = Path(relaunch_note) if relaunch_note else None
        if note is None or not note.exists() or note.stat().st_mtime < started:
            raise subprocess.CalledProcessError(returncode, command)


def stage_main(main: Callable[[dict], None]) -> None:
    """A launched stage module's entry: its arguments from the ARGS.json named on the command line."""
    args = json.loads(Path(sys.argv[1]).read_text())
    numerics.resume(args.pop("numerics"), args.pop("threads"))
    main(args)
