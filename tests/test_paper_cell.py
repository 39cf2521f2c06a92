"""One cell of the paper's protocol end to end through Snakemake at real input sizes: the reduced
LLaVA-OneVision-0.5B preset (its real processor: 384 px tiles, anyres_max_9, 729 tokens a tile),
640x480 photos (anyres makes 4 tiles plus the base image), ScienceQA and OK-VQA in their public
schemas (Hub-style folders), tuned in epochs with micro-batches and DataLoader workers."""

import dataclasses
import json

import polars as pl
import pytest
import yaml
from public_fixtures import hub_spec, okvqa, scienceqa, write_hub_folder
from workflow_helpers import snakemake

from tunebench.data.photos import photo
from tunebench.models import inputs, loading, presets


def _with_photos(public, split: str, rows: list[dict], image_key: str = "image"):
    """The public rows with 640x480 photos for images."""
    rows = [{**row, image_key: {"bytes": photo(i)[0], "path": None}} for i, row in enumerate(rows)]
    return dataclasses.replace(public, split=split, rows=rows)


@pytest.fixture(scope="module")
def paper_cell(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_cell")
    sqa, ok = scienceqa(), okvqa()
    parts = {"sqa_train": _with_photos(sqa, "train", sqa.rows + sqa.rows[:1]),  # 4 questions
             "sqa_test": _with_photos(sqa, "test", sqa.rows), "okvqa": _with_photos(ok, ok.split, ok.rows)}
    specs = {name: hub_spec(write_hub_folder(root / name, public), public) for name, public in parts.items()}
    texts = [r["question"] for r in sqa.rows + ok.rows] + ["A", "B", "C", "Two", "racing"]
    base = presets.save_preset("llava-ov-0.5b", texts, root / "base", scale=0.05)
    config = {
        "study": "paper_cell", "seeds": [0], "data_seed": 0,
        "models": {"llava_ov": {"family": "llava_onevision", "source": "hf", "path": str(base), "micro_batch_size": 1,
                                "num_workers": 1, "predict_batch_size": 2}},
        "datasets": {"scienceqa": {**sqa.entry, "train": specs["sqa_train"], "test": specs["sqa_test"]},
                     "okvqa": {**ok.entry, "test": specs["okvqa"]}},
        "upstream": ["okvqa"], "downstream": ["scienceqa"],
        "tuning": {"epochs": 1, "batch_size": 2, "warmup": 0, "replay": 0.0, "max_grad_norm": 1.0},
        "methods": {"lora": {"kind": "lora", "lr": 1.0e-4, "r": 4, "alpha": 8, "targets": ["q_proj", "v_proj"]}},
        "checkpoint_every": 1, "keep_tuned_weights": True,
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    workdir = root / "work"
    workdir.mkdir()
    snakemake(workdir, configfile=root / "config.yaml")
    return base, workdir / "results" / "paper_cell"


def test_the_photos_make_several_anyres_tiles(paper_cell):
    base, _ = paper_cell
    model, processor = loading.load(base)
    record = {"image": photo(0)[0], "question": "What is this?", "answers": ["cat"], "task_type": "exact"}
    batch = inputs.Batched([record], processor, with_targets=False)[[0]]
    assert batch["pixel_values"].shape[1:] == (5, 3, 384, 384)  # the base image and 4 tiles of 384 px
    assert batch["input_ids"].shape[1] > 2500  # image tokens: 729 for the base image, ~2,000 for the tiles


def test_one_paper_cell_runs_end_to_end(paper_cell):
    _, results = paper_cell
    cell = json.loads((results / "cells" / "llava_ov" / "lora" / "scienceqa.json").read_text())
    seed = cell["seeds"]["0"]
    assert set(seed["upstream"]) == {"okvqa"} and {"E", "F", "O"} <= set(seed)
    run = json.loads((results / "tune" / "llava_ov" / "lora" / "scienceqa" / "seed0" / "run.json").read_text())
    assert run["steps"] == 2 and run["global_batch_size"] == 2  # 1 epoch of 4 questions in batches of 2
    assert run["micro_batch_size"] == 1 and run["accumulation_steps"] == 2 and run["oom_halvings"] == []
    assert run["num_workers"] == 1 and run["distributed"] == "ddp" and run["num_processes"] == 1
    predictions = results / "predictions" / "llava_ov" / "lora" / "scienceqa" / "seed0"
    rows = [json.loads(line) for line in (predictions / "scienceqa.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and "Answer with the option's letter from the given choices directly." in rows[0]["prompt"]
    assert len((predictions / "okvqa.jsonl").read_text().splitlines()) == 2
    assert json.loads((predictions / "run.json").read_text())["final_batch_size"] == 2
    assert "lora" in pl.read_csv(results / "tables" / "llava_ov.csv")["method"].to_list()
