"""Experiment trackers: every tuning run's loss, lr and throughput in TensorBoard event files (read
back offline), its resolved settings as hyperparameters, runs grouped by study; off by default and
never a rerun trigger."""

import json

import pytest
import yaml
from workflow_helpers import SMALL, edited_small, planned_jobs, snakemake

from tunebench import plan, tracking

JOB = {"model": "tiny", "method": "lora", "dataset": "big_count", "seed": 0,
       "settings": {"kind": "lora", "lr": 0.01, "r": 4, "targets": ["q_proj", "v_proj"]}}


def test_tensorboard_holds_every_step_of_every_tuning_run(parallel_tuning):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    workdir, _, tracked = parallel_tuning
    for method in ("lora", "last"):
        run = tracked / "tensorboard" / "small" / "tiny" / method / "big_count" / "seed0"  # grouped by study
        events = EventAccumulator(str(run))
        events.Reload()
        assert set(events.Tags()["scalars"]) == {"loss", "lr", "samples_per_s"}
        log = [json.loads(line) for line in (workdir / "results" / "small" / "tune" / "tiny" / method / "big_count" /
                                             "seed0" / "train_log.jsonl").read_text().splitlines()]
        losses = events.Scalars("loss")
        assert [e.step for e in losses] == [r["step"] for r in log] == list(range(1, 61))
        assert [e.value for e in losses] == pytest.approx([r["loss"] for r in log], abs=1e-4)
        assert [e.value for e in events.Scalars("lr")] == pytest.approx([r["lr"] for r in log])
        # the run's resolved settings, as hyperparameters
        (hparams,) = run.glob("*/hparams.yml")
        settings = yaml.safe_load(hparams.read_text())
        assert settings["study"] == "small" and settings["method"] == method and settings["kind"] == method
        assert settings["steps"] == 60 and settings["lr"] == {"lora": 1.0e-2, "last": 2.0e-3}[method]


def test_tracking_and_progress_settings_rerun_nothing(study, tmp_path):
    def report_elsewhere(config):
        config["tracking"] = {"trackers": ["tensorboard", "wandb"], "project": "elsewhere"}
        config["progress"] = {"percent": 5, "seconds": 10}

    changed = edited_small(tmp_path / "tracked.yaml", report_elsewhere)
    assert planned_jobs(snakemake(study[0], "-n", configfile=changed)) == []


def test_tracking_is_off_by_default_and_names_what_it_needs():
    assert plan.job_control(plan.load(SMALL).config, "tiny")["tracking"] is None
    spec = {"trackers": ["wandb"], "dir": "results/tracking", "project": "tunebench", "study": "small"}
    with pytest.raises(ModuleNotFoundError, match=r"tracking.trackers: wandb needs the package wandb \(pip install"):
        tracking.run_trackers(spec, JOB)


def test_wandb_and_mlflow_group_runs_by_study(monkeypatch):
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: object())  # as if installed
    spec = {"trackers": ["wandb", "mlflow"], "dir": "results/tracking", "project": "tunebench", "study": "small"}
    wandb, mlflow = tracking.run_trackers(spec, JOB)
    assert wandb.run_name == "tunebench"  # accelerate's name for the wandb project
    assert wandb.init_kwargs == {"group": "small", "name": "tiny/lora/big_count/seed0", "job_type": "tune",
                                 "dir": "results/tracking"}
    assert (mlflow.experiment_name, mlflow.run_name, mlflow.tags) == ("small", "tiny/lora/big_count/seed0",
                                                                      {"study": "small"})
    flat = tracking.run_hyperparameters(JOB, "small")
    assert flat["targets"] == '["q_proj", "v_proj"]' and flat["lr"] == 0.01 and flat["study"] == "small"
