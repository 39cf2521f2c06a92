"""A tiny VILA-shaped model shipped as checkpoint code (loaded only with trust_remote_code): the
layout of VILA's llava_arch.py (vision_tower, mm_projector, llm) around real transformers parts."""

from torch import nn
from transformers import (
    GenerationMixin,
    PretrainedConfig,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
    SiglipVisionConfig,
    SiglipVisionModel,
)


class TinyVilaConfig(PretrainedConfig):
    model_type = "tiny_vila"

    def __init__(self, vision=None, text=None, image_token_id=0, **kwargs):
        self.vision = vision or {}
        self.text = text or {}
        self.image_token_id = image_token_id
        super().__init__(**kwargs)

    def get_text_config(self, *args, **kwargs):  # generation sizes its KV cache from the LLM's config
        return Qwen2Config(**self.text)


class TinyVilaForConditionalGeneration(PreTrainedModel, GenerationMixin):
    config_class = TinyVilaConfig
    base_model_prefix = ""
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config):
        super().__init__(config)
        text = Qwen2Config(**config.text)
        self.vision_tower = SiglipVisionModel(SiglipVisionConfig(**config.vision))
        width = config.vision["hidden_size"]
        self.mm_projector = nn.Sequential(nn.Linear(width, text.hidden_size), nn.GELU(), nn.Linear(text.hidden_size, text.hidden_size))
        self.llm = Qwen2ForCausalLM(text)
        self.post_init()

    def get_input_embeddings(self):
        return self.llm.get_input_embeddings()

    def forward(self, input_ids=None, attention_mask=None, pixel_values=None, inputs_embeds=None, **kwargs):
        if inputs_embeds is None:
            inputs_embeds = self.llm.get_input_embeddings()(input_ids)
            if pixel_values is not None:
                features = self.mm_projector(self.vision_tower(pixel_values.to(inputs_embeds.dtype)).last_hidden_state)
                mask = (input_ids == self.config.image_token_id).unsqueeze(-1)
                inputs_embeds = inputs_embeds.masked_scatter(mask, features.reshape(-1, features.shape[-1]))
        return self.llm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs)

    def prepare_inputs_for_generation(self, input_ids, pixel_values=None, **kwargs):
        inputs = super().prepare_inputs_for_generation(input_ids, **kwargs)
        if inputs.get("past_key_values") is None or inputs["past_key_values"].get_seq_length() == 0:
            inputs["pixel_values"] = pixel_values  # the image enters with the prompt only
        return inputs
