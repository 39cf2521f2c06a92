"""Tuning methods: what becomes trainable.

Each registry entry takes the model, its family (where the parts live) and the method's config,
makes the method's parameters trainable and everything else frozen, and returns the model with
the set of parameter names the method *defines* as trainable. `check_trainable` then compares that
definition with what really has requires_grad, so a "LoRA" that trains base weights fails loudly
(LLaVA-NeXT shipped exactly that bug).

Sparse methods train whole weight tensors under an entry mask: a gradient hook zeroes the masked
entries' gradients, so AdamW's moments for them stay exactly zero and so does their update (weight
decay, which would still move them, is refused). The masks are kept on the model as `sparse_masks`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from ..models.families import Family, decoder_layer_count


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
    first = {"full": 0, "top": n - cfg.get("k", 0), "last": n - 1}[which]
    indices = range(first, n)
    prefixes = [f"{fam.decoder_layers}.{i}" for i in indices]
    if cfg["train_projector"]:
        prefixes.append(fam.projector)
    return prefixes


def _selective(which: str):
    def apply(model, fam: Family, cfg: dict, losses=None):
        if which == "top" and not 1 <= cfg["k"] <= decoder_layer_count(model, fam):
            raise ValueError(f"top: k={cfg['k']} is outside 1..{decoder_layer_count(model, fam)} decoder layers")
        _freeze_all(model)
        prefixes = [fam.projector] if which == "projector" else _layers(model, fam, cfg, which)
        return model, _unfreeze_prefixes(model, prefixes)
    return apply


def lora_target_regex(fam: Family, targets: list[str]) -> str:
    """peft full-matches a string target against module names: scope it to the language model,
    since a bare [q_proj, v_proj] would also hit the vision tower's attention."""
    return rf"{re.escape(fam.language_model)}\..*\.({'|'.join(map(re.escape, targets))})"


def _peft(make_config: Callable[[dict, Callable[[list[str]], str]], object]):
    """A peft tuner; `make_config(cfg, scope)` builds its peft config, `scope(targets)` being the
    language-model-only target regex."""
    def apply(model, fam: Family, cfg: dict, losses=None):
        import peft  # heavy: imported only when a peft run needs it

        model = peft.get_peft_model(model, make_config(cfg, lambda targets: lora_target_regex(fam, targets)))
        # The definition, independent of requires_grad: the tuner's own tensors (peft names them by
        # the tuner's prefix: lora_, ia3_, vera_lambda_, oft_) inside the language model.
        lm = f".{fam.language_model}."
        prefix = model.base_model.prefix
        expected = {n for n, _ in model.named_parameters() if prefix in n and lm in n}
        if not expected:
            raise TrainableSetError(f"{cfg['kind']} matched no module of the language model for targets {cfg.get('targets')}")
        return model, expected
    return apply


def _lora_config(use_dora: bool = False, init: bool | str = True):
    def make(cfg: dict, scope):
        from peft import LoraConfig

        return LoraConfig(r=cfg["r"], lora_alpha=cfg["alpha"], lora_dropout=cfg["dropout"],
                          target_modules=scope(cfg["targets"]), use_dora=use_dora,
                          init_lora_weights=init, bias="none")
    return make


def _ia3_config(cfg: dict, scope):
    from peft import IA3Config

    # IA3 rescales the keys, the values and the MLP's inner activation (the input of down_proj).
    targets = cfg["targets"]
    return IA3Config(target_modules=scope(targets),
                     feedforward_modules=scope([t for t in targets if t in MLP_PROJECTIONS]))


def _vera_config(cfg: dict, scope):
    from peft import VeraConfig

    return VeraConfig(r=cfg["r"], target_modules=scope(cfg["targets"]), vera_dropout=cfg["dropout"])


def _oft_config(cfg: dict, scope):
    from peft import OFTConfig

    return OFTConfig(r=0, oft_block_size=cfg["block_size"], target_modules=scope(cfg["targets"]))


def _prompt_tuning(model, fam: Family, cfg: dict, losses=None):
    """Trainable virtual tokens prepended to the input embeddings. LLaVA, Qwen2-VL and Idefics3 find
    their image positions by comparing embeddings with the image token's, so the prepended tokens
    leave them intact (Qwen2-VL then uses text positions: M-RoPE needs token ids)."""
    from peft import PromptTuningConfig, TaskType, get_peft_model

    # Sized from the family's language model: peft would look for a text_config, which a
    # custom-code checkpoint (VILA) need not have.
    text = model.get_submodule(fam.language_model).config
    model = get_peft_model(model, PromptTuningConfig(
        task_type=TaskType.CAUSAL_LM, num_virtual_tokens=cfg["virtual_tokens"], token_dim=text.hidden_size,
        num_layers=text.num_hidden_layers, num_attention_heads=text.num_attention_heads))
    return model, {n for n, _ in model.named_parameters() if n.startswith("prompt_encoder.")}


def _bottleneck_adapter(model, fam: Family, cfg: dict, losses=None):
    from . import (
        bottleneck,  # heavy (torch): imported only when an adapter run needs it
    )

    _freeze_all(model)
    attach_modules(model, fam, cfg)
    return model, {n for n, _ in model.named_parameters() if f".mlp.{bottleneck.ADAPTER}." in n}


def attach_modules(model, fam: Family, cfg: dict) -> None:
    """Re-creates the modules a method adds to the base model (before its tuned weights load)."""
    if METHODS[cfg["kind"]].adds_modules:
        from . import bottleneck

        bottleneck.attach(model.get_submodule(fam.decoder_layers), cfg["bottleneck"])


def _projections(model, fam: Family, cfg: dict, losses=None):
    """Selective tuning of named projections (weights and biases) in every decoder block."""
    _freeze_all(model)
    return model, _unfreeze(model, _projection_names(model, fam, cfg["targets"]))


def _projection_names(model, fam: Family, targets: list[str], weights_only: bool = False) -> list[str]:
    pattern = re.compile(rf"{re.escape(fam.decoder_layers)}\.\d+\..*\.({'|'.join(map(re.escape, targets))})\."
                         + ("weight$" if weights_only else r"(weight|bias)$"))
    names = [n for n, _ in model.named_parameters() if pattern.fullmatch(n)]
    if not names:
        raise TrainableSetError(f"no decoder-block parameters for targets {targets}")
    return names


def _unfreeze(model, names: list[str]) -> set[str]:
    params = dict(model.named_parameters())
    for n in names:
        params[n].requires_grad_(True)
    return set(names)


def _sparse(model, fam: Family, cfg: dict, losses=None):
    """Trains `ratio` of the entries of each targeted weight, chosen per tensor by `mask`:
    random; magnitude (the smallest weights: large ones carry most pretrained knowledge, as in
    SPIDER); gradient (the largest accumulated |gradient| of the tuning loss over a few batches
    before tuning, i.e. the entries that matter most for the new task)."""
    import torch

    names = _projection_names(model, fam, cfg["targets"], weights_only=True)
    params = dict(model.named_parameters())
    how = cfg["mask"]
    _freeze_all(model)
    expected = _unfreeze(model, names)
    if how == "gradient":
        if losses is None:
            raise ValueError("sparse mask 'gradient' needs batches of the tuning data to measure importance")
        scores = {n: torch.zeros_like(params[n]) for n in names}
        for loss in losses(model):
            model.zero_grad(set_to_none=True)
            loss.backward()
            for n in names:
                scores[n] += params[n].grad.abs()
        model.zero_grad(set_to_none=True)
    elif how == "magnitude":
        scores = {n: -params[n].detach().abs() for n in names}
    else:
        scores = {n: torch.rand_like(params[n]) for n in names}
    model.sparse_masks = {}
    for n in names:
        k = max(1, round(cfg["ratio"] * scores[n].numel()))
        mask = torch.zeros(scores[n].numel(), dtype=torch.bool, device=params[n].device)
        mask[scores[n].flatten().topk(k).indices] = True
        mask = mask.view_as(params[n])
        params[n].register_hook(lambda grad, mask=mask: grad * mask)
        model.sparse_masks[n] = mask
    return model, expected


ATTENTION_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP_PROJECTIONS = ["gate_proj", "up_proj", "down_proj"]
ALL_PROJECTIONS = ATTENTION_PROJECTIONS + MLP_PROJECTIONS


@dataclass(frozen=True)
class Setting:
    """One setting of a method kind: its JSON schema and its default (REQUIRED: none)."""

    schema: dict
    default: object


REQUIRED = object()
_INT, _POSITIVE, _FRACTION = {"type": "integer", "minimum": 1}, {"type": "number", "exclusiveMinimum": 0}, \
    {"type": "number", "minimum": 0, "maximum": 1}


def _targets(default: list[str]) -> Setting:
    return Setting({"type": "array", "items": {"type": "string"}, "minItems": 1}, default)


_LORA = {"r": Setting(_INT, 8), "alpha": Setting(_POSITIVE, 16), "dropout": Setting(_FRACTION, 0.0),
         "targets": _targets(["q_proj", "v_proj"])}
# None: the study's `layer_methods_train_projector` (the plan fills it in).
_LAYERS = {"train_projector": Setting({"type": "boolean"}, None)}


@dataclass(frozen=True)
class Method:
    """A method kind. `apply(model, family, settings, losses)` makes its parameters trainable and
    returns (model, the names it defines as trainable); the rest is what the workflow needs to know."""

    apply: Callable
    saves: str  # "adapter": a peft adapter directory; "tensors": the weights it changed, one file
    settings: dict[str, Setting] = field(default_factory=dict)
    # WiSE-FT applies: the tuned model has exactly the base model's parameters (adapters merged).
    interpolable: bool = True
    adds_modules: bool = False  # its tuned model has modules the base lacks (re-created before loading)
    layer_based: bool = False  # trains whole decoder blocks

    def defaults(self) -> dict:
        return {k: s.default for k, s in self.settings.items() if s.default is not REQUIRED}


METHODS: dict[str, Method] = {
    "lora": Method(_peft(_lora_config()), "adapter", _LORA),
    "dora": Method(_peft(_lora_config(use_dora=True)), "adapter", _LORA),
    # LoRA started from the principal singular vectors; it rewrites the base weights it starts
    # from, so it is saved merged, as the weights it changed.
    "pissa": Method(_peft(_lora_config(init="pissa")), "tensors", _LORA),
    "vera": Method(_peft(_vera_config), "adapter", {"r": Setting(_INT, 64), "dropout": Setting(_FRACTION, 0.0),
                                                   "targets": _targets(["q_proj", "v_proj"])}),
    "oft": Method(_peft(_oft_config), "adapter", {"block_size": Setting(_INT, 8), "targets": _targets(["q_proj", "v_proj"])}),
    "ia3": Method(_peft(_ia3_config), "adapter", {"targets": _targets(["k_proj", "v_proj", "down_proj"])}),
    "prompt": Method(_prompt_tuning, "adapter", {"virtual_tokens": Setting(_INT, 8)}, interpolable=False),
    "adapter": Method(_bottleneck_adapter, "tensors", {"bottleneck": Setting(_INT, 16)}, interpolable=False,
                      adds_modules=True),
    "attention": Method(_projections, "tensors", {"targets": _targets(ATTENTION_PROJECTIONS)}),
    "mlp_gate_up": Method(_projections, "tensors", {"targets": _targets(["gate_proj", "up_proj"])}),  # down frozen
    "sparse": Method(_sparse, "tensors", {
        "mask": Setting({"enum": ["random", "magnitude", "gradient"]}, "random"),
        "ratio": Setting({"type": "number", "exclusiveMinimum": 0, "maximum": 1}, REQUIRED),
        "mask_batches": Setting(_INT, 4),  # gradient mask: batches measured before tuning
        "targets": _targets(ALL_PROJECTIONS)}),
    "full": Method(_selective("full"), "tensors", _LAYERS, layer_based=True),
    "top": Method(_selective("top"), "tensors", {"k": Setting(_INT, 2), **_LAYERS}, layer_based=True),
    "last": Method(_selective("last"), "tensors", _LAYERS, layer_based=True),
    "projector": Method(_selective("projector"), "tensors"),
}


def resolved(cfg: dict, train_projector: bool = False) -> dict:
    """A method's settings over its kind's defaults: what a tuning job is handed. `train_projector`
    is the study-wide default for layer-based kinds."""
    defaults = METHODS[cfg["kind"]].defaults()
    if "train_projector" in defaults:
        defaults["train_projector"] = train_projector
    return {**defaults, **cfg}


def setting_schemas() -> dict[str, dict]:
    """Every kind's settings, one schema per key (kinds sharing a key share its schema)."""
    return {key: setting.schema for method in METHODS.values() for key, setting in method.settings.items()}


def settings_problems(cfg: dict) -> list[str]:
    """What in a method's resolved settings cannot work, as (key: problem) lines."""
    method = METHODS[cfg["kind"]]
    problems = [f"{key}: required for a {cfg['kind']} method" for key, s in method.settings.items()
                if s.default is REQUIRED and key not in cfg]
    if cfg["kind"] == "sparse" and cfg.get("weight_decay", 0) > 0:
        problems.append("weight_decay: must be 0 for a sparse method (decay would move masked entries)")
    if "wise_alpha" in cfg and not method.interpolable:
        problems.append(f"wise_alpha: WiSE-FT needs a method whose tuned model has the base model's parameters; "
                        f"{cfg['kind']!r} adds its own")
    return problems


def family_problems(cfg: dict, fam: Family) -> list[str]:
    """What in a method's settings cannot work on a model of family `fam`, as (key: problem) lines."""
    if cfg["kind"] == "prompt" and not fam.images_from_embeddings:
        return ["kind: prompt tuning passes the model input embeddings, and this family's model embeds its "
                "images only from token ids: it would tune without seeing the images"]
    return []


def apply(model, fam: Family, cfg: dict, losses=None):
    """Returns (model, expected trainable names) after checking that they agree. `losses(model)`,
    when given, yields the tuning loss on a few batches (for importance measured before tuning)."""
    cfg = resolved(cfg)  # the plan hands over resolved settings; other callers may give only some
    problems = settings_problems(cfg) + family_problems(cfg, fam)
    if problems:
        raise ValueError(f"method {cfg['kind']!r}: " + "; ".join(problems))
    kind = cfg["kind"]
    model, expected = METHODS[kind].apply(model, fam, cfg, losses)
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
    # A sparse method trains only its masks' entries of each tensor.
    masks = getattr(model, "sparse_masks", {})
    trainable = {n: int(masks[n].sum()) if n in masks else p.numel()
                 for n, p in model.named_parameters() if p.requires_grad}
    total = sum(p.numel() for p in model.parameters())
    return {"trainable_params": sum(trainable.values()), "total_params": total, "trainable": trainable}
