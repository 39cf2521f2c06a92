"""Where a number came from: software, hardware, workflow commit, and hashes of the data and weights.

Light on purpose (no torch import): the cell and table jobs call it too. A job that has torch loaded
(pretraining, tuning) also gets its GPUs and torch threads recorded.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from . import numerics
from .data.digest import file_sha256 as sha256

LIBRARIES = ("torch", "transformers", "peft", "accelerate", "tokenizers", "numpy", "polars", "pycocoevalcap", "snakemake")
WORKFLOW_DIR = Path(__file__).resolve().parent.parent  # the checkout holding Snakefile and this package


def _version(lib: str) -> str | None:
    try:
        return version(lib)
    except PackageNotFoundError:
        return None


def git_state(directory: Path = WORKFLOW_DIR) -> dict:
    """The commit of the workflow checkout and whether it has uncommitted changes (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


# The instruction sets that decide which kernels the numeric libraries pick (tunebench.numerics).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq")


def _cpuinfo(field: str) -> str | None:
    """The first value of a /proc/cpuinfo field (None where there is no /proc/cpuinfo)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def hardware() -> dict:
    flags = set((_cpuinfo("flags") or "").split())
    info = {"cpu": cpu_model(), "cpu_flags": [f for f in CPU_FLAGS if f in flags], "cpus": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0))}
    torch = sys.modules.get("torch")  # only asked where the job already loaded it: light jobs stay light
    if torch is not None:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(count)]
        info["torch_threads"] = torch.get_num_threads()
    return info


def environment() -> dict:
    """What ran a job: Python, libraries, hardware, its CPU numerics and the workflow's git commit."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": {lib: _version(lib) for lib in LIBRARIES},
        "hardware": hardware(),
        "numerics": numerics.record(),
        "git": git_state(),
    }


def weights_hashes(model_dir: Path | str) -> dict[str, str]:
    """sha256 of every weights file of a saved model, by file name; a hub id is recorded as is
    (its revision is the hub's business, and hashing it would mean downloading it)."""
    if not Path(model_dir).is_dir():
        return {"hub": str(model_dir)}
    files = sorted(Path(model_dir).glob("*.safetensors")) + sorted(Path(model_dir).glob("*.bin"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no *.safetensors or *.bin weights to hash")
    return {f.name: sha256(f) for f in files}
