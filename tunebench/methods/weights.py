"""What a tuning run leaves and how a tuned model is rebuilt from it: adapters in peft's format or
the tensors a method changed, reloaded onto the base model, optionally interpolated (WiSE-FT)."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..files import atomic_write, remove, write_text
from ..models.families import family
from ..models.loading import load_base
from .registry import attach_modules


def tensors_to_save(model, trained: set[str]) -> set[str]:
    """What a tuned model's save reads from its state: the trained tensors and, for a peft tuner,
    every tensor of the tuner: those named with its prefix in the layers, and those it holds
    itself beside the wrapped model (VeRA's shared projections, `base_model.vera_A.<adapter>`)."""
    prefix = getattr(getattr(model, "base_model", None), "prefix", None) if hasattr(model, "peft_config") else None
    if not prefix:
        return set(trained)
    return trained | {n for n in model.state_dict()
                      if prefix in n or (n.startswith("base_model.") and not n.startswith("base_model.model."))}


def save_tuned(model, trained: set[str], path: Path, placeholder: bool = False,
               state: dict[str, torch.Tensor] | None = None) -> None:
    """Adapters in peft's format (a directory); selective methods as the tensors they changed (one
    file; the base is kept once). Both appear under their final name only when complete.
    `placeholder` writes an empty one instead (a diverged run has no tensors worth keeping).
    `state` holds the tensors of `tensors_to_save`, whole (a sharded run gathers them first).
    An adapter whose initialisation rewrote base weights (PiSSA) is saved merged, as the weights it
    changed, since its adapter alone would not apply to the saved base."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rewrote_base = isinstance(getattr(getattr(model, "peft_config", {}).get("default"), "init_lora_weights", None), str)
    if rewrote_base and not placeholder:
        changed = {re.sub(r"^base_model\.model\.|\.lora_[AB]\..*$", "", n) + ".weight" for n in trained}
        model, trained, state = model.merge_and_unload(), changed, None
    if hasattr(model, "peft_config"):  # a peft-wrapped model saves its adapter alone
        def save_adapter(tmp: Path) -> None:
            tmp.mkdir()
            if not placeholder:
                model.save_pretrained(tmp, state_dict=state)

        remove(path)
        atomic_write(path, save_adapter)
    elif placeholder:
        write_text("", path)
    else:
        state = state or model.state_dict()
        atomic_write(path, lambda tmp: save_file({n: state[n].contiguous() for n in sorted(trained)}, str(tmp)))


def load_tuned(spec: dict, base: str | Path, tuned: Path | None, settings: dict | None = None):
    """The base model with a tuned run applied. `settings` (the method's) re-creates modules the
    method added and, with `wise_alpha`, interpolates base and tuned weights (WiSE-FT)."""
    model, processor = load_base(spec, base)
    if tuned is None:
        return model, processor
    settings = settings or {}
    alpha = settings.get("wise_alpha")
    base_state = {n: t.clone() for n, t in model.state_dict().items()} if alpha is not None else None
    tuned = Path(tuned)
    if tuned.is_dir():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, tuned)
        if not model.peft_config["default"].is_prompt_learning:
            model = model.merge_and_unload()  # merged, so generation runs at the base model's speed
    else:
        if settings:
            attach_modules(model, family(spec["family"]), settings)
        weights = load_file(str(tuned))
        missing = set(weights) - set(model.state_dict())
        if missing:
            raise KeyError(f"{tuned}: tensors not in the base model: {sorted(missing)[:5]}")
        model.load_state_dict(weights, strict=False)
    if alpha is not None:
        wise(model, base_state, alpha)
    return model, processor


@torch.no_grad()
def wise(model, base: dict[str, torch.Tensor], alpha: float) -> None:
    """WiSE-FT: every weight becomes (1 - alpha) base + alpha tuned (lerp is exact at 0 and 1)."""
    state = model.state_dict()
    if set(state) != set(base):
        raise KeyError(f"WiSE-FT: the tuned model's tensors differ from the base model's: "
                       f"{sorted(set(state) ^ set(base))[:5]}")
    for name, tensor in state.items():
        if tensor.is_floating_point():
            tensor.copy_(torch.lerp(base[name], tensor, alpha))
