"""The real workflow, through Snakemake, on a shrunken embedded study (tests/config/small.yaml)."""

import json

import polars as pl
import pytest
import yaml
from PIL import Image

from workflow_helpers import SMALL, planned_jobs, snakemake


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    snakemake(workdir)
    return workdir, workdir / "results" / "small"


def test_the_table_holds_every_cell(study):
    _, results = study
    table = pl.read_csv(results / "tables" / "tiny.csv")
    rows = {(r["method"], r["dataset"]) for r in table.to_dicts()}
    assert rows == {("lora", "big_count"), ("last", "big_count"), ("lora", "mean"), ("last", "mean")}
    markdown = (results / "tables" / "tiny.md").read_text()
    assert "E = A_down(tuned) - A_down(zero-shot)" in markdown and "| lora |" in markdown
    assert "\\toprule" in (results / "tables" / "tiny.tex").read_text()
    assert Image.open(results / "plots" / "tiny_tradeoff.png").size[0] > 100


def test_a_cell_records_scores_before_and_after_and_what_the_run_did(study):
    _, results = study
    cell = json.loads((results / "cells" / "tiny" / "last" / "big_count.json").read_text())
    seed = cell["seeds"]["0"]
    assert set(seed["upstream"]) == {"shapes_vqa", "shapes_yesno", "shapes_caption"}
    assert seed["E"] == pytest.approx(seed["downstream"]["after"] - seed["downstream"]["before"])
    changes = [u["after"] - u["before"] for u in seed["upstream"].values()]
    assert seed["F"] == pytest.approx(sum(changes) / len(changes))
    assert seed["O"] == pytest.approx(seed["E"] + seed["F"])
    run = json.loads((results / "tune" / "tiny" / "last" / "big_count" / "seed0" / "run.json").read_text())
    assert seed["trainable_params"] == run["trainable_params"] == sum(run["trainable"].values())
    assert all(n.startswith("model.language_model.layers.3.") for n in run["trainable"])
    assert run["train_seconds"] > 0 and run["peak_memory_mb"] > 0 and run["environment"]["libraries"]["torch"]
    log = (results / "tune" / "tiny" / "last" / "big_count" / "seed0" / "train_log.jsonl").read_text().splitlines()
    assert len(log) == 4 and {"step", "loss", "lr", "samples_per_s"} <= set(json.loads(log[0]))


def test_predictions_are_files_with_id_prompt_and_output(study):
    _, results = study
    path = results / "predictions" / "tiny" / "lora" / "big_count" / "seed0" / "shapes_vqa.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows and all(set(r) == {"id", "prompt", "output"} for r in rows)
    scores = json.loads((results / "scores" / "tiny" / "lora" / "big_count" / "seed0.json").read_text())
    assert scores["shapes_vqa"]["scores"]["n"] == len(rows)


def test_a_finished_study_has_nothing_to_do(study):
    workdir, _ = study
    assert planned_jobs(snakemake(workdir, "-n")) == []


def test_changing_one_methods_lr_reruns_only_that_method(study, tmp_path):
    workdir, _ = study
    config = yaml.safe_load(SMALL.read_text())
    config["methods"]["last"]["lr"] = 5.0e-3
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(workdir, "-n", configfile=changed))
    rules = sorted(rule for rule, _ in jobs)
    assert rules == ["all", "cell", "predict_tuned", "score", "tables", "tune"]
    for rule, wildcards in jobs:
        if rule in {"tune", "predict_tuned", "cell"}:
            assert wildcards["method"] == "last"
        if rule == "score":
            assert wildcards["run"] == "last"


def test_one_cell_is_rebuilt_by_asking_for_its_file(study):
    workdir, results = study
    cell = results / "cells" / "tiny" / "lora" / "big_count.json"
    before = json.loads(cell.read_text())
    cell.unlink()
    target = str(cell.relative_to(workdir))
    assert planned_jobs(snakemake(workdir, "-n", target)) == [("cell", {"model": "tiny", "method": "lora",
                                                                       "dataset": "big_count"})]
    snakemake(workdir, target)
    assert json.loads(cell.read_text())["mean"] == before["mean"]


def test_sweeps_become_cells_and_wise_alphas_reuse_the_tuned_run(study, tmp_path):
    workdir, results = study
    config = yaml.safe_load(SMALL.read_text())
    config["methods"]["sparse"] = {"kind": "sparse", "mask": "random", "lr": 3e-3, "ratio": [0.05, 0.2]}
    config["methods"]["last_wise"] = {"kind": "last", "lr": 2.0e-3, "wise_alpha": [0.0, 0.5]}
    swept = tmp_path / "swept.yaml"
    swept.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(workdir, "-n", configfile=swept))
    by_rule = lambda rule: sorted(w.get("method", w.get("run")) for r, w in jobs if r == rule)
    assert by_rule("tune") == ["sparse@0.05", "sparse@0.2"]  # the WiSE-FT alphas reuse last's run
    assert by_rule("predict_tuned") == by_rule("cell") == ["last_wise@0.0", "last_wise@0.5", "sparse@0.05", "sparse@0.2"]
    # WiSE-FT at alpha 0 predicts what the base model predicts, from last's tuned run.
    cell = results / "cells" / "tiny" / "last_wise@0.0" / "big_count.json"
    snakemake(workdir, str(cell.relative_to(workdir)), configfile=swept)
    seed = json.loads(cell.read_text())["seeds"]["0"]
    assert seed["E"] == 0 and seed["F"] == 0
    for name in ("big_count", "shapes_vqa"):
        wise = (results / "predictions" / "tiny" / "last_wise@0.0" / "big_count" / "seed0" / f"{name}.jsonl").read_text()
        assert wise == (results / "predictions" / "tiny" / "zeroshot" / "all" / "seed0" / f"{name}.jsonl").read_text()
