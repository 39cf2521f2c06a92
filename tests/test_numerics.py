"""Pinned CPU numerics (tunebench.numerics): a short pretraining and its predictions give the same bits
whichever kernels this machine's libraries would pick, and the same bits as on the machine that wrote
tests/numerics_digest.json (CI runs this on its own machine: drift there fails here)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from numerics_job import NUMERICS_DIGEST, computed, run

from tunebench import provenance
from tunebench.files import read_json

TESTS = Path(__file__).resolve().parent

# PyTorch's kernel builds (ATEN_CPU_CAPABILITY) and the CPU flags each needs.
CAPABILITIES = {"default": (), "avx2": ("avx2", "fma"), "avx512": ("avx512f", "avx512bw", "avx512vl", "avx512dq")}


def supported() -> list[str]:
    flags = set(provenance.hardware()["cpu_flags"])
    return [cap for cap, needs in CAPABILITIES.items() if flags >= set(needs)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The job natively and pinned, under every PyTorch dispatch this CPU supports. The pinned runs
    start from an environment that asks for that dispatch and for MKL's and oneDNN's own choice, as
    another machine's would: the job's settings must win."""
    root = tmp_path_factory.mktemp("numerics")
    native = {cap: run(root / f"native-{cap}", "native", {"ATEN_CPU_CAPABILITY": cap}) for cap in supported()}
    elsewhere = lambda cap: {"ATEN_CPU_CAPABILITY": cap, "MKL_CBWR": "AUTO", "ONEDNN_MAX_CPU_ISA": "ALL",  # noqa: E731
                             "NPY_DISABLE_CPU_FEATURES": ""}
    pinned = {cap: run(root / f"pinned-{cap}", "pinned", elsewhere(cap)) for cap in supported()}
    return native, pinned


def test_native_dispatch_changes_the_bits_and_pinned_numerics_do_not(runs):
    native, pinned = runs
    assert len(native) > 1, "this CPU offers one PyTorch dispatch only: nothing to compare"
    assert {cap: r["numerics"]["torch_cpu_capability"] for cap, r in native.items()} == \
        {cap: cap.upper() for cap in native}
    # Natively, another instruction set gives other floats (the weights; greedy answers follow them).
    assert len({r["weights_sha256"] for r in native.values()}) > 1
    # Pinned: PyTorch's AVX2 kernels, MKL's COMPATIBLE branch, no oneDNN or NNPACK convolutions,
    # NumPy without AVX-512, whatever the environment asked for; and the same losses, weights and
    # predictions under every dispatch.
    for r in pinned.values():
        assert r["numerics"]["applied"] and r["numerics"]["torch_cpu_capability"] == "AVX2"
        assert r["numerics"]["env"]["MKL_CBWR"] == "COMPATIBLE"
        assert r["numerics"]["torch_conv_libraries"] == {"mkldnn": False, "nnpack": False}
        assert not any("512" in f or f == "X86_V4" for f in r["numerics"]["numpy_dispatch"])
    results = [computed(r) for r in pinned.values()]
    assert all(r == results[0] for r in results) and len(results[0]["losses"]) == 20


def test_a_short_pretraining_gives_the_digest_committed_in_the_repository(runs):
    _, pinned = runs
    result = computed(next(iter(pinned.values())))
    digest = read_json(NUMERICS_DIGEST)
    made_with = digest["made_with"]
    mine = provenance.environment()["libraries"]
    changed = {lib: (v, mine.get(lib)) for lib, v in made_with["libraries"].items() if mine.get(lib) != v}
    hint = (f"written on {made_with['cpu']} {made_with['cpu_flags']}; libraries that differ here "
            f"(digest, here): {changed or 'none'}. If the change is meant, rerun `python tests/numerics_job.py "
            f"--write-digest` and regenerate the README's figures (make docs)")
    assert result["losses"] == digest["losses"], f"the loss sequence drifted; {hint}"
    assert result["weights_sha256"] == digest["weights_sha256"], f"the pretrained weights drifted; {hint}"
    assert result["predictions_sha256"] == digest["predictions_sha256"], f"the predictions drifted; {hint}"


def test_the_processes_a_pinned_job_launches_compute_with_its_numerics(tmp_path):
    """A job with N processes (`accelerate launch`, here 2 over gloo): each inherits the variables
    and must set torch's flags itself. The job runs in its own process, as its script does."""
    job = (f"from tunebench import numerics; numerics.pin(numerics.settings('pinned'))\n"
           f"from tunebench.train.launch import run_stage\n"
           f"run_stage('launched_probe', None, {{'out': {str(tmp_path)!r}}}, 2, 1, {str(tmp_path / 'args.json')!r})")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    done = subprocess.run([sys.executable, "-c", job], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in (0, 1):
        seen = read_json(tmp_path / f"rank{rank}.json")
        assert seen["mode"] == "pinned" and seen["applied"] and seen["threads"] == 1
        assert seen["env"]["MKL_CBWR"] == "COMPATIBLE" and seen["torch_cpu_capability"] == "AVX2"
        assert seen["torch_conv_libraries"] == {"mkldnn": False, "nnpack": False}
