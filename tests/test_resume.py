"""Tuning runs as the workflow starts them (`python -m tunebench.stages.tune`): killed and resumed,
and as 2 data-parallel processes through `accelerate launch` (gloo on CPU)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from workflow_helpers import saved_model_plan

from tunebench import plan as study_plan
from tunebench.data import schema, sources
from tunebench.models import loading
from tunebench.stages import tune as tune_stage
from tunebench.train import launch
from tunebench.train.loop import checkpoint_path

ROOT = Path(__file__).resolve().parent.parent
STEPS = 60
ENTRY = {"source": "synthetic", "task": "big_count_choice", "metric": "choice_accuracy", "train_images": 40}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_records):
    """A saved tiny base model and a downstream train split, as the workflow would have them."""
    from conftest import build_tiny_model as build_tiny  # noqa: PLC0415

    root = tmp_path_factory.mktemp("resume")
    model, processor = build_tiny(tiny_records)
    loading.save(model, processor, root / "base")
    frame, _manifest = sources.prepare("big_count", ENTRY, "train", 0)
    schema.write_split(frame, root / "train.parquet")
    return root


def _args(inputs: Path, name: str) -> dict:
    """What the workflow hands this run: its plan slice and how it runs (a checkpoint every 10 steps)."""
    run = inputs / name
    plan = saved_model_plan(inputs / "base", checkpoint_every=10, steps=STEPS, batch_size=8)
    return {"job": plan.tune_job("tiny", "top", "big_count", 0), "base": str(inputs / "base"),
            "train_path": str(inputs / "train.parquet"), "replay_paths": {},
            "tuned_path": str(run / "tuned_weights.safetensors"), "run_path": str(run / "run.json"),
            "control": study_plan.job_control(plan.config, "tiny")}


def _start(args: dict) -> subprocess.Popen:
    path = Path(args["run_path"]).parent / "args.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**args, "threads": 1}))
    return subprocess.Popen([sys.executable, "-m", "tunebench.stages.tune", str(path)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.DEVNULL)


def _finish(args: dict) -> dict:
    assert _start(args).wait(timeout=300) == 0
    run = Path(args["run_path"])
    log = [json.loads(line) for line in (run.parent / "train_log.jsonl").read_text().splitlines()]
    return {"run": json.loads(run.read_text()), "log": log, "weights": load_file(args["tuned_path"])}


@pytest.fixture(scope="module")
def uninterrupted(inputs):
    return _finish(_args(inputs, "whole"))


def test_a_killed_tuning_run_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(inputs, uninterrupted):
    args = _args(inputs, "killed")
    checkpoint = checkpoint_path(Path(args["run_path"]).parent)
    job = _start(args)
    while not checkpoint.exists():
        assert job.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert not Path(args["run_path"]).exists() and not Path(args["tuned_path"]).exists()  # nothing looks finished

    resumed = _finish(args)
    start = resumed["run"]["resumed_from_step"]
    assert start and start % args["control"]["checkpoint_every"] == 0 and start < STEPS
    # Every step once; those up to the checkpoint come from the first attempt and were not redone.
    assert [r["step"] for r in resumed["log"]] == list(range(1, STEPS + 1))
    assert {r["attempt"] for r in resumed["log"][:start]} == {0}
    assert {r["attempt"] for r in resumed["log"][start:]} == {1}
    assert [r["loss"] for r in resumed["log"]] == [r["loss"] for r in uninterrupted["log"]]
    assert resumed["run"]["final_loss"] == uninterrupted["run"]["final_loss"]
    assert resumed["weights"].keys() == uninterrupted["weights"].keys()
    assert all((resumed["weights"][k] == uninterrupted["weights"][k]).all() for k in resumed["weights"])
    assert not checkpoint.exists()


def test_two_data_parallel_processes_train_as_one_does(inputs, uninterrupted):
    args = _args(inputs, "ddp")
    tune_stage.run(args, processes=2, threads=1)
    run = json.loads(Path(args["run_path"]).read_text())
    assert run["num_processes"] == 2
    log = [json.loads(line) for line in (Path(args["run_path"]).parent / "train_log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in uninterrupted["log"]], rel=1e-3, abs=1e-4)
    weights = load_file(args["tuned_path"])
    for name, expected in uninterrupted["weights"].items():
        assert weights[name].allclose(expected, rtol=1e-3, atol=1e-4), name


def test_the_launch_command_is_explicit_and_its_port_is_per_job():
    command = launch.accelerate_command("tunebench.stages.tune", ["a.json"], 4, 29876)
    flags = dict(zip(command[3:-3:2], command[4:-2:2]))
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert {"--num_processes": "4", "--num_machines": "1", "--mixed_precision": "no",
            "--dynamo_backend": "no", "--main_process_port": "29876"}.items() <= flags.items()
    assert "--multi_gpu" in command and command[-3:] == ["--module", "tunebench.stages.tune", "a.json"]
    assert "--multi_gpu" not in launch.accelerate_command("m", [], 1, 29876)
    ports = {launch.main_process_port(f"results/s/tune/m/lora/d/seed{i}/run.json") for i in range(50)}
    assert len(ports) > 45 and all(p in launch.PORTS for p in ports)
    assert launch.main_process_port("x") == launch.main_process_port("x")
    with pytest.raises(ValueError, match="at least 1"):
        launch.accelerate_command("m", [], 0, 29876)
