"""Tuning runs as the workflow starts them (`python -m tunebench.stages.tune`): killed and resumed,
and as 2 data-parallel processes through `accelerate launch` (gloo on CPU)."""

import json
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file
from tuning_helpers import STEPS, finish_tuning, kill_after_first_checkpoint, tune_args

from tunebench.stages import tune as tune_stage
from tunebench.train import launch
from tunebench.train.checkpoint import checkpoint_path


@pytest.fixture(scope="module")
def uninterrupted(tuning_inputs):
    return finish_tuning(tune_args(tuning_inputs, "whole"))


def test_a_killed_tuning_run_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(tuning_inputs, uninterrupted):
    args = tune_args(tuning_inputs, "killed")
    kill_after_first_checkpoint(args)
    resumed = finish_tuning(args)
    start = resumed["run"]["resumed_from_step"]
    assert start and start % args["control"]["checkpoint_every"] == 0 and start < STEPS
    assert resumed["run"]["checkpoint"] == {"path": str(checkpoint_path(Path(args["run_path"]).parent)),
                                            "resumed_from_step": start}
    # Every step once; those up to the checkpoint come from the first attempt and were not redone.
    assert [r["step"] for r in resumed["log"]] == list(range(1, STEPS + 1))
    assert {r["attempt"] for r in resumed["log"][:start]} == {0}
    assert {r["attempt"] for r in resumed["log"][start:]} == {1}
    assert [r["loss"] for r in resumed["log"]] == [r["loss"] for r in uninterrupted["log"]]
    assert resumed["run"]["final_loss"] == uninterrupted["run"]["final_loss"]
    assert resumed["weights"].keys() == uninterrupted["weights"].keys()
    assert all((resumed["weights"][k] == uninterrupted["weights"][k]).all() for k in resumed["weights"])
    assert not checkpoint_path(Path(args["run_path"]).parent).exists()


def test_two_data_parallel_processes_train_as_one_does(tuning_inputs, uninterrupted):
    args = tune_args(tuning_inputs, "ddp")
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
