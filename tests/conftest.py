import pytest

from tunebench import modeling, world

TINY_ARCH = dict(hidden_size=32, image_size=48, patch_size=16, vision_layers=1, text_layers=4, heads=2,
                 kv_heads=1, vocab_size=400)


@pytest.fixture(scope="session")
def tiny_records():
    return {task: world.generate(task, 6, seed=0, split="train") for task in world.TASKS}


def build_tiny(tiny_records):
    """A randomly initialised tiny LLaVA-OneVision and its processor, built from config offline."""
    records = [r for rs in tiny_records.values() for r in rs]
    texts = [r["question"] for r in records] + [a for r in records for a in r["answers"]]
    tokenizer = modeling.train_tokenizer(texts, list(world.COLOURS) + list(world.SHAPES), TINY_ARCH["vocab_size"])
    return modeling.build_embedded(tokenizer, TINY_ARCH, seed=0)


@pytest.fixture
def tiny_model(tiny_records):
    return build_tiny(tiny_records)
