"""Model families: where a family's parts live (vision tower, projector, decoder layers, output
head), as module-name prefixes. Methods select parameters by these prefixes, so a new family is
one registry entry and every method works on it. Loading and prompting live in `modeling`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """Where a family's parts live, as module-name prefixes of the loaded model."""

    vision_tower: str
    projector: str
    decoder_layers: str      # prefix of the ModuleList of decoder blocks
    language_model: str      # prefix of the whole text decoder (LoRA targets are scoped to it)
    output_head: str


FAMILIES: dict[str, Family] = {
    "llava_onevision": Family(
        vision_tower="model.vision_tower",
        projector="model.multi_modal_projector",
        decoder_layers="model.language_model.layers",
        language_model="model.language_model",
        output_head="lm_head",
    ),
    # VILA / NVILA *-hf-preview checkpoints (trust_remote_code): the LLM, vision tower and projector
    # are attributes of the top-level model (module names as in NVlabs/VILA; unconfirmed here).
    "vila": Family(
        vision_tower="vision_tower",
        projector="mm_projector",
        decoder_layers="llm.model.layers",
        language_model="llm",
        output_head="llm.lm_head",
    ),
}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise KeyError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


def decoder_layer_count(model, fam: Family) -> int:
    return len(model.get_submodule(fam.decoder_layers))
