"""Loading, saving and prompting LLaVA-OneVision models, and building the embedded one: a tiny
LLaVA-OneVision made from config with a locally trained tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessorPil,
    LlavaOnevisionProcessor,
    PreTrainedTokenizerFast,
)

IMAGE_TOKEN = "<image>"
END_OF_TURN = "<|im_end|>"
SPECIAL_TOKENS = ["<pad>", "<|im_start|>", END_OF_TURN, IMAGE_TOKEN, "<video>"]
# Qwen2 / LLaVA-OneVision chat layout, so the embedded model is prompted as the real one is.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def train_tokenizer(texts: list[str], words: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained offline. Answer words go in as lines of their own, else BPE learns to
    split them at line starts ("gree"+"n") and the model must spell common answers."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = texts + words + [" " + w for w in words]
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token=END_OF_TURN,
        extra_special_tokens={"image_token": IMAGE_TOKEN, "video_token": "<video>"},
        chat_template=CHAT_TEMPLATE,
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


class ImageOnlyLlavaOnevisionProcessor(LlavaOnevisionProcessor):
    """LLaVA-OneVision's processor without its video processor, which needs torchvision.
    transformers derives a processor's parts from its __init__ signature, hence the override."""

    def __init__(self, image_processor=None, tokenizer=None, num_image_tokens=None,
                 vision_feature_select_strategy=None, chat_template=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                         num_image_tokens=num_image_tokens,
                         vision_feature_select_strategy=vision_feature_select_strategy,
                         chat_template=chat_template, **kwargs)


def embedded_processor(tokenizer: PreTrainedTokenizerFast, image_size: int, patch_size: int) -> LlavaOnevisionProcessor:
    """The real LLaVA-OneVision processor with the PIL image processor (torchvision is optional)."""
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": image_size, "width": image_size},
        image_grid_pinpoints=[[image_size, image_size]],
        do_convert_rgb=True,
    )
    return ImageOnlyLlavaOnevisionProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        num_image_tokens=(image_size // patch_size) ** 2,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
    )


def build_embedded(tokenizer: PreTrainedTokenizerFast, arch: dict, seed: int):
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(embedded_config(tokenizer, arch))
    processor = embedded_processor(tokenizer, arch["image_size"], arch["patch_size"])
    return model, processor


def save(model, processor, out: Path) -> None:
    """save_pretrained for both; the processor's parts are saved separately because a processor
    without a video processor cannot save itself."""
    out = Path(out)
    model.save_pretrained(out, safe_serialization=True)
    processor.tokenizer.save_pretrained(out)
    processor.image_processor.save_pretrained(out)
    (out / "processor_extra.json").write_text(json.dumps({
        "num_image_tokens": processor.num_image_tokens,
        "vision_feature_select_strategy": processor.vision_feature_select_strategy,
    }))


def load(path: str | Path, dtype: torch.dtype = torch.float32):
    """Load a saved LLaVA-OneVision model and processor (safetensors only)."""
    path = Path(path)
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(path, dtype=dtype, use_safetensors=True)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path, padding_side="left")
    image_processor = LlavaOnevisionImageProcessorPil.from_pretrained(path)
    extra = json.loads((path / "processor_extra.json").read_text())
    processor = ImageOnlyLlavaOnevisionProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE, **extra
    )
    return model, processor


def prompt_text(processor, question: str) -> str:
    """The user turn with one image and the question, ending where the assistant's answer starts."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
