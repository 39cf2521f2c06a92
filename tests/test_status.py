"""`tunebench status` on the finished small study and on copies of it with failed, running and missing cells."""

import json
import shutil
import subprocess
import sys
from base64 import urlsafe_b64encode

import polars as pl
import pytest
import yaml
from workflow_helpers import ROOT, SMALL, snakemake


def status(workdir, configfile=SMALL) -> dict[str, tuple[str, str]]:
    """method -> (state, detail), from the command's output."""
    done = subprocess.run([sys.executable, "-m", "tunebench.cli", "status", "--configfile", str(configfile),
                           "--directory", str(workdir)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    rows = [line.split(None, 4) for line in done.stdout.splitlines()[2:]]
    return {r[1]: (r[3], r[4] if len(r) > 4 else "") for r in rows}


def test_a_finished_study_is_done_but_for_its_diverged_cell(study):
    workdir, _ = study
    cells = status(workdir)
    assert set(cells) == {"lora", "last", "boom"}  # boom's lr makes its loss non-finite
    assert cells["boom"][0] == "failed" and "diverged" in cells["boom"][1]
    assert all(state == "done" and "E " in detail and "(1/1 seeds)" in detail
               for method, (state, detail) in cells.items() if method != "boom")


@pytest.fixture
def grown(study, tmp_path):
    """A copy of the finished study whose config adds a method that cannot run and one not run yet."""
    workdir = tmp_path / "study"
    shutil.copytree(study[0], workdir, symlinks=True)
    config = yaml.safe_load(SMALL.read_text())
    config["methods"]["broken"] = {"kind": "lora", "lr": 1.0e-2, "targets": ["no_such_module"]}
    config["methods"]["later"] = {"kind": "last", "lr": 1.0e-3}
    configfile = tmp_path / "grown.yaml"
    configfile.write_text(yaml.safe_dump(config))
    return workdir, configfile


def test_failed_running_and_missing_cells(grown):
    workdir, configfile = grown
    snakemake(workdir, "results/small/cells/tiny/broken/big_count.json", configfile=configfile, check=False)
    cells = status(workdir, configfile)
    # the job's own error (peft's), from its log file
    state, detail = cells["broken"]
    assert state == "failed" and detail.startswith("rule tune failed: NoMatchingPeftModuleError: Target modules")
    assert "(no_such_module)" in detail and detail.endswith("(log results/small/logs/tune/tiny.broken.big_count.seed0.log)")
    assert cells["later"] == ("missing", "0/1 seeds tuned, 0/1 scored")
    assert cells["lora"][0] == cells["last"][0] == "done"

    # A job under way: Snakemake holds a lock and marks the job's output incomplete.
    tune_dir = "results/small/tune/tiny/later/big_count/seed0"
    (workdir / tune_dir).mkdir(parents=True)
    (workdir / ".snakemake" / "incomplete" / urlsafe_b64encode(tune_dir.encode()).decode()).write_text("{}")
    lock = workdir / ".snakemake" / "locks" / "0.output.lock"
    lock.parent.mkdir(exist_ok=True)
    lock.write_text(tune_dir)
    assert status(workdir, configfile)["later"] == ("running", f"writing {tune_dir}")
    lock.unlink()  # the Snakemake process is gone: the job was interrupted
    state, detail = status(workdir, configfile)["later"]
    assert state == "failed" and "interrupted" in detail and "--rerun-incomplete" in detail


def test_a_diverged_run_marks_its_cell_failed(grown):
    workdir, configfile = grown
    run_json = workdir / "results/small/tune/tiny/lora/big_count/seed0/run.json"
    run = json.loads(run_json.read_text())
    run_json.write_text(json.dumps({**run, "diverged": {"step": 3, "reason": "loss became nan at step 3"}}))
    state, detail = status(workdir, configfile)["lora"]
    assert state == "failed" and "seed 0 diverged at step 3" in detail


def test_a_failed_zero_shot_job_fails_the_cells_that_need_it(grown, tmp_path):
    workdir, grown_config = grown
    config = yaml.safe_load(grown_config.read_text())
    config["datasets"]["extra"] = {"source": "synthetic", "task": "colour_choice", "metric": "choice_accuracy",
                                   "train_images": 8, "test_images": 4}
    config["upstream"].append("extra")
    configfile = tmp_path / "extra.yaml"
    configfile.write_text(yaml.safe_dump(config))
    test_split = "results/small/data/extra/test.parquet"
    snakemake(workdir, test_split, configfile=configfile)
    pl.DataFrame({"id": ["x"]}).write_parquet(workdir / test_split)  # a split the prediction job cannot read
    snakemake(workdir, "results/small/predictions/tiny/zeroshot/all/seed0/extra.jsonl", configfile=configfile,
              check=False)
    state, detail = status(workdir, configfile)["later"]  # not built yet: its chain holds the failed job
    assert state == "failed" and detail.startswith("rule predict_zeroshot failed: KeyError")
    assert "logs/predict/tiny.zeroshot.seed0.log" in detail


def test_a_cell_sharing_a_tuning_run_reads_that_run_and_several_config_files_layer(grown, tmp_path):
    workdir, configfile = grown
    layer = tmp_path / "wise.yaml"
    layer.write_text(yaml.safe_dump({"methods": {"last_wise": {"kind": "last", "lr": 2.0e-3, "wise_alpha": 0.5}}}))
    done = subprocess.run([sys.executable, "-m", "tunebench.cli", "status", "--configfile", str(SMALL), str(layer),
                           "--directory", str(workdir)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    rows = {r.split(None, 4)[1]: r.split(None, 4)[3:] for r in done.stdout.splitlines()[2:]}
    assert rows["last_wise"] == ["missing", "1/1 seeds tuned, 0/1 scored"]  # last's run, which it shares
    assert rows["lora"][0] == "done"
