"""Running the real workflow from tests, and reading what `snakemake -n` plans."""

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
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
def _snakemake_command(workdir: Path, args, configfile: Path, root: Path) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(root / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(configfile), "--cores", "2", *args]


def snakemake(workdir: Path, *args: str, configfile: Path = SMALL, root: Path = ROOT, check: bool = True,
              env: dict | None = None) -> str:
    """Run the workflow of the repository at `root` (its Snakefile and its tunebench package); `env`
    overrides environment variables."""
    # cwd: `python -m` puts the current directory first on sys.path, ahead of PYTHONPATH.
    done = subprocess.run(_snakemake_command(workdir, args, configfile, root), capture_output=True, text=True,
                          cwd=workdir, env={**os.environ, "PYTHONPATH": str(root), **(env or {})})
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{done.stdout[-5000:]}\n{done.stderr[-5000:]}")
    return done.stdout + done.stderr


def start_snakemake(workdir: Path, *args: str, configfile: Path = SMALL, root: Path = ROOT) -> subprocess.Popen:
    """The workflow started in a session of its own (so that a test can kill it with all its jobs);
    its output goes to workdir/snakemake.out."""
    return subprocess.Popen(_snakemake_command(workdir, args, configfile, root), cwd=workdir,
                            env={**os.environ, "PYTHONPATH": str(root)}, start_new_session=True,
                            stdout=open(Path(workdir) / "snakemake.out", "w"), stderr=subprocess.STDOUT)


def kill_job_writing(workdir: Path, job_log: str, *args: str, root: Path = ROOT) -> int:
    """Run the workflow and SIGKILL the job whose log is `job_log` (relative to workdir) once it has
    opened it, as a preempted or OOM-killed job dies; Snakemake's exit status."""
    run = start_snakemake(workdir, *args, root=root)
    target, killed = str(Path(workdir) / job_log), False
    while run.poll() is None:
        for process in [] if killed else psutil.Process(run.pid).children(recursive=True):
            try:
                if any(f.path == target for f in process.open_files()):
                    process.send_signal(signal.SIGKILL)
                    killed = True
            except psutil.Error:
                continue
        time.sleep(0.05)
    assert killed, f"no job opened {job_log}: {(Path(workdir) / 'snakemake.out').read_text()[-3000:]}"
    return run.returncode


def run_status(workdir: Path, configfile: Path = SMALL, *options: str, cwd: Path | None = None,
               root: Path = ROOT) -> str:
    """`tunebench status`'s output (the package of the repository at `root`, run from `cwd`, by
    default `root`: `python -m` puts the current directory first on sys.path)."""
    done = subprocess.run([sys.executable, "-m", "tunebench.cli", "status", "--configfile", str(configfile),
                           "--directory", str(workdir), *options], capture_output=True, text=True, cwd=cwd or root,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def status(workdir: Path, configfile: Path = SMALL, root: Path = ROOT) -> dict[str, tuple[str, str]]:
    """method -> (state, detail), from `tunebench status`'s table."""
    table = run_status(workdir, configfile, root=root).split("\n\n")[0]  # then, once every cell is built, the seeds line
    rows = [line.split(None, 4) for line in table.splitlines()[2:]]
    return {r[1]: (r[3], r[4] if len(r) > 4 else "") for r in rows}


def _cluster_answers() -> bool:
    if not shutil.which("sinfo"):
        return False
    try:  # sinfo retries for about a minute when no controller answers
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def required(missing: str) -> None:
    """Fail where CI requires SLURM (TUNEBENCH_SLURM=1, set by .ci/run), skip elsewhere."""
    if os.environ.get("TUNEBENCH_SLURM") == "1":
        pytest.fail(f"TUNEBENCH_SLURM=1 but {missing}")
    pytest.skip(missing)


def require_slurm_plugin() -> None:
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        required("the SLURM executor plugin is not installed (the slurm extra: make slurm)")


def require_slurm() -> str:
    """Where slurmctld records every finished job (its job completion log). Needs the SLURM executor
    plugin and a cluster that answers `sinfo` (`.ci/slurm-cluster start` runs one)."""
    require_slurm_plugin()
    if not _cluster_answers():
        required("no SLURM cluster answers `sinfo` (.ci/slurm-cluster start runs one)")
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
    settings = dict(re.findall(r"^(\w+)\s+= (.*)$", config, re.M))
    if settings.get("JobCompType") != "jobcomp/filetxt":
        pytest.fail(f"the test reads SLURM's job completion log: JobCompType is {settings.get('JobCompType')}, "
                    "not jobcomp/filetxt (see .ci/slurm-cluster)")
    return settings["JobCompLoc"]


def copy_of_study(study, tmp_path: Path) -> Path:
    """A copy of the finished small study's working directory (the `study` fixture), to change."""
    workdir = tmp_path / "study"
    shutil.copytree(study[0], workdir, symlinks=True)
    return workdir


# The rules that rerun after a table cell's inputs change: the cell and everything built from cells.
AFTER_CELLS = ["all", "cell", "figures", "landing", "tables", "tradeoff"]


def rules(jobs: list[tuple[str, dict]]) -> list[str]:
    """The rules of `planned_jobs`, once each, sorted."""
    return sorted({rule for rule, _ in jobs})


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
    for part in ("workflow", "tunebench", "config", "envs"):  # envs: Snakemake records each rule's conda env
        shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "Snakefile", dest / "Snakefile")
    return dest
