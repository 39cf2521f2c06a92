"""One tuning run as a process of its own: `python -m tunebench.tune_job ARGS.json`, where ARGS.json
holds `runs.tune`'s keyword arguments. The workflow runs it under `accelerate launch` when a job
has more than one GPU; in-process otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .files import write_json
from .launch import accelerate_command, main_process_port


def run(args: dict, processes: int, threads: int) -> None:
    """Tune with `processes` data-parallel processes (the job's GPUs; 0 or 1: this process)."""
    if processes <= 1:
        main_with(args, threads)
        return
    args_path = Path(args["run_path"]).parent / "tune_args.json"
    write_json({**args, "threads": threads}, args_path)
    port = main_process_port(str(Path(args["run_path"]).resolve()))
    subprocess.run(accelerate_command("tunebench.tune_job", [str(args_path)], processes, port), check=True)


def main_with(args: dict, threads: int) -> None:
    import torch

    from . import runs

    torch.set_num_threads(threads)
    runs.tune(**args)


if __name__ == "__main__":
    loaded = json.loads(Path(sys.argv[1]).read_text())
    threads = loaded.pop("threads", 1)
    main_with(loaded, threads)
