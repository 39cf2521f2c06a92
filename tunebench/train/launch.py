"""How a tuning job given N GPUs starts N processes: `accelerate launch`, every flag explicit so
no user-level accelerate config file changes what runs. Light: no torch import."""

from __future__ import annotations

import sys
import zlib

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
