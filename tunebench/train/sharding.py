"""Sharded training (`distributed: fsdp`): torch's FSDP2 (`fully_shard`) over the processes that
`accelerate launch` started. Each block the model marks as one unit (transformers'
`_no_split_modules`: decoder and vision layers) is sharded on its own and gathered only for its
forward and backward, so a process holds 1/N of the weights, gradients and optimizer state.

accelerate 1.15 applies FSDP only on GPU-like devices (its state.py leaves MULTI_CPU out), so the
CPU test could not go through it; tunebench calls the same `fully_shard` accelerate would, and
keeps accelerate for the processes, devices and the rest of the loop.
"""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor

MODES = ("ddp", "fsdp")


def _blocks(model) -> set[str]:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model
    return set(getattr(base, "_no_split_modules", None) or [])


def shard(model, precision: str) -> None:
    """FSDP2 in place: every block, then the whole model. bf16/fp16 compute in that dtype with fp32
    master weights and fp32 gradient reduction (FSDP's mixed precision, instead of autocast)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32 if dtype else None)
    tuner = getattr(model, "peft_config", {}).get("default")
    if getattr(model, "sparse_masks", None) or (tuner and (tuner.is_prompt_learning or isinstance(
            getattr(tuner, "init_lora_weights", None), str))):
        # sparse: gradient hooks on the unsharded parameters; prompt: peft saves its embedding by
        # running it outside the model's forward; PiSSA: saved merged, which a sharded model cannot
        raise ValueError("sparse, prompt and PiSSA tuning run under distributed: ddp only")
    blocks = _blocks(model)
    if not blocks:
        raise ValueError(f"{type(model).__name__} names no blocks to shard (_no_split_modules); use distributed: ddp")
    for module in list(model.modules())[1:]:
        if type(module).__name__ in blocks:
            fully_shard(module, mp_policy=policy)
    fully_shard(model, mp_policy=policy)


def full_tensors(model, names: set[str], keep: bool = True) -> dict[str, torch.Tensor]:
    """The named tensors of the model's state, whole and on the CPU. Each sharded one is gathered,
    so every process must call this; only those with `keep` (the one that saves) hold the result."""
    gathered = {}
    for name, tensor in model.state_dict().items():
        if name in names:
            tensor = tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
            if keep:
                gathered[name] = tensor.detach().cpu()
    return gathered
