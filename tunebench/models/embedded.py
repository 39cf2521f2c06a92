"""The embedded model: a tiny LLaVA-OneVision made from config, with a byte-level BPE tokenizer
trained locally (no download), and the real LLaVA-OneVision processor."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
from tokenizers import models as bpe_models
from transformers import (
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessorPil,
    LlavaOnevisionProcessor,
    PreTrainedTokenizerFast,
)

from .families import LLAVA_OV_TEMPLATE
from .loading import image_only

IMAGE_TOKEN = "<image>"
END_OF_TURN = "<|im_end|>"
SPECIAL_TOKENS = ["<pad>", "<|im_start|>", END_OF_TURN, IMAGE_TOKEN, "<video>"]

# The chat template's role names open every turn the model sees: trained as often as there are
# texts, they become one token each instead of a dozen bytes per sample.
ROLE_WORDS = ["user", "assistant"]


def train_tokenizer(texts: list[str], words: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained offline. Answer words go in as lines of their own, else BPE learns to
    split them at line starts ("gree"+"n") and the model must spell common answers."""
    tok = Tokenizer(bpe_models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = texts + words + [" " + w for w in words] + ROLE_WORDS * len(texts)
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token=END_OF_TURN,
        extra_special_tokens={"image_token": IMAGE_TOKEN, "video_token": "<video>"},
        chat_template=LLAVA_OV_TEMPLATE,
        padding_side="left",
    )


def embedded_config(tokenizer: PreTrainedTokenizerFast, arch: dict) -> LlavaOnevisionConfig:
    hidden, image_size = arch["hidden_size"], arch["image_size"]
    vision = {
        "model_type": "siglip_vision_model",
        "hidden_size": hidden,
        "intermediate_size": 4 * hidden,
        "num_hidden_layers": arch["vision_layers"],
        "num_attention_heads": arch["heads"],
        "image_size": image_size,
        "patch_size": arch["patch_size"],
        "vision_use_head": False,  # LLaVA reads patch features; the pooling head would be dead weight
    }
    text = {
        "model_type": "qwen2",
        "hidden_size": hidden,
        "intermediate_size": 4 * hidden,
        "num_hidden_layers": arch["text_layers"],
        "num_attention_heads": arch["heads"],
        "num_key_value_heads": arch["kv_heads"],
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 256,
        "tie_word_embeddings": False,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    return LlavaOnevisionConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=[[image_size, image_size]],
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        tie_word_embeddings=False,
    )


def embedded_processor(tokenizer: PreTrainedTokenizerFast, image_size: int, patch_size: int):
    """The real LLaVA-OneVision processor with the PIL image processor (torchvision is optional)."""
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": image_size, "width": image_size},
        image_grid_pinpoints=[[image_size, image_size]],
        do_convert_rgb=True,
    )
    return image_only(LlavaOnevisionProcessor)(
        image_processor=image_processor,
        tokenizer=tokenizer,
        num_image_tokens=(image_size // patch_size) ** 2,
        vision_feature_select_strategy="full",
        chat_template=LLAVA_OV_TEMPLATE,
    )


def build_embedded(tokenizer: PreTrainedTokenizerFast, arch: dict, seed: int):
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(embedded_config(tokenizer, arch))
    processor = embedded_processor(tokenizer, arch["image_size"], arch["patch_size"])
    return model, processor
