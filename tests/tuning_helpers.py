"""Tuning runs started as the workflow starts them (`python -m tunebench.stages.tune ARGS.json`), on a
saved tiny base model (the `tuning_inputs` fixture in conftest.py): to kill, resume and compare."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file

from tunebench import plan as study_plan
from tunebench.train.checkpoint import checkpoint_path

ROOT = Path(__file__).resolve().parent.parent
STEPS = 60
SYNTHETIC = {"source": "synthetic", "metric": "choice_accuracy", "train_images": 40, "test_images": 4}
DOWNSTREAM = {**SYNTHETIC, "task": "big_count_choice"}
TOP = {"kind": "top", "k": 2, "lr": 1.0e-3}


def study(base: Path, method: dict = TOP, steps: int = STEPS, warmup: int = 2, checkpoint_every: int = 10):
    """The plan of a study tuning the saved model at `base` by `method` (one entry, named m)."""
    return study_plan.build({
        "study": "resume", "seeds": [0],
        "models": {"tiny": {"family": "llava_onevision", "source": "hf", "path": str(base), "num_workers": 0}},
        "datasets": {"big_count": DOWNSTREAM, "up": {**SYNTHETIC, "task": "colour_choice"}},
        "upstream": ["up"], "downstream": ["big_count"],
        "tuning": {"steps": steps, "batch_size": 8, "warmup": warmup, "max_grad_norm": 1.0},
        "methods": {"m": method}, "checkpoint_every": checkpoint_every})


def tune_job(base: Path, method: dict = TOP, steps: int = STEPS, warmup: int = 2) -> dict:
    """The tune slice the workflow's plan hands a run of `method`."""
    return study(base, method, steps, warmup).tune_job("tiny", "m", "big_count", 0)


def tune_args(inputs: Path, name: str, job: dict | None = None, checkpoint_every: int = 10) -> dict:
    """The stage's arguments for a run in `inputs / name` (`job`: the top method's slice by default):
    what the workflow hands it, a checkpoint every `checkpoint_every` steps."""
    run = inputs / name
    weights = "adapter" if job and job["saves"] == "adapter" else "tuned_weights.safetensors"
    control = study_plan.job_control(study(inputs / "base", checkpoint_every=checkpoint_every).config, "tiny")
    return {"job": job or tune_job(inputs / "base"), "base": str(inputs / "base"),
            "train_path": str(inputs / "train.parquet"), "replay_paths": {}, "tuned_path": str(run / weights),
            "run_path": str(run / "run.json"), "control": control, "code": "tune-code"}


def start_tuning(args: dict) -> subprocess.Popen:
    path = Path(args["run_path"]).parent / "args.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**args, "threads": 1, "numerics": {}}))  # as run_stage writes it (none pinned)
    return subprocess.Popen([sys.executable, "-m", "tunebench.stages.tune", str(path)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.DEVNULL)


def train_log(args: dict) -> list[dict]:
    log = Path(args["run_path"]).parent / "train_log.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()]


def finish_tuning(args: dict) -> dict:
    """Run to the end; what it left: run.json, the step log and the tuned weights."""
    assert start_tuning(args).wait(timeout=300) == 0
    return {"run": json.loads(Path(args["run_path"]).read_text()), "log": train_log(args),
            "weights": load_file(args["tuned_path"])}


def kill_after_first_checkpoint(args: dict) -> None:
    """Start the run and SIGKILL it once it has written a checkpoint."""
    checkpoint = checkpoint_path(Path(args["run_path"]).parent)
    job = start_tuning(args)
    while not checkpoint.exists():
        assert job.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert not Path(args["run_path"]).exists() and not Path(args["tuned_path"]).exists()  # nothing looks finished
