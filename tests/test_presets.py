"""Real-architecture presets: at full size they have the published checkpoints' parameter counts
(built on the meta device: no memory); reduced, they save, load as a checkpoint does, and process a
640x480 photo the way the real processor tiles it."""

import pytest
import torch

from tunebench.data.photos import photo
from tunebench.models import families, inputs, loading, presets
from tunebench.train.loop import batch_losses

# Parameters of the published checkpoints (their model cards / safetensors metadata), in billions.
PUBLISHED = {"llava-ov-0.5b": 0.894, "llava-ov-7b": 8.03, "qwen2-vl-2b": 2.21, "qwen2.5-vl-3b": 3.75,
             "smolvlm2-2.2b": 2.25}
# What the real processor makes of one 640x480 photo: image tensors' shapes.
TILING = {
    "llava-ov-0.5b": {"pixel_values": (1, 5, 3, 384, 384)},       # base image + 2 x 2 tiles of 384 px
    "llava-ov-7b": {"pixel_values": (1, 5, 3, 384, 384)},
    "qwen2-vl-2b": {"image_grid_thw": (1, 3)},                   # native resolution: 34 x 46 patches of 14 px
    "qwen2.5-vl-3b": {"image_grid_thw": (1, 3)},
    "smolvlm2-2.2b": {"pixel_values": (1, 13, 3, 384, 384)},     # 3 x 4 tiles of 384 px + the whole image
}
TEXTS = ["What is the main colour of the picture?", "red", "green"]


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_a_full_size_preset_has_the_published_checkpoints_size(name):
    with torch.device("meta"):
        model, _ = presets.build(name, TEXTS)
    assert sum(p.numel() for p in model.parameters()) / 1e9 == pytest.approx(PUBLISHED[name], rel=0.01)


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_a_reduced_preset_loads_as_a_checkpoint_and_tiles_a_photo_as_the_real_processor(name, tmp_path):
    preset = presets.PRESETS[name]
    path = presets.save_preset(name, TEXTS, tmp_path / name, scale=0.05)
    model, processor = loading.load(path, families.family(preset.family))
    assert type(model).__name__ == type(presets.build(name, TEXTS, scale=0.05)[0]).__name__
    assert sum(p.numel() for p in model.parameters()) < 2e6
    record = {"image": photo(0)[0], "question": TEXTS[0], "answers": ["red"], "task_type": "exact"}
    data = inputs.Batched([record], processor, with_targets=True)
    batch = data[[0]]
    for key, shape in TILING[name].items():
        assert tuple(batch[key].shape) == shape, key
    if "image_grid_thw" in batch:
        assert batch["image_grid_thw"].tolist() == [[1, 34, 46]]
    labels = batch.pop("labels")
    assert torch.isfinite(batch_losses(model, batch, labels)).all()
    if hasattr(processor, "_get_num_multimodal_tokens"):  # the length estimate batching sorts on
        assert data.lengths() == [batch["input_ids"].shape[1]]


def test_presets_keep_the_real_chat_templates(tmp_path):
    qwen = presets.build("qwen2-vl-2b", TEXTS, scale=0.05)[1]
    prompt = inputs.Encoder(qwen, with_targets=False).prompt("Q?")
    assert prompt == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                      "<|vision_start|><|image_pad|><|vision_end|>Q?<|im_end|>\n<|im_start|>assistant\n")
    llava = presets.build("llava-ov-0.5b", TEXTS, scale=0.05)[1]
    assert inputs.Encoder(llava, with_targets=False).prompt("Q?") == \
        "<|im_start|>user\n<image>\nQ?<|im_end|>\n<|im_start|>assistant\n"
    with pytest.raises(ValueError, match="scale"):
        presets.build("llava-ov-0.5b", TEXTS, scale=2)
