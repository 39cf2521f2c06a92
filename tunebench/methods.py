"""Tuning methods: what becomes trainable.

Each registry entry takes the model, its family (where the parts live) and the method's config,
makes the method's parameters trainable and everything else frozen, and returns the model with
the set of parameter names the method *defines* as trainable. `check_trainable` then compares that
definition with what really has requires_grad, so a "LoRA" that trains base weights fails loudly
(LLaVA-NeXT shipped exactly that bug).
"""

from __future__ import annotations

import re
from typing import Callable

from .models import Family, decoder_layer_count


class TrainableSetError(RuntimeError):
    pass


def _freeze_all(model) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def _unfreeze_prefixes(model, prefixes: list[str]) -> set[str]:
    chosen = set()
    for name, p in model.named_parameters():
        if any(name == pre or name.startswith(pre + ".") for pre in prefixes):
            p.requires_grad_(True)
            chosen.add(name)
    if not chosen:
        raise TrainableSetError(f"no parameters under {prefixes}")
    return chosen


def _layers(model, fam: Family, cfg: dict, which: str) -> list[str]:
    n = decoder_layer_count(model, fam)
    indices = {"full": range(n), "top": range(n - cfg.get("k", 2), n), "last": range(n - 1, n)}[which]
    prefixes = [f"{fam.decoder_layers}.{i}" for i in indices]
    if cfg.get("train_projector", False):
        prefixes.append(fam.projector)
    return prefixes


def _selective(which: str):
    def apply(model, fam: Family, cfg: dict):
        if which == "top" and not 1 <= cfg.get("k", 2) <= decoder_layer_count(model, fam):
            raise ValueError(f"top: k={cfg['k']} is outside 1..{decoder_layer_count(model, fam)} decoder layers")
        _freeze_all(model)
        prefixes = [fam.projector] if which == "projector" else _layers(model, fam, cfg, which)
        return model, _unfreeze_prefixes(model, prefixes)
    return apply


def lora_target_regex(fam: Family, targets: list[str]) -> str:
    """peft full-matches a string target against module names: scope it to the language model,
    since a bare [q_proj, v_proj] would also hit the vision tower's attention."""
    return rf"{re.escape(fam.language_model)}\..*\.({'|'.join(map(re.escape, targets))})"


def _lora(use_dora: bool):
    def apply(model, fam: Family, cfg: dict):
        from peft import LoraConfig, get_peft_model  # heavy: imported only when a LoRA run needs it

        config = LoraConfig(
            r=cfg.get("r", 8),
            lora_alpha=cfg.get("alpha", 16),
            lora_dropout=cfg.get("dropout", 0.0),
            target_modules=lora_target_regex(fam, cfg.get("targets", ["q_proj", "v_proj"])),
            use_dora=use_dora,
            bias="none",
        )
        model = get_peft_model(model, config)
        # The definition, independent of requires_grad: adapter tensors inside the language model.
        lm = f".{fam.language_model}."
        expected = {n for n, _ in model.named_parameters() if "lora_" in n and lm in n}
        if not expected:
            raise TrainableSetError(f"LoRA matched no module of the language model for targets {cfg.get('targets')}")
        return model, expected
    return apply


METHODS: dict[str, Callable] = {
    "lora": _lora(use_dora=False),
    "dora": _lora(use_dora=True),
    "full": _selective("full"),
    "top": _selective("top"),
    "last": _selective("last"),
    "projector": _selective("projector"),
}
# Kinds whose result is a small adapter (kept always); the others change base weights.
ADAPTER_KINDS = {"lora", "dora"}


def apply(model, fam: Family, cfg: dict):
    """Returns (model, expected trainable names) after checking that they agree."""
    kind = cfg["kind"]
    if kind not in METHODS:
        raise KeyError(f"unknown method kind {kind!r}; known: {sorted(METHODS)}")
    model, expected = METHODS[kind](model, fam, cfg)
    check_trainable(model, expected, kind)
    return model, expected


def trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def check_trainable(model, expected: set[str], kind: str) -> None:
    actual = trainable_names(model)
    if actual != expected:
        extra, missing = sorted(actual - expected), sorted(expected - actual)
        raise TrainableSetError(
            f"method {kind!r}: trainable parameters differ from the method's definition; "
            f"unexpectedly trainable: {extra[:10]}{'...' if len(extra) > 10 else ''}; "
            f"expected but frozen: {missing[:10]}{'...' if len(missing) > 10 else ''}"
        )


def parameter_counts(model) -> dict:
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    total = sum(p.numel() for p in model.parameters())
    return {"trainable_params": sum(trainable.values()), "total_params": total, "trainable": trainable}
