"""Per-stage code fingerprints. Snakemake reruns a `script:` job when the script changes, not when a
package module it imports does; each rule puts its stage's fingerprint in its params, so editing a
module reruns exactly the stages that use it (and, through their outputs, everything after them).
Light: reads source files, imports nothing."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent

# The package modules whose code shapes each stage's outputs (a registry that `config` only checks
# names against does not count). The one place to edit when a stage starts using another module.
_LIGHT = ("config", "files", "progress", "provenance")
_MODEL = ("modeling", "training", "runs", "models", "datasets", "adapters", "world", "launch") + _LIGHT
STAGE_MODULES: dict[str, tuple[str, ...]] = {
    "prepare": ("world", "datasets", "adapters", "study") + _LIGHT,
    "pretrain": _MODEL,
    "tune": _MODEL + ("methods", "bottleneck", "tune_job"),
    # Prediction re-creates what a method added (bottleneck adapters) and interpolates (WiSE-FT).
    "predict": _MODEL + ("prediction", "methods", "bottleneck"),
    "score": ("metrics", "datasets", "world", "study") + _LIGHT,
    "aggregate": ("aggregation", "study") + _LIGHT,
    "report": ("report", "aggregation", "study") + _LIGHT,
}
# Modules that shape no output: file names (Snakemake sees those itself), the status command, and
# the tiny models of tests and benchmarks.
UNTRACKED = ("paths", "status", "cli", "tiny")


@cache
def code_fingerprint(stage: str) -> str:
    """SHA-256 over the source of the stage's modules (name and content, in a fixed order)."""
    digest = hashlib.sha256()
    for module in sorted(STAGE_MODULES[stage]):
        digest.update(module.encode() + b"\0" + (PACKAGE / f"{module}.py").read_bytes() + b"\0")
    return digest.hexdigest()[:16]
