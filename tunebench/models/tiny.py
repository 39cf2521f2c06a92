"""Tiny, randomly initialised models of every family's exact architecture, built from config with a
tokenizer trained locally: what the tests and CPU benchmarks load through the same code path
(`loading.load`) a real checkpoint takes. Nothing is downloaded.

    model, processor = tiny.build("qwen2_vl", texts)      # then loading.save(model, processor, dir)
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
from tokenizers import models as bpe_models
from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    PreTrainedTokenizerFast,
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

from . import embedded, loading
from .families import FAMILIES

HIDDEN, HEADS, TEXT_LAYERS = 32, 2, 4
IMAGE = 32  # px; images are resized to this

# The special tokens each family's processor and chat format use, and its end of sequence.
QWEN_TOKENS = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
               "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"}
IDEFICS_TOKENS = {"image_token": "<image>", "fake_image_token": "<fake_token_around_image>",
                  "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>"}


def tokenizer(texts: list[str], specials: dict[str, str], eos: str, vocab_size: int = 400) -> PreTrainedTokenizerFast:
    tok = Tokenizer(bpe_models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fixed = ["<pad>", "<|im_start|>", "<|im_end|>", eos, *specials.values()]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(dict.fromkeys(fixed)),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts + ["User: Assistant:"], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token=eos,
                                   extra_special_tokens=specials, padding_side="left")


def _text_config(model_type: str, tok, **extra) -> dict:
    return {"model_type": model_type, "hidden_size": HIDDEN, "intermediate_size": 2 * HIDDEN,
            "num_hidden_layers": TEXT_LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": 1,
            "vocab_size": len(tok), "max_position_embeddings": 512, "pad_token_id": tok.pad_token_id,
            "eos_token_id": tok.eos_token_id, "bos_token_id": None, **extra}


def _qwen(config_class, model_class, processor_class, vision: dict):
    def build(texts: list[str]):
        tok = tokenizer(texts, QWEN_TOKENS, eos="<|im_end|>")
        ids = {f"{k}_id": tok.convert_tokens_to_ids(QWEN_TOKENS[t]) for k, t in
               [("image_token", "image_token"), ("video_token", "video_token"),
                ("vision_start_token", "vision_bos_token"), ("vision_end_token", "vision_eos_token")]}
        mrope = {"rope_type": "default", "mrope_section": [2, 2, 4], "rope_theta": 10000.0}
        config = config_class(text_config=_text_config("qwen2_vl_text" if config_class is Qwen2VLConfig else "qwen2_5_vl_text",
                                                       tok, rope_parameters=mrope),
                              vision_config={**vision, "depth": 1, "num_heads": HEADS, "patch_size": 8,
                                             "spatial_merge_size": 2, "temporal_patch_size": 2},
                              **ids)
        image_processor = Qwen2VLImageProcessorPil(patch_size=8, merge_size=2, temporal_patch_size=2,
                                                   size={"shortest_edge": IMAGE * IMAGE, "longest_edge": IMAGE * IMAGE})
        processor = loading.image_only(processor_class)(image_processor=image_processor, tokenizer=tok,
                                                         chat_template=FAMILIES["qwen2_vl"].chat_template)
        return model_class(config), processor
    return build


def _idefics3(config_class, model_class, image_processor_class, processor_class, family: str):
    """Idefics3 and SmolVLM: one layout (SigLIP, pixel-shuffle connector, Llama decoder)."""
    def build(texts: list[str]):
        tok = tokenizer(texts, IDEFICS_TOKENS, eos="<end_of_utterance>")
        config = config_class(
            vision_config={"hidden_size": HIDDEN, "intermediate_size": 2 * HIDDEN, "num_hidden_layers": 1,
                           "num_attention_heads": HEADS, "image_size": IMAGE, "patch_size": 8},
            text_config=_text_config("llama", tok), scale_factor=2,
            image_token_id=tok.convert_tokens_to_ids("<image>"))
        image_processor = image_processor_class(size={"longest_edge": IMAGE}, max_image_size={"longest_edge": IMAGE},
                                                do_image_splitting=False)
        # (32 px / 8 px patches)^2 = 16 patches, pixel-shuffled by scale 2: 4 image tokens
        processor = loading.image_only(processor_class)(image_processor=image_processor, tokenizer=tok,
                                                         image_seq_len=4, chat_template=FAMILIES[family].chat_template)
        return model_class(config), processor
    return build


def _llava_onevision(texts: list[str]):
    tok = embedded.train_tokenizer(texts, [], 400)
    arch = dict(hidden_size=HIDDEN, image_size=IMAGE, patch_size=8, vision_layers=1, text_layers=TEXT_LAYERS,
                heads=HEADS, kv_heads=1, vocab_size=400)
    return embedded.build_embedded(tok, arch, seed=torch.initial_seed())


BUILDERS = {
    "llava_onevision": _llava_onevision,
    "qwen2_vl": _qwen(Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor,
                      {"embed_dim": HIDDEN, "hidden_size": HIDDEN, "mlp_ratio": 2}),
    "qwen2_5_vl": _qwen(Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                        {"hidden_size": HIDDEN, "intermediate_size": 2 * HIDDEN, "out_hidden_size": HIDDEN,
                         "window_size": 16, "fullatt_block_indexes": [0]}),
    "idefics3": _idefics3(Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil, Idefics3Processor,
                          "idefics3"),
    "smolvlm": _idefics3(SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessorPil, SmolVLMProcessor,
                         "smolvlm"),
}


def build(family: str, texts: list[str], seed: int = 0):
    """A tiny random model of `family`'s architecture and its real processor."""
    torch.manual_seed(seed)
    return BUILDERS[family](texts)


def save_tiny(family: str, texts: list[str], out: Path, seed: int = 0) -> Path:
    model, processor = build(family, texts, seed)
    loading.save(model, processor, out)
    return Path(out)
