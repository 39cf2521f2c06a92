"""Real-architecture presets: the published checkpoints' architecture, processor settings and chat
template, with random weights and a tokenizer trained locally (nothing is downloaded), at full
size or reduced by `scale` (depth and width; head sizes, image size, anyres grid, patch size and
image token counts stay the checkpoint's, so sequences and pixel tensors are as long as the real
model's). Saved with save_pretrained, a preset loads through `loading.load`, the path a real
checkpoint takes.

    model, processor = presets.build("llava-ov-0.5b", texts, scale=0.05)

Values follow each checkpoint's config.json / preprocessor_config.json / chat template as
published (LLaVA-OneVision's 36 anyres pinpoints and Qwen2.5-VL-3B's text config were checked
against copies of those files; the rest are as documented by the model cards). The vocabulary:
at scale 1 the checkpoint's embedding size (the local tokenizer uses its first ids), reduced the
local tokenizer's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from transformers import (
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessorPil,
    LlavaOnevisionProcessor,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
    SmolVLMConfig,
    SmolVLMForConditionalGeneration,
    SmolVLMImageProcessorPil,
    SmolVLMProcessor,
)
from transformers.image_utils import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    PILImageResampling,
)

from . import embedded, loading, tiny
from .families import IDEFICS3_TEMPLATE

# llava-hf/llava-onevision-qwen2-*-ov-hf's chat template (images, then videos, then text per turn)
LLAVA_OV_CHAT = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{{'<|im_end|>\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Qwen/Qwen2-VL-*-Instruct and Qwen2.5-VL: ChatML with a default system turn
QWEN_VL_CHAT = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# LLaVA-OneVision's anyres grid: 1x1 to 6x6 tiles of 384 px
ANYRES_PINPOINTS = [[384 * h, 384 * w] for h in range(1, 7) for w in range(1, 7)]
SIGLIP_SO400M = {"hidden_size": 1152, "intermediate_size": 4304, "heads": 16, "image_size": 384, "patch_size": 14}


def _scaled(scale: float, layers: int, heads: int, kv_heads: int, head_dim: int, intermediate: int) -> dict:
    """A block stack reduced by `scale` in depth and width; head size kept (rotary sections stay valid)."""
    n_heads = max(1, round(heads * scale))
    n_kv = max(k for k in range(1, n_heads + 1) if n_heads % k == 0 and k <= max(1, round(kv_heads * scale)))
    return {"layers": max(1, round(layers * scale)), "heads": n_heads, "kv_heads": n_kv,
            "hidden": n_heads * head_dim, "intermediate": max(8, round(intermediate * scale))}


def _text(model_type: str, tok, scale: float, vocab: int, tie: bool, rope: dict, max_positions: int, **arch) -> dict:
    s = _scaled(scale, **arch)
    return {"model_type": model_type, "hidden_size": s["hidden"], "intermediate_size": s["intermediate"],
            "num_hidden_layers": s["layers"], "num_attention_heads": s["heads"], "num_key_value_heads": s["kv_heads"],
            "vocab_size": vocab if scale == 1 else len(tok), "tie_word_embeddings": tie,
            "max_position_embeddings": max_positions, "rope_parameters": rope,
            "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id, "bos_token_id": None}


def _siglip(scale: float, layers: int) -> dict:
    s = _scaled(scale, layers, SIGLIP_SO400M["heads"], SIGLIP_SO400M["heads"], 72, SIGLIP_SO400M["intermediate_size"])
    return {"model_type": "siglip_vision_model", "hidden_size": s["hidden"], "intermediate_size": s["intermediate"],
            "num_hidden_layers": s["layers"], "num_attention_heads": s["heads"],
            "image_size": SIGLIP_SO400M["image_size"], "patch_size": SIGLIP_SO400M["patch_size"], "vision_use_head": False}


def _llava_onevision(text_arch: dict, vocab: int, tie: bool):
    """llava-hf/llava-onevision-qwen2-*-ov-hf: SigLIP-so400m (26 layers) at 384 px, anyres_max_9, Qwen2."""
    def build(texts: list[str], scale: float):
        tok = embedded.train_tokenizer(texts, [], 400)
        rope = {"rope_type": "default", "rope_theta": 1000000.0}
        config = LlavaOnevisionConfig(
            vision_config=_siglip(scale, 26),
            text_config=_text("qwen2", tok, scale, vocab, tie, rope, 32768, **text_arch),
            image_token_index=tok.convert_tokens_to_ids(embedded.IMAGE_TOKEN),
            video_token_index=tok.convert_tokens_to_ids("<video>"),
            image_grid_pinpoints=ANYRES_PINPOINTS, vision_feature_select_strategy="full", vision_feature_layer=-1,
            vision_aspect_ratio="anyres_max_9", tie_word_embeddings=tie)
        image_processor = LlavaOnevisionImageProcessorPil(
            size={"height": 384, "width": 384}, image_grid_pinpoints=ANYRES_PINPOINTS, image_mean=[0.5] * 3,
            image_std=[0.5] * 3, resample=PILImageResampling.BICUBIC, do_pad=True, do_convert_rgb=True)
        processor = loading.image_only(LlavaOnevisionProcessor)(
            image_processor=image_processor, tokenizer=tok, num_image_tokens=(384 // 14) ** 2,  # 729 per tile
            vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9", chat_template=LLAVA_OV_CHAT)
        return LlavaOnevisionForConditionalGeneration(config), processor
    return build


def _qwen_image_processor():
    # min_pixels 56 x 56, max_pixels 28 x 28 x 16384; 14 px patches merged 2 x 2 into one token
    return Qwen2VLImageProcessorPil(patch_size=14, merge_size=2, temporal_patch_size=2,
                                    size={"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 16384},
                                    image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD)


def _qwen_ids(tok) -> dict:
    return {"image_token_id": tok.convert_tokens_to_ids("<|image_pad|>"),
            "video_token_id": tok.convert_tokens_to_ids("<|video_pad|>"),
            "vision_start_token_id": tok.convert_tokens_to_ids("<|vision_start|>"),
            "vision_end_token_id": tok.convert_tokens_to_ids("<|vision_end|>")}


def _qwen2_vl_2b(texts: list[str], scale: float):
    """Qwen/Qwen2-VL-2B-Instruct: a 675M-parameter ViT (32 blocks, 1280 wide, 14 px patches), Qwen2-1.5B."""
    tok = tiny.tokenizer(texts, tiny.QWEN_TOKENS, eos="<|im_end|>")
    rope = {"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1000000.0}
    vision = _scaled(scale, 32, 16, 16, 80, 4 * 1280)
    text = _text("qwen2_vl_text", tok, scale, 151936, True, rope, 32768,
                 layers=28, heads=12, kv_heads=2, head_dim=128, intermediate=8960)
    config = Qwen2VLConfig(text_config=text, vision_config={
        "depth": vision["layers"], "embed_dim": vision["hidden"], "num_heads": vision["heads"], "mlp_ratio": 4,
        "hidden_size": text["hidden_size"], "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
        tie_word_embeddings=True, **_qwen_ids(tok))
    processor = loading.image_only(Qwen2VLProcessor)(image_processor=_qwen_image_processor(), tokenizer=tok,
                                                     chat_template=QWEN_VL_CHAT)
    return Qwen2VLForConditionalGeneration(config), processor


def _qwen2_5_vl_3b(texts: list[str], scale: float):
    """Qwen/Qwen2.5-VL-3B-Instruct: a windowed-attention ViT (32 blocks, full attention at 7/15/23/31), Qwen2.5-3B."""
    tok = tiny.tokenizer(texts, tiny.QWEN_TOKENS, eos="<|im_end|>")
    rope = {"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1000000.0}
    vision = _scaled(scale, 32, 16, 16, 80, 3420)
    text = _text("qwen2_5_vl_text", tok, scale, 151936, True, rope, 128000,
                 layers=36, heads=16, kv_heads=2, head_dim=128, intermediate=11008)
    every = 32 // 4  # one full-attention block in every 8, the last of each group
    full_attention = sorted({min(vision["layers"], round((i + 1) * every * scale)) - 1 for i in range(4)})
    config = Qwen2_5_VLConfig(text_config=text, vision_config={
        "depth": vision["layers"], "hidden_size": vision["hidden"], "num_heads": vision["heads"],
        "intermediate_size": vision["intermediate"], "out_hidden_size": text["hidden_size"], "hidden_act": "silu",
        "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
        "fullatt_block_indexes": [max(0, i) for i in full_attention]}, tie_word_embeddings=True, **_qwen_ids(tok))
    processor = loading.image_only(Qwen2_5_VLProcessor)(image_processor=_qwen_image_processor(), tokenizer=tok,
                                                        chat_template=QWEN_VL_CHAT)
    return Qwen2_5_VLForConditionalGeneration(config), processor


# SmolVLM's image splitting names each tile <row_r_col_c>; the real tokenizer has them as tokens.
SMOLVLM_TOKENS = {**tiny.IDEFICS_TOKENS, **{f"row{r}col{c}": f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)}}


def _smolvlm2_2b(texts: list[str], scale: float):
    """HuggingFaceTB/SmolVLM2-2.2B-Instruct: SigLIP-so400m (27 layers) at 384 px, 3 x 3 pixel shuffle
    (81 tokens a tile), images split into 384 px tiles up to 1536 px, SmolLM2-1.7B."""
    tok = tiny.tokenizer(texts, SMOLVLM_TOKENS, eos="<end_of_utterance>", vocab_size=500)
    rope = {"rope_type": "default", "rope_theta": 130000.0}
    config = SmolVLMConfig(
        vision_config={k: v for k, v in _siglip(scale, 27).items() if k not in ("model_type", "vision_use_head")},
        text_config=_text("llama", tok, scale, 49280, False, rope, 8192,
                          layers=24, heads=32, kv_heads=32, head_dim=64, intermediate=8192),
        scale_factor=3, image_token_id=tok.convert_tokens_to_ids("<image>"))
    image_processor = SmolVLMImageProcessorPil(
        size={"longest_edge": 4 * 384}, max_image_size={"longest_edge": 384}, do_image_splitting=True,
        resample=PILImageResampling.LANCZOS, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = loading.image_only(SmolVLMProcessor)(image_processor=image_processor, tokenizer=tok,
                                                     image_seq_len=81, chat_template=IDEFICS3_TEMPLATE)
    return SmolVLMForConditionalGeneration(config), processor


@dataclass(frozen=True)
class Preset:
    family: str       # the tunebench family it loads as
    checkpoint: str   # the published checkpoint whose architecture it has
    build: Callable


PRESETS = {
    "llava-ov-0.5b": Preset("llava_onevision", "llava-hf/llava-onevision-qwen2-0.5b-ov-hf", _llava_onevision(
        dict(layers=24, heads=14, kv_heads=2, head_dim=64, intermediate=4864), vocab=152000, tie=True)),
    "llava-ov-7b": Preset("llava_onevision", "llava-hf/llava-onevision-qwen2-7b-ov-hf", _llava_onevision(
        dict(layers=28, heads=28, kv_heads=4, head_dim=128, intermediate=18944), vocab=152128, tie=False)),
    "qwen2-vl-2b": Preset("qwen2_vl", "Qwen/Qwen2-VL-2B-Instruct", _qwen2_vl_2b),
    "qwen2.5-vl-3b": Preset("qwen2_5_vl", "Qwen/Qwen2.5-VL-3B-Instruct", _qwen2_5_vl_3b),
    "smolvlm2-2.2b": Preset("smolvlm", "HuggingFaceTB/SmolVLM2-2.2B-Instruct", _smolvlm2_2b),
}


def build(name: str, texts: list[str], scale: float = 1.0, seed: int = 0):
    """Preset `name` with random weights (seeded) and its real processor; `texts` train the tokenizer."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    torch.manual_seed(seed)
    return PRESETS[name].build(texts, scale)


def save_preset(name: str, texts: list[str], out: Path, scale: float = 1.0, seed: int = 0) -> Path:
    model, processor = build(name, texts, scale, seed)
    loading.save(model, processor, out)
    return Path(out)
