"""CPU numerics: which instruction sets a job's numeric libraries may use.

PyTorch's own kernels, MKL (its BLAS), oneDNN (its convolutions) and NumPy each pick kernels for
the CPU they run on, and an AVX-512 kernel sums in another order than an AVX2 one: the floats
differ, and greedy decoding turns a last-bit difference into another answer. `pinned` (the
config's `cpu_numerics`) limits every one of them to what any x86-64 machine with AVX2 runs the
same way, so a CPU study gives the same bits on every such machine:

- PyTorch: its AVX2 kernels (`ATEN_CPU_CAPABILITY`);
- MKL: conditional numerical reproducibility on its COMPATIBLE branch (`MKL_CBWR`): its AVX2
  branch is honoured on Intel processors only (elsewhere MKL silently falls back to its per-machine
  AUTO branch), COMPATIBLE on every x86-64 processor. Its GEMMs are SSE2 code there: about 3x
  slower, which makes the embedded model's training steps take about twice the time;
- oneDNN: at most AVX2 (`ONEDNN_MAX_CPU_ISA`), and PyTorch's convolutions taken off it and off
  NNPACK (onto its own im2col and MKL's reproducible GEMM), since oneDNN promises identical results
  only on the same platform;
- NumPy: no AVX-512 loops (`NPY_DISABLE_CPU_FEATURES`; CIDEr's log and exp differ under them).

The variables are read when each library loads, so `pin` runs in the job process before torch or
numpy is imported. GPU jobs (a `gpu` resource) always run native: their math is the GPU's. The
thread count is part of the result too (reductions split by thread): jobs set it from their rule.
Light on purpose: no torch or numpy import at module level.
"""

from __future__ import annotations

import os
import sys

# NumPy's dispatch targets above AVX2, under the names of NumPy 2.4 (X86_V4, ...) and of earlier
# releases (AVX512F, ...); names a release does not know are ignored.
NUMPY_AVX512 = ("X86_V4 AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL "
                "AVX512_ICL AVX512_SPR AVX512_FP16")
PINNED_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "NPY_DISABLE_CPU_FEATURES": NUMPY_AVX512,
}
# Each mode as data: the variables it sets and whether PyTorch may run convolutions on oneDNN and
# NNPACK (otherwise: its im2col and the BLAS).
MODES = {"pinned": {"env": PINNED_ENV, "conv_libraries": False}, "native": {"env": {}, "conv_libraries": True}}

_applied: dict = {}


def settings(mode: str) -> dict:
    """A job's numerics as its plan slice holds them: the mode and everything it sets, so that
    changing what a mode sets reruns the jobs it shaped."""
    return {"mode": mode, **MODES[mode]}


def pin(numerics: dict, gpus: int = 0, threads: int | None = None) -> None:
    """Set up a job's numerics, first thing in its process (before torch or numpy loads):
    `numerics` is its plan's `cpu_numerics`, `gpus` its `gpu` resource. A job that loads a model
    outside train.launch.run_stage (which sets torch up itself) gives its rule's `threads` too."""
    applied = not gpus
    if applied:
        os.environ.update(numerics["env"])  # over whatever the environment set: the plan decides
    _applied.update(mode=numerics["mode"], applied=applied, conv_libraries=numerics["conv_libraries"])
    if threads is not None:
        set_up_torch(threads)


def set_up_torch(threads: int) -> None:
    """Torch's part, in every process that computes: its thread count, and where the numerics are
    applied, whether convolutions may run on oneDNN and NNPACK (flags, not variables: a process
    `accelerate launch` starts inherits the variables but must set these itself)."""
    import torch

    torch.set_num_threads(threads)
    if _applied.get("applied"):
        torch.backends.mkldnn.enabled = _applied["conv_libraries"]
        torch.backends.nnpack.set_flags(_applied["conv_libraries"])


def handed_on() -> dict:
    """This job's numerics as a process it launches takes them up (`resume`)."""
    return dict(_applied)


def resume(state: dict, threads: int) -> None:
    """In a process a job launched: the job's numerics (`handed_on`), recorded and set up alike."""
    _applied.update(state)
    set_up_torch(threads)


def record() -> dict:
    """What the job's numerics really were: the mode, whether it was applied, the variables in
    force and the kernels each loaded library chose."""
    info = {**_applied, "env": {k: os.environ.get(k) for k in PINNED_ENV}}
    torch = sys.modules.get("torch")  # only where the job loaded it: light jobs stay light
    if torch is not None:
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["torch_conv_libraries"] = {"mkldnn": torch.backends.mkldnn.enabled,
                                        "nnpack": torch._C._get_nnpack_enabled()}
    if "numpy" in sys.modules:
        from numpy._core import _multiarray_umath as umath

        info["numpy_dispatch"] = [f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)]
    return info
