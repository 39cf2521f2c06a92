"""Loading and saving models of every family (tunebench.models.families) from an HF id or a local
directory: safetensors only, checkpoint code only by explicit opt-in."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import torch
import transformers
from transformers import (
    CONFIG_MAPPING,
    AutoModelForImageTextToText,
    AutoProcessor,
    PretrainedConfig,
)

from .families import FAMILIES, Family, family


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


def load_base(spec: dict, base: str | Path, training: bool = False):
    """A models entry's base model from `base`: the embedded model's pretrained directory, or the
    HF id / local directory an `hf` entry names. Training keeps fp32 weights (and autocasts to
    `precision`); prediction loads the weights in `precision`."""
    dtype = DTYPES["fp32" if training else spec["precision"]]
    return load(base, family(spec["family"]), dtype=dtype, attn_implementation=attention(spec["attn_implementation"]),
                trust_remote_code=spec["trust_remote_code"])
