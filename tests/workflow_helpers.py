"""Running the real workflow from tests, and reading what `snakemake -n` plans."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tunebench import plan as study_plan
from tunebench.data import world

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "tests" / "config" / "small.yaml"


def saved_model_plan(base: Path, model: dict | None = None, checkpoint_every: int = 0, steps: int = 6,
                     batch_size: int = 6) -> study_plan.Plan:
    """The plan of a study around a saved tiny base model (an `hf` entry at `base`) tuned on big_count
    by `top` or `lora`: what the workflow hands a tuning or prediction job (`tune_job`, `predict_job`,
    `job_control`)."""
    synthetic = {"source": "synthetic", "metric": "choice_accuracy", "train_images": 40, "test_images": 4}
    return study_plan.build({
        "study": "saved", "seeds": [0],
        "models": {"tiny": {"family": "llava_onevision", "source": "hf", "path": str(base), "num_workers": 0,
                            **(model or {})}},
        "datasets": {"big_count": {**synthetic, "task": "big_count_choice"}, "up": {**synthetic, "task": "colour_choice"}},
        "upstream": ["up"], "downstream": ["big_count"],
        "tuning": {"steps": steps, "batch_size": batch_size, "warmup": 1, "max_grad_norm": 1.0},
        "methods": {"top": {"kind": "top", "k": 2, "lr": 1.0e-3},
                    "lora": {"kind": "lora", "lr": 1.0e-2, "r": 4, "alpha": 8, "targets": ["q_proj", "v_proj"]}},
        "checkpoint_every": checkpoint_every})


def write_own_data(workdir: Path) -> Path:
    """small.yaml's bring-your-own set: JSONL rows and PNG files, drawn by the synthetic world."""
    folder = Path(workdir) / "data" / "own"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 16), ("test", 8)):
        rows = []
        for r in world.generate("attribute", n, seed=7, split=split):
            (folder / "images" / f"{r['id']}.png").write_bytes(r["image"])
            rows.append({"id": r["id"], "image": f"{r['id']}.png", "question": r["question"].split("\n")[0],
                         "answer": r["answers"][0]})
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def edited_small(path: Path, edit) -> Path:
    """small.yaml after `edit(config)`, written to `path`."""
    config = yaml.safe_load(SMALL.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(workdir: Path, *args: str, configfile: Path = SMALL, root: Path = ROOT, check: bool = True,
              env: dict | None = None) -> str:
    """Run the workflow of the repository at `root` (its Snakefile and its tunebench package); `env`
    overrides environment variables."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(root / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile), "--cores", "2", *args]
    # cwd: `python -m` puts the current directory first on sys.path, ahead of PYTHONPATH.
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, env={**os.environ, "PYTHONPATH": str(root), **(env or {})})
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{done.stdout[-5000:]}\n{done.stderr[-5000:]}")
    return done.stdout + done.stderr


def planned_jobs(dry_run_output: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry run plans."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run_output):
        head = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not head:
            continue
        found = re.search(r"^\s*wildcards: (.*)$", block, re.M)
        wildcards = dict(kv.split("=", 1) for kv in found.group(1).split(", ")) if found else {}
        jobs.append((head.group(1), wildcards))
    return jobs


def copy_of_repo(dest: Path) -> Path:
    """The workflow and package copied to `dest`, for tests that change code without touching the real files."""
    for part in ("workflow", "tunebench", "config"):
        shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "Snakefile", dest / "Snakefile")
    return dest
