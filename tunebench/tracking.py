"""Experiment trackers, through accelerate's: every tuning run logs its loss, lr and samples/s per
step to TensorBoard, Weights & Biases or MLflow (the config's `tracking:`), with the run's resolved
settings as hyperparameters, grouped by study:

- TensorBoard: event files under `<dir>/tensorboard/<study>/<model>/<method>/<dataset>/seed<s>`
  (`tensorboard --logdir <dir>/tensorboard`);
- Weights & Biases: project `project`, group `<study>`, run `<model>/<method>/<dataset>/seed<s>`
  (`WANDB_MODE=offline` works without a network);
- MLflow: experiment `<study>`, the same run name, at MLflow's tracking URI (`MLFLOW_TRACKING_URI`).

How runs are recorded, never what they compute: no rerun trigger (fingerprint.UNTRACKED).
"""

from __future__ import annotations

import importlib.util
import json

NEEDS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}  # tracker -> package


def run_name(job: dict) -> str:
    return f"{job['model']}/{job['method']}/{job['dataset']}/seed{job['seed']}"


def run_hyperparameters(job: dict, study: str) -> dict:
    """The run's identity and resolved settings as flat scalars (what every tracker accepts)."""
    flat = {"study": study, "model": job["model"], "method": job["method"], "dataset": job["dataset"],
            "seed": job["seed"]}
    for key, value in job["settings"].items():
        flat[key] = value if isinstance(value, (bool, int, float, str)) or value is None else json.dumps(value)
    return flat


def run_trackers(spec: dict | None, job: dict) -> list:
    """accelerate trackers for one tuning run (`job`: the plan's tune slice); `spec`:
    `plan.job_control(config, model)["tracking"]`, None when tracking is off."""
    if not spec:
        return []
    missing = [name for name in spec["trackers"] if importlib.util.find_spec(NEEDS[name]) is None]
    if missing:
        raise ModuleNotFoundError(f"config key tracking.trackers: {', '.join(missing)} needs the package "
                                  f"{', '.join(NEEDS[m] for m in missing)} (pip install 'tunebench[{','.join(missing)}]')")
    from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

    study, name = spec["study"], run_name(job)
    make = {
        "tensorboard": lambda: TensorBoardTracker(f"{study}/{name}", f"{spec['dir']}/tensorboard"),
        "wandb": lambda: WandBTracker(spec["project"], group=study, name=name, job_type="tune", dir=spec["dir"]),
        "mlflow": lambda: MLflowTracker(experiment_name=study, run_name=name, tags={"study": study}),
    }
    return [make[tracker]() for tracker in spec["trackers"]]


def finish_trackers(started: list) -> None:
    """End each tracker's run (also after a run diverged, so what it logged is kept)."""
    for tracker in started:
        tracker.finish()
