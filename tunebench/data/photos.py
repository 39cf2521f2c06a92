"""Photo-sized test images drawn here (no download): a colour gradient with noise and ellipses, the
size of a real photo (640x480 by default), so a processor tiles it as it tiles real data (LLaVA-
OneVision's anyres makes 4 tiles plus the base image of one). For tests and benchmarks."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {"red": (200, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 200), "yellow": (220, 200, 40)}


def photo(i: int, width: int = 640, height: int = 480) -> tuple[bytes, str]:
    """JPEG bytes seeded by `i`, and the picture's main colour (a name of COLOURS)."""
    rng = np.random.default_rng(i)
    name = list(COLOURS)[i % len(COLOURS)]
    ramp = np.linspace(0.6, 1.0, width)[None, :, None] * np.linspace(0.7, 1.0, height)[:, None, None]
    pixels = np.array(COLOURS[name], dtype=float) * ramp + rng.normal(0, 12, (height, width, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype("uint8"))
    draw = ImageDraw.Draw(image)
    for _ in range(5):
        x, y = rng.integers(0, width - 80), rng.integers(0, height - 80)
        draw.ellipse([x, y, x + rng.integers(20, 80), y + rng.integers(20, 80)], fill=tuple(rng.integers(0, 255, 3).tolist()))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue(), name
