"""Training checkpoints: data only, and bound to the run they were made for.

A checkpoint is one safetensors file: every tensor of the state (trainable weights, optimizer and
scheduler state, RNG states) as a tensor, the rest (the step, the log so far, the structure around
those tensors) as JSON in its metadata. Nothing is unpickled, so a file planted at a checkpoint path
runs no code: it is no checkpoint, and the run starts over.

Each checkpoint records its run's identity: the digest of the job's plan slice (and the slice, to say
what changed), its stage's code fingerprint and the content digest of every input file. A run
resumes only from a checkpoint of its own identity and otherwise starts over, saying why.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .. import slices
from ..data.digest import tree_digest
from ..files import atomic_write, remove, temporary

# How the JSON metadata marks what it cannot hold itself.
TENSOR, TUPLE, MAPPING = "__tensor__", "__tuple__", "__mapping__"


def checkpoint_path(out_dir: Path) -> Path:
    """Beside the run's output, not in it: Snakemake deletes a job's outputs before rerunning it."""
    out_dir = Path(out_dir)
    return out_dir.parent / f"{out_dir.name}.checkpoint.safetensors"


def identity(job: dict, code: str | None, inputs: list[Path]) -> dict:
    """What a checkpoint belongs to: the job's plan slice, its stage's code fingerprint and the
    content of its input files (a rebuilt base model or a re-prepared split is another run)."""
    return {"plan_digest": slices.digest_of(job), "plan": job, "code": code,
            "inputs": {str(p): tree_digest([Path(p)], cache_path=None) for p in inputs}}


def _mismatch(saved: dict, current: dict) -> str | None:
    """Why a checkpoint with identity `saved` is not the current run's (None: it is)."""
    reasons = []
    if saved.get("plan_digest") != current["plan_digest"]:
        reasons.append(f"made for another plan ({slices.changes(saved.get('plan'), current['plan'])})")
    if saved.get("code") != current["code"]:
        reasons.append("made by other training code")
    changed = sorted(p for p in set(saved.get("inputs", {})) | set(current["inputs"])
                     if saved.get("inputs", {}).get(p) != current["inputs"].get(p))
    if changed:
        reasons.append(f"made from other inputs ({', '.join(changed)})")
    return "; ".join(reasons) or None


# ---- the state as tensors + JSON ---------------------------------------------------------------

def _pack(value, tensors: dict):
    """`value` as JSON, its tensors moved into `tensors` under generated names."""
    if isinstance(value, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = value.detach().cpu().contiguous()
        return {TENSOR: name}
    if isinstance(value, dict):  # as pairs: an optimizer's state is keyed by int
        return {MAPPING: [[key, _pack(item, tensors)] for key, item in value.items()]}
    if isinstance(value, tuple):
        return {TUPLE: [_pack(item, tensors) for item in value]}
    if isinstance(value, list):
        return [_pack(item, tensors) for item in value]
    return value


def _unpack(value, tensors: dict):
    if isinstance(value, list):
        return [_unpack(item, tensors) for item in value]
    if isinstance(value, dict):
        if TENSOR in value:
            return tensors[value[TENSOR]]
        if TUPLE in value:
            return tuple(_unpack(item, tensors) for item in value[TUPLE])
        return {key: _unpack(item, tensors) for key, item in value[MAPPING]}
    return value


def rng_states() -> dict:
    numpy = np.random.get_state()
    states = {"python": random.getstate(), "numpy": (numpy[0], numpy[1].tolist(), *numpy[2:]),
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    kind, key, *rest = states["numpy"]
    np.random.set_state((kind, np.array(key, dtype=np.uint32), *rest))
    torch.set_rng_state(states["torch"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


def save(path: Path, run_identity: dict, state: dict) -> None:
    """`state`: step, trainable tensors, optimizer and scheduler state dicts, log rows, losses; RNG
    states are added. Written under a temporary name then renamed: a kill mid-save keeps the last one."""
    tensors: dict = {}
    packed = _pack({**state, "rng": rng_states(), "identity": run_identity}, tensors)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"state": json.dumps(packed)}))


def _read(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        packed = json.loads((f.metadata() or {})["state"])
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    return _unpack(packed, tensors)


def resumable(path: Path, run_identity: dict, trainable: set[str]) -> tuple[dict | None, dict | None]:
    """(the state to resume from, or None; what became of the checkpoint, for run.json: None when
    there was none). A checkpoint of another run, or one that is no checkpoint, is set aside (the
    run starts over) with the reason printed to the job's log."""
    path = Path(path)
    remove(temporary(path))  # a save that a kill cut short (it can hold a whole optimizer state)
    if not path.exists():
        return None, None
    try:
        state = _read(path)
        why = _mismatch(state["identity"], run_identity)
        if why is None and set(state["trainable"]) != trainable:
            why = "it holds other trainable tensors than this run"
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as err:
        state, why = None, f"it is no checkpoint this code wrote ({type(err).__name__}: {err})"
    if why:
        print(f"[tunebench] checkpoint {path} discarded, starting over: {why}", file=sys.stderr, flush=True)
        return None, {"path": str(path), "discarded": why}
    return state, {"path": str(path), "resumed_from_step": state["step"]}
