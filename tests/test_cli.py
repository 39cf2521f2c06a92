"""`tunebench prepare` and `tunebench score`: a dataset split and its scores without Snakemake, as a
user (or a checker) calls them; also for scoring another tool's outputs by tunebench's protocols."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from public_fixtures import PUBLIC, hub_spec, write_hub_folder
from workflow_helpers import ROOT

from tunebench.data import schema
from tunebench.files import read_json, write_jsonl


@pytest.fixture
def tunebench(tmp_path):
    """Run the command, with `datasets`' cache in the test's folder (it keys local folders by name)."""
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf_cache")}
    return lambda *args: subprocess.run([sys.executable, "-m", "tunebench.cli", *map(str, args)], capture_output=True,
                                        text=True, cwd=ROOT, env=env)


@pytest.fixture
def configfile(tmp_path):
    """A study config whose upstream set `okvqa` reads a Hub-style copy of OK-VQA."""
    public = PUBLIC["okvqa"]()
    hub = write_hub_folder(tmp_path / "okvqa", public)
    down = {"source": "synthetic", "task": "big_colour", "metric": "exact_match", "train_images": 1, "test_images": 2}
    config = {"study": "t", "seeds": [0], "models": {"m": {"family": "llava_onevision", "source": "hf", "path": "x"}},
              "datasets": {"okvqa": {**public.entry, "test": hub_spec(hub, public)}, "down": down},
              "upstream": ["okvqa"], "downstream": ["down"], "tuning": {"steps": 1, "batch_size": 1},
              "methods": {"last": {"kind": "last", "lr": 1e-3}}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_prepare_then_score_another_tools_outputs(tmp_path, configfile, tunebench):
    done = tunebench("prepare", "--configfile", configfile, "--dataset", "okvqa", "--split", "test",
                     "--out", tmp_path / "data")
    assert done.returncode == 0, done.stderr
    records = schema.read_split(tmp_path / "data" / "test.parquet")
    manifest = read_json(tmp_path / "data" / "test.manifest.json")
    assert [r["id"] for r in records] == ["2971475", "3007625"] and manifest["records"] == 2
    assert "2 records" in done.stdout

    # Another tool's outputs: "2" for "Two" x10 (100), "race" for 6x racing + 4x race (4 of 10 agree: 100).
    predictions = tmp_path / "other_tool.jsonl"
    write_jsonl([{"id": "2971475", "output": " 2 "}, {"id": "3007625", "output": "Race."}], predictions)
    done = tunebench("score", "--configfile", configfile, "--dataset", "okvqa", "--predictions", predictions,
                     "--test", tmp_path / "data" / "test.parquet")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    written = read_json(tmp_path / "other_tool.scores.json")
    assert printed == {k: v for k, v in written.items() if k not in ("items", "resampled")}
    assert printed["scores"] == {"accuracy": 100.0, "n": 2} and printed["metric"] == "vqa_accuracy"
    # the file also keeps each item's score (test-split order) and the score on each resample of the set
    assert written["items"] == {"id": ["2971475", "3007625"], "score": [100.0, 100.0]}
    assert len(written["resampled"]["primary"]) == 2000 and set(written["resampled"]["primary"]) == {100.0}
    assert printed["tokenizer"] is None and printed["protocol"] == "lmms_eval"

    out = tmp_path / "elsewhere.json"
    write_jsonl([{"id": "2971475", "output": "three"}, {"id": "3007625", "output": "racing"}], predictions)
    done = tunebench("score", "--configfile", configfile, "--dataset", "okvqa", "--predictions", predictions,
                     "--test", tmp_path / "data" / "test.parquet", "--out", out)
    assert done.returncode == 0 and read_json(out)["scores"]["accuracy"] == 50.0


def test_bad_input_is_one_line_naming_it(tmp_path, configfile, tunebench):
    done = tunebench("prepare", "--configfile", configfile, "--dataset", "gqa", "--out", tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"tunebench prepare: dataset 'gqa' is not in {configfile}; it has ['down', 'okvqa']"

    done = tunebench("prepare", "--configfile", configfile, "--dataset", "okvqa", "--split", "train", "--out", tmp_path)
    assert (done.returncode, done.stderr.strip()) == (
        2, "tunebench prepare: dataset 'okvqa': no source for split 'train' (config key datasets.okvqa.train)")

    assert tunebench("prepare", "--configfile", configfile, "--dataset", "okvqa", "--out", tmp_path).returncode == 0
    predictions = tmp_path / "p.jsonl"
    write_jsonl([{"id": "nope", "output": "2"}], predictions)
    done = tunebench("score", "--configfile", configfile, "--dataset", "okvqa", "--predictions", predictions,
                     "--test", tmp_path / "test.parquet")
    assert done.returncode == 2
    assert done.stderr.strip() == (f"tunebench score: {predictions}: 1 predictions for 2 test rows of 'okvqa'; "
                                   "unknown ids: ['nope']")
