"""Model families: where a family's parts live (vision tower, projector, decoder layers, output
head), as module-name prefixes, and how it is loaded and prompted. Methods select parameters by
these prefixes, so a new family is one registry entry and every method works on it. The loading
code itself lives in `modeling`; this module stays light (no torch import).
"""

from __future__ import annotations

from dataclasses import dataclass

# Chat formats, used when a checkpoint ships no chat template (and by the tiny test models), so a
# model is always prompted the way it was instruction-tuned.
QWEN_IMAGE_TEMPLATE = (  # ChatML with Qwen2-VL's image placeholder
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAVA_OV_TEMPLATE = (  # ChatML with LLaVA's <image> placeholder
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
IDEFICS3_TEMPLATE = (  # "User:<image>question<end_of_utterance>\nAssistant: answer"
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


@dataclass(frozen=True)
class Family:
    """Where a family's parts live, as module-name prefixes of the loaded model, and how to load it."""

    vision_tower: str
    projector: str
    decoder_layers: str      # prefix of the ModuleList of decoder blocks
    language_model: str      # prefix of the whole text decoder (LoRA targets are scoped to it)
    output_head: str
    # transformers processor class; None: the checkpoint's own (custom code) processor via AutoProcessor
    processor_class: str | None
    chat_template: str       # the family's chat format, used when the checkpoint has none
    remote_code: bool = False  # the model code ships with the checkpoint (needs trust_remote_code)
    # Its forward finds the image positions in inputs_embeds (transformers' VLMs compare them with the
    # image token's embedding), so prompt tuning, which passes embeddings instead of token ids, keeps
    # the images. VILA's code embeds images only from input_ids.
    images_from_embeddings: bool = True


_QWEN2_VL = dict(
    vision_tower="model.visual",
    projector="model.visual.merger",   # the patch merger maps vision features into the LM's width
    decoder_layers="model.language_model.layers",
    language_model="model.language_model",
    output_head="lm_head",
    chat_template=QWEN_IMAGE_TEMPLATE,
)
_IDEFICS3 = dict(
    vision_tower="model.vision_model",
    projector="model.connector",
    decoder_layers="model.text_model.layers",
    language_model="model.text_model",
    output_head="lm_head",
    chat_template=IDEFICS3_TEMPLATE,
)

FAMILIES: dict[str, Family] = {
    # llava-hf/llava-onevision-qwen2-{0.5b,7b}-ov-hf, and the embedded model
    "llava_onevision": Family(
        vision_tower="model.vision_tower",
        projector="model.multi_modal_projector",
        decoder_layers="model.language_model.layers",
        language_model="model.language_model",
        output_head="lm_head",
        processor_class="LlavaOnevisionProcessor",
        chat_template=LLAVA_OV_TEMPLATE,
    ),
    "qwen2_vl": Family(processor_class="Qwen2VLProcessor", **_QWEN2_VL),          # Qwen/Qwen2-VL-*-Instruct
    "qwen2_5_vl": Family(processor_class="Qwen2_5_VLProcessor", **_QWEN2_VL),     # Qwen/Qwen2.5-VL-*-Instruct
    "idefics3": Family(processor_class="Idefics3Processor", **_IDEFICS3),         # HuggingFaceM4/Idefics3-8B-Llama3
    # HuggingFaceTB/SmolVLM2-*-Instruct (SmolVLM v1 checkpoints are model_type idefics3)
    "smolvlm": Family(processor_class="SmolVLMProcessor", **_IDEFICS3),
    # VILA / NVILA (Efficient-Large-Model/*-hf-preview): custom code, LLaVA-style layout of
    # llava_arch.py (llm, vision_tower, mm_projector). Not checked against a real checkpoint here.
    "vila": Family(
        vision_tower="vision_tower",
        projector="mm_projector",
        decoder_layers="llm.model.layers",
        language_model="llm",
        output_head="llm.lm_head",
        processor_class=None,
        chat_template=QWEN_IMAGE_TEMPLATE,
        remote_code=True,
        images_from_embeddings=False,
    ),
}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise KeyError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


def decoder_layer_count(model, fam: Family) -> int:
    return len(model.get_submodule(fam.decoder_layers))
