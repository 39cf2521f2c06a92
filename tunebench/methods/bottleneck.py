"""A bottleneck adapter (Houlsby et al. 2019, one per block after the MLP as in Pfeiffer et al.
2021): peft has no classic adapter for decoder models, so it lives here. It is attached with a
forward hook, so the base model's parameter names stay as they are and tuned weights load onto a
freshly loaded base after `attach` has run again."""

from __future__ import annotations

import torch
from torch import nn

ADAPTER = "adapter"


class Bottleneck(nn.Module):
    """h + up(gelu(down(h))); `up` starts at zero, so an untrained adapter is the identity."""

    def __init__(self, hidden: int, size: int):
        super().__init__()
        self.down = nn.Linear(hidden, size)
        self.up = nn.Linear(size, hidden)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(nn.functional.gelu(self.down(h)))


def _residual_adapter(module, args, output):
    return getattr(module, ADAPTER)(output)


def attach(layers: nn.ModuleList, size: int) -> list[str]:
    """Adds an adapter after every decoder block's MLP; returns the adapters' module names."""
    names = []
    for i, layer in enumerate(layers):
        reference = layer.mlp.down_proj.weight
        layer.mlp.add_module(ADAPTER, Bottleneck(reference.shape[0], size).to(reference))
        layer.mlp.register_forward_hook(_residual_adapter)
        names.append(f"{i}.mlp.{ADAPTER}")
    return names
