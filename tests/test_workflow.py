"""The real workflow, through Snakemake, on a shrunken embedded study (the `study` fixture in conftest.py)."""

import json
import os
import re
import shutil
import subprocess
import sys

import polars as pl
import pytest
import yaml
from PIL import Image
from workflow_helpers import ROOT, SMALL, copy_of_repo, planned_jobs, snakemake

from tunebench.evaluation import metrics


def test_the_table_holds_every_cell(study):
    _, results = study
    table = pl.read_csv(results / "tables" / "tiny.csv")
    rows = {(r["method"], r["dataset"]) for r in table.to_dicts()}
    assert rows == {(m, d) for m in ("lora", "last", "boom") for d in ("big_count", "mean")}
    markdown = (results / "tables" / "tiny.md").read_text()
    assert "E = A_down(tuned) - A_down(zero-shot)" in markdown and "| lora |" in markdown
    assert "\\toprule" in (results / "tables" / "tiny.tex").read_text()
    assert Image.open(results / "plots" / "tiny_tradeoff.png").size[0] > 100


def test_a_cell_records_scores_before_and_after_and_what_the_run_did(study):
    _, results = study
    cell = json.loads((results / "cells" / "tiny" / "last" / "big_count.json").read_text())
    seed = cell["seeds"]["0"]
    assert set(seed["upstream"]) == {"shapes_vqa", "shapes_yesno", "shapes_caption", "own_colour"}
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


def test_every_job_ends_with_a_summary_line(study):
    workdir, _ = study
    log = (workdir / "run.log").read_text()
    steps = int(re.search(r"(\d+) of \1 steps \(100%\) done", log).group(1))
    summaries = re.findall(r"^\[tunebench\] done (\w+) (.*): (.*) \((\d+\.\d) s\)$", log, re.M)
    assert len(summaries) == steps - 1  # every job but the target rule `all`
    assert ("tune", "tiny/last/big_count seed 0") in {(rule, what) for rule, what, _, _ in summaries}
    cell = next(result for rule, what, result, _ in summaries if what == "tiny/lora/big_count" and rule == "cell")
    assert re.fullmatch(r"E -?\d+\.\d, F -?\d+\.\d, O -?\d+\.\d over 1 seed\(s\)", cell)
    assert all(float(seconds) > 0 for *_, seconds in summaries)


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


def test_without_a_configfile_the_embedded_study_runs_and_config_overrides_its_keys(tmp_path):
    repo = copy_of_repo(tmp_path)
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--config", "study=other"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=repo, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = planned_jobs(done.stdout)
    assert {rule for rule, _ in jobs} >= {"pretrain", "tune", "tune_weights", "predict_tuned", "cell", "tables"}
    assert "results/other/tables/tiny_llava_ov.md" in done.stdout and "results/embedded/" not in done.stdout


def test_the_paper_grid_plans_without_weights_or_data(tmp_path):
    jobs = planned_jobs(snakemake(tmp_path, "-n", configfile=ROOT / "config" / "paper.yaml"))
    counts = {rule: sum(r == rule for r, _ in jobs) for rule, _ in jobs}
    # 2 models x 5 methods (2 adapter, 3 weight) x 6 downstream sets x 1 seed; 6 train + 12 test splits;
    # zero-shot one job per model (and seed) over every eval set; no pretraining
    assert counts == {"prepare": 18, "predict_zeroshot": 2, "tune": 24, "tune_weights": 36, "predict_tuned": 60,
                      "score": 62, "cell": 60, "figures": 2, "tables": 2, "tradeoff": 2, "all": 1}
    assert {w["model"] for r, w in jobs if r == "tune"} == {"llava_ov_7b", "vila_3b"}
    assert not any(r == "prepare" and w["split"] == "train" and w["name"] in ("mme", "gqa") for r, w in jobs)


def test_changing_one_methods_lr_reruns_only_that_method(study, tmp_path):
    workdir, _ = study
    config = yaml.safe_load(SMALL.read_text())
    config["methods"]["last"]["lr"] = 5.0e-3
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(workdir, "-n", configfile=changed))
    rules = sorted(rule for rule, _ in jobs)
    assert rules == ["all", "cell", "figures", "predict_tuned", "score", "tables", "tradeoff", "tune_weights"]
    for rule, wildcards in jobs:
        if rule in {"tune_weights", "predict_tuned", "cell"}:
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


def test_a_diverged_cell_is_missing_with_its_step_and_the_others_are_fine(study):
    _, results = study
    run = json.loads((results / "tune" / "tiny" / "boom" / "big_count" / "seed0" / "run.json").read_text())
    assert run["diverged"]["step"] >= 1 and "loss became" in run["diverged"]["reason"]
    cell = json.loads((results / "cells" / "tiny" / "boom" / "big_count.json").read_text())
    assert cell["mean"] is None and f"diverged at step {run['diverged']['step']}" in cell["missing_reason"]
    table = pl.read_csv(results / "tables" / "tiny.csv")
    boom = table.filter(pl.col("method") == "boom")
    assert boom["E_mean"].is_null().all()
    assert table.filter(pl.col("method") != "boom")["E_mean"].is_not_null().all()
    assert f"boom / big_count: all seeds diverged; seed 0: diverged at step {run['diverged']['step']}" in \
        (results / "tables" / "tiny.md").read_text()


def test_without_keep_tuned_weights_weights_go_and_adapters_and_checkpoints_are_handled(study):
    _, results = study
    runs = results / "tune" / "tiny"
    assert not (runs / "last" / "big_count" / "seed0" / "tuned_weights.safetensors").exists()
    assert (runs / "lora" / "big_count" / "seed0" / "adapter" / "adapter_model.safetensors").exists()
    # small.yaml checkpoints every 2 of 4 steps; a finished run leaves no checkpoint behind.
    assert not list(results.rglob("*.checkpoint.pt"))


def test_adding_a_method_and_a_dataset_runs_only_the_new_cells(study, tmp_path):
    workdir, _ = study
    config = yaml.safe_load(SMALL.read_text())
    config["methods"]["top"] = {"kind": "top", "k": 1, "lr": 1.0e-3}
    config["datasets"]["big_colour"] = {"source": "synthetic", "task": "big_colour", "metric": "exact_match",
                                        "train_images": 40, "test_images": 12}
    config["downstream"].append("big_colour")
    grown = tmp_path / "grown.yaml"
    grown.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(workdir, "-n", configfile=grown))
    new = lambda w: w.get("method", w.get("run")) == "top" or "big_colour" in (w.get("dataset"), w.get("train"))
    for rule, w in jobs:
        if rule in {"tune", "tune_weights", "predict_tuned"} or (rule == "score" and w["run"] != "zeroshot"):
            assert new(w), (rule, w)
        if rule == "prepare":
            assert w["name"] == "big_colour", (rule, w)
    # The base model answers every set in one job per seed: it is asked and scored again, once, and
    # every cell is re-aggregated from those scores (seconds each); no old cell's tuning or tuned
    # prediction runs again.
    assert [w for rule, w in jobs if rule == "predict_zeroshot"] == [{"model": "tiny", "seed": "0"}]
    assert [w["train"] for rule, w in jobs if rule == "score" and w["run"] == "zeroshot"] == ["all"]
    assert sorted({rule for rule, _ in jobs}) == ["all", "cell", "figures", "predict_tuned", "predict_zeroshot",
                                                  "prepare", "score", "tables", "tradeoff", "tune", "tune_weights"]
    # top on both downstream sets, the three old methods on big_colour, and the three old cells
    assert len([1 for rule, _ in jobs if rule == "cell"]) == 5 + 3


def test_sweeps_become_cells_and_wise_alphas_reuse_the_tuned_run(study, tmp_path):
    # A copy: small.yaml keeps no tuned weights, so building a WiSE-FT cell retrains last's run,
    # which would leave the shared study with work to do.
    workdir = tmp_path / "study"
    shutil.copytree(study[0], workdir, symlinks=True)
    results = workdir / "results" / "small"
    config = yaml.safe_load(SMALL.read_text())
    config["methods"]["sparse"] = {"kind": "sparse", "mask": "random", "lr": 3e-3, "ratio": [0.05, 0.2]}
    config["methods"]["last_wise"] = {"kind": "last", "lr": 2.0e-3, "wise_alpha": [0.0, 0.5]}
    swept = tmp_path / "swept.yaml"
    swept.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(workdir, "-n", configfile=swept))
    by_rule = lambda rule: sorted(w.get("method", w.get("run")) for r, w in jobs if r == rule)
    # The WiSE-FT alphas reuse last's run; it is planned again only because small.yaml does not keep
    # tuned weights (keep_tuned_weights: false) and the alphas need them.
    assert by_rule("tune") + by_rule("tune_weights") == ["last", "sparse@0.05", "sparse@0.2"]  # the WiSE-FT alphas reuse last's run
    # last's cell follows its rerun; no tuning, prediction or cell for any other existing method
    assert by_rule("predict_tuned") == by_rule("cell") == ["last", "last_wise@0.0", "last_wise@0.5", "sparse@0.05", "sparse@0.2"]
    # WiSE-FT at alpha 0 predicts what the base model predicts, from last's tuned run.
    cell = results / "cells" / "tiny" / "last_wise@0.0" / "big_count.json"
    snakemake(workdir, str(cell.relative_to(workdir)), configfile=swept)
    seed = json.loads(cell.read_text())["seeds"]["0"]
    assert seed["E"] == 0 and seed["F"] == 0
    for name in ("big_count", "shapes_vqa"):
        wise = (results / "predictions" / "tiny" / "last_wise@0.0" / "big_count" / "seed0" / f"{name}.jsonl").read_text()
        assert wise == (results / "predictions" / "tiny" / "zeroshot" / "all" / "seed0" / f"{name}.jsonl").read_text()


def test_the_workflow_is_lint_clean_and_formatted():
    lint = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], capture_output=True, text=True, cwd=ROOT)
    assert lint.returncode == 0 and "Congratulations, your workflow is in a good condition!" in lint.stdout + lint.stderr, \
        lint.stdout[-3000:]
    fmt = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow"], capture_output=True,
                         text=True, cwd=ROOT)
    assert fmt.returncode == 0, fmt.stderr[-3000:]
