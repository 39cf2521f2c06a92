import shutil

import pytest
from tuning_helpers import DOWNSTREAM
from workflow_helpers import edited_small, snakemake, write_own_data

from tunebench.data import schema, sources, world
from tunebench.models import embedded, loading

TINY_ARCH = dict(hidden_size=32, image_size=48, patch_size=16, vision_layers=1, text_layers=4, heads=2,
                 kv_heads=1, vocab_size=400)


@pytest.fixture(scope="session")
def tiny_records():
    return {task: world.generate(task, 6, seed=0, split="train") for task in world.TASKS}


def build_tiny_model(tiny_records):
    """A randomly initialised tiny LLaVA-OneVision and its processor, built from config offline."""
    records = [r for rs in tiny_records.values() for r in rs]
    texts = [r["question"] for r in records] + [a for r in records for a in r["answers"]]
    tokenizer = embedded.train_tokenizer(texts, list(world.COLOURS) + list(world.SHAPES), TINY_ARCH["vocab_size"])
    return embedded.build_embedded(tokenizer, TINY_ARCH, seed=0)


@pytest.fixture
def tiny_model(tiny_records):
    """A randomly initialised tiny LLaVA-OneVision and its processor, built from config offline."""
    return build_tiny_model(tiny_records)


@pytest.fixture(scope="session")
def shared_tiny_model(tiny_records):
    """The same tiny model, built once, for tests that only generate with it (never train it)."""
    return build_tiny_model(tiny_records)


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """`datasets` caches what load_dataset reads (keyed by folder, not content): keep it in the test's folder."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    """The small study (tests/config/small.yaml) run once through the real workflow: (workdir, results)."""
    workdir = tmp_path_factory.mktemp("study")
    write_own_data(workdir)
    (workdir / "run.log").write_text(snakemake(workdir))
    return workdir, workdir / "results" / "small"


@pytest.fixture(scope="session")
def parallel_tuning(study, tmp_path_factory):
    """Two tuning jobs of a copy of the finished small study, 60 steps each, run side by side by
    Snakemake (--cores 2) with its output piped (not a terminal), printing a progress line at every
    1% and logging to TensorBoard: (workdir, Snakemake's output, the tracking folder)."""
    workdir = tmp_path_factory.mktemp("parallel")
    shutil.copytree(study[0], workdir, dirs_exist_ok=True, symlinks=True)

    def longer_runs_reported_often(config):
        config["tuning"]["steps"] = 60
        config["progress"] = {"percent": 1}
        config["tracking"] = {"trackers": ["tensorboard"], "dir": str(workdir / "tracking")}

    configfile = edited_small(workdir / "parallel.yaml", longer_runs_reported_often)
    runs = [f"results/small/tune/tiny/{method}/big_count/seed0/run.json" for method in ("lora", "last")]
    return workdir, snakemake(workdir, *runs, configfile=configfile), workdir / "tracking"


@pytest.fixture(scope="session")
def tuning_inputs(tmp_path_factory, tiny_records):
    """A saved tiny base model and a downstream train split, as the workflow would have them
    (tests/tuning_helpers.py starts runs on them)."""
    root = tmp_path_factory.mktemp("tuning")
    model, processor = build_tiny_model(tiny_records)
    loading.save(model, processor, root / "base")
    frame, _manifest = sources.prepare("big_count", DOWNSTREAM, "train", 0)
    schema.write_split(frame, root / "train.parquet")
    return root
