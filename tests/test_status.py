"""`tunebench status` on the finished small study and on copies of it with failed, running and missing cells."""

import json
import shutil
import subprocess
import sys
from base64 import urlsafe_b64encode

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
    assert cells["broken"][0] == "failed" and "rule tune failed" in cells["broken"][1]
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
