"""`tunebench status` on the finished small study and on copies of it with outdated, failed, running
and missing cells."""

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from base64 import urlsafe_b64encode

import polars as pl
import pytest
import yaml
from workflow_helpers import ROOT, SMALL, edited_small, run_status, snakemake, status


@contextlib.contextmanager
def marked_running(workdir, output: str):
    """What Snakemake records while a job runs: its output marked incomplete, the directory locked,
    and a process named snakemake working in the directory. On leaving, the process dies and its
    records stay behind, as when Snakemake is SIGKILLed (tests/test_faults.py kills a real one)."""
    (workdir / ".snakemake" / "incomplete" / urlsafe_b64encode(output.encode()).decode()).write_text("{}")
    lock = workdir / ".snakemake" / "locks" / "0.output.lock"
    lock.parent.mkdir(exist_ok=True)
    lock.write_text(output)
    process = subprocess.Popen(["bash", "-c", "exec -a snakemake sleep 600"], cwd=workdir)
    try:
        yield
    finally:
        process.kill()
        process.wait()


def test_a_finished_study_is_done_but_for_its_diverged_cell(study):
    workdir, _ = study
    cells = status(workdir)
    assert set(cells) == {"lora", "last", "boom"}  # boom's lr makes its loss non-finite
    assert cells["boom"][0] == "failed" and "diverged" in cells["boom"][1]
    assert all(state == "done" and "E " in detail and "(1/1 seeds)" in detail
               for method, (state, detail) in cells.items() if method != "boom")
    done = subprocess.run([sys.executable, "-m", "tunebench.cli", "status", "--configfile", str(SMALL),
                           "--directory", str(workdir)], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.rstrip().endswith("one seed shows no seed-to-seed spread: run at least 2.")
    assert "\n\ntiny: Seeds: separating the two best methods on Mean O, " in done.stdout


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

    # A tuning job under way, 39 of its 80 steps done at 0.5 s each: its step and ETA, from its train log.
    tune_dir = "results/small/tune/tiny/later/big_count/seed0"
    (workdir / tune_dir).mkdir(parents=True)
    now = time.time()
    rows = [{"step": step, "total_steps": 80, "loss": 1.0, "attempt": 0, "time": now - 0.5 * (39 - step)}
            for step in range(1, 40)]
    (workdir / tune_dir / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with marked_running(workdir, tune_dir):
        state, detail = status(workdir, configfile)["later"]
    eta = re.fullmatch(r"tuning seed 0: step 39/80, ETA (\d+) s", detail)
    assert state == "running" and eta and int(eta[1]) <= 41 * 0.5, detail  # less the time since its last step
    # Snakemake is gone, its lock left behind: the job was interrupted.
    assert (workdir / ".snakemake" / "locks" / "0.output.lock").exists()
    state, detail = status(workdir, configfile)["later"]
    assert state == "failed" and "interrupted" in detail and "--rerun-incomplete" in detail


def test_a_cell_aggregating_or_between_its_jobs_is_running(grown):
    workdir, configfile = grown
    cell = "results/small/cells/tiny/lora/big_count.json"
    (workdir / cell).unlink()
    with marked_running(workdir, cell):
        assert status(workdir, configfile)["lora"] == ("running", "aggregating")
        for marker in (workdir / ".snakemake" / "incomplete").iterdir():
            marker.unlink()
        # Scored, its cell not started yet, the study running: not "missing".
        assert status(workdir, configfile)["lora"] == ("running", "waiting for its next job: 1/1 seeds tuned, 1/1 scored")


def test_changing_a_methods_lr_in_a_finished_study_makes_its_cell_outdated(study, tmp_path):
    workdir, _ = study
    changed = edited_small(tmp_path / "changed.yaml", lambda config: config["methods"]["last"].update(lr=5.0e-3))
    cells = status(workdir, changed)
    state, detail = cells["last"]
    # Snakemake's own bookkeeping: the tuning run's params (its plan slice) changed, and what follows.
    assert state == "outdated", detail
    assert detail.startswith("params changed: results/small/tune/tiny/last/big_count/seed0/") and "(rule tune_weights)" in detail
    # and the cell's recorded plan digest names the key.
    assert re.search(r"; \d+ outputs to rebuild; built under another plan \(settings.lr 0.002 -> 0.005\); as built: E -?\d",
                     detail), detail
    assert cells["lora"][0] == "done" and cells["boom"][0] == "failed"
    assert status(workdir)["last"][0] == "done"  # the study's own config: nothing changed


def test_json_for_scripts_from_any_directory(grown, tmp_path):
    workdir, configfile = grown
    shutil.copy(configfile, workdir / "study.yaml")  # a relative config path is looked up in the study too
    report = json.loads(run_status(workdir, "study.yaml", "--json", cwd=tmp_path))
    assert report["study"] == "small" and sum(report["counts"].values()) == len(report["cells"]) == 5
    cells = {c["method"]: c for c in report["cells"]}
    assert cells["lora"]["state"] == "done" and set(cells["lora"]["result"]["mean"]) == {"E", "F", "O"}
    assert cells["later"]["state"] == "missing" and cells["later"]["result"] is None
    assert report["counts"] == {"done": 2, "outdated": 0, "running": 0, "failed": 1, "missing": 2}


def test_a_diverged_run_marks_its_cell_failed(grown):
    workdir, configfile = grown
    run_json = workdir / "results/small/tune/tiny/lora/big_count/seed0/run.json"
    run = json.loads(run_json.read_text())
    built = run_json.stat()
    run_json.write_text(json.dumps({**run, "diverged": {"step": 3, "reason": "loss became nan at step 3"}}))
    os.utime(run_json, ns=(built.st_atime_ns, built.st_mtime_ns))  # as if it had diverged then, not outdated
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
    snakemake(workdir, "results/small/predictions/tiny/zeroshot/extra/seed0/extra.jsonl", configfile=configfile,
              check=False)
    state, detail = status(workdir, configfile)["later"]  # not built yet: its chain holds the failed job
    # the job's own error, whatever reading the broken split raised (pyarrow names the missing column)
    assert state == "failed" and detail.startswith("rule predict_zeroshot failed: ")
    assert "image_id" in detail and detail.endswith("(log results/small/logs/predict/tiny.zeroshot.extra.seed0.log)")


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
