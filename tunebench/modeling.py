"""Loading, saving and prompting models of every family (tunebench.models), and building the embedded
one: a tiny LLaVA-OneVision made from config with a locally trained tokenizer."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    CONFIG_MAPPING,
    AutoModelForImageTextToText,
    AutoProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessorPil,
    LlavaOnevisionProcessor,
    PretrainedConfig,
    PreTrainedTokenizerFast,
)

from .models import FAMILIES, LLAVA_OV_TEMPLATE, Family

IMAGE_TOKEN = "<image>"
END_OF_TURN = "<|im_end|>"
SPECIAL_TOKENS = ["<pad>", "<|im_start|>", END_OF_TURN, IMAGE_TOKEN, "<video>"]


# The chat template's role names open every turn the model sees: trained as often as there are
# texts, they become one token each instead of a dozen bytes per sample.
ROLE_WORDS = ["user", "assistant"]


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


def image_only(processor_class: type) -> type:
    """The family's processor without its video processor, which needs torchvision (the study is
    image-only). transformers derives a processor's parts from its __init__ signature, hence the
    subclass; processors that take no video processor are returned as they are."""
    signature = inspect.signature(processor_class.__init__)
    if "video_processor" not in signature.parameters:
        return processor_class

    settings = [name for name in signature.parameters if name not in ("self", "video_processor", "kwargs")]

    def __init__(self, *args, **kwargs):
        processor_class.__init__(self, *args, video_processor=None, **kwargs)

    @classmethod
    def from_args_and_dict(cls, args, processor_dict, **kwargs):
        # the saved settings (e.g. num_image_tokens) that the parent's __init__ takes
        given = {**processor_dict, **kwargs}
        return cls(*args, **{k: given[k] for k in settings[len(args):] if k in given})

    # what save_pretrained writes: the parent's settings
    __init__.__signature__ = signature.replace(
        parameters=[p for name, p in signature.parameters.items() if name != "video_processor"])
    return type(f"ImageOnly{processor_class.__name__}", (processor_class,),
                {"__init__": __init__, "from_args_and_dict": from_args_and_dict})


def save(model, processor, out: Path) -> None:
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def attention(requested: str) -> str:
    """"auto": FlashAttention-2 where it is installed and a GPU runs it, else PyTorch's SDPA."""
    if requested != "auto":
        return requested
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


class RemoteCodeRefused(ValueError):
    pass


def needs_remote_code(path: str | Path) -> bool:
    """Whether a checkpoint's model code ships with it (config.json maps Auto classes to its files)."""
    config, _ = PretrainedConfig.get_config_dict(str(path))
    return "auto_map" in config and config.get("model_type") not in CONFIG_MAPPING


def load(path: str | Path, fam: Family | None = None, dtype: torch.dtype = torch.float32,
         attn_implementation: str | None = None, trust_remote_code: bool = False):
    """Load a model and its processor from an HF id or a local directory, safetensors only.
    Custom-code checkpoints (VILA) load only with the model's explicit opt-in."""
    fam = fam or FAMILIES["llava_onevision"]
    if needs_remote_code(path) and not trust_remote_code:
        raise RemoteCodeRefused(
            f"{path}: this checkpoint runs its own Python code (config.json has an auto_map); "
            f"set trust_remote_code: true in its models entry if you trust it")
    common = {"trust_remote_code": trust_remote_code} if trust_remote_code else {}
    model = AutoModelForImageTextToText.from_pretrained(
        path, dtype=dtype, use_safetensors=True, attn_implementation=attn_implementation, **common)
    if fam.processor_class is None:
        processor = AutoProcessor.from_pretrained(path, **common)
    else:
        processor = image_only(getattr(transformers, fam.processor_class)).from_pretrained(path)
    processor.tokenizer.padding_side = "left"  # batched generation: every answer starts at the same column
    if processor.chat_template is None:
        processor.chat_template = fam.chat_template
    return model, processor


def _render(processor, messages: list[dict], add_generation_prompt: bool) -> str:
    return processor.tokenizer.apply_chat_template(messages, chat_template=processor.chat_template,
                                                   add_generation_prompt=add_generation_prompt, tokenize=False)


def _user_turn(question: str) -> dict:
    return {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}


def prompt_text(processor, question: str) -> str:
    """The user turn with one image and the question, ending where the assistant's answer starts."""
    return _render(processor, [_user_turn(question)], add_generation_prompt=True)


def answer_text(processor, question: str, answer: str) -> str:
    """What follows the prompt when the assistant answers, in the family's chat format, up to and
    including its end-of-turn token (e.g. "red<|im_end|>" or " red<end_of_utterance>")."""
    prompt = prompt_text(processor, question)
    full = _render(processor, [_user_turn(question), {"role": "assistant", "content": [{"type": "text", "text": answer}]}],
                   add_generation_prompt=False)
    if not full.startswith(prompt):
        raise ValueError(f"chat template: the answered conversation does not extend the prompt {prompt!r}")
    return full[len(prompt):].rstrip("\n")
