"""The small study on a real SLURM cluster, through `snakemake --profile slurm` typed in the repository root.

Needs the SLURM executor plugin (the `slurm` extra: `make slurm`) and a cluster that answers `sinfo`
(`.ci/slurm-cluster start` runs a single-node one on loopback). Without them the tests are skipped,
unless TUNEBENCH_SLURM=1 (set by .ci/run) requires them: then they fail.
"""

import json
import re
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
import yaml
from workflow_helpers import (
    ROOT,
    SMALL,
    planned_jobs,
    require_slurm,
    require_slurm_plugin,
    write_own_data,
)

# The model jobs of the small study (one seed): pretraining, zero-shot prediction on each of the 5 test
# sets, one tuning per method on big_count (`lora` by `tune`; `last` and the diverging `boom` by
# `tune_weights`) and its predictions.
CLUSTER_JOBS = {"pretrain": 1, "predict_zeroshot": 5, "tune": 1, "tune_weights": 2, "predict_tuned": 3}
TUNE_RULES = ("tune", "tune_weights")
# The rest run on the submit host: the Snakefile's `localrules`.
LIGHT_RULES = {"all", "prepare", "score", "cell", "tables", "tradeoff", "figures", "landing"}
# The test cluster has no GPU and little memory: override the profile's requests (docs/cluster.md's recipe).
TEST_CLUSTER_RESOURCES = [*(f"{rule}:gpu=0" for rule in CLUSTER_JOBS),
                          *(f"{rule}:{setting}" for rule in TUNE_RULES for setting in ("mem_mb=1500", "runtime=10"))]


@pytest.fixture(scope="session")
def slurm_plugin() -> None:
    require_slurm_plugin()


@pytest.fixture(scope="session")
def job_completion_log(slurm_plugin) -> str:
    return require_slurm()


def completed_jobs(log_path: str, name_prefix: str) -> dict[str, dict]:
    """SLURM's records of the finished jobs whose name starts with name_prefix, by job id."""
    with open(log_path) as log:
        records = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in log]
    return {r["JobId"]: r for r in records if r.get("Name", "").startswith(name_prefix)}


def localrules() -> set[str]:
    block = re.search(r"^localrules:\n((?:[ \t]+\w+,?\n)+)", (ROOT / "Snakefile").read_text(), re.M)
    return set(re.findall(r"\w+", block.group(1)))


def test_the_slurm_profile_asks_a_gpu_for_every_model_job(slurm_plugin, tmp_path):
    """The profile's set-resources name the workflow's model rules, and every other rule is a localrule
    (a renamed or new rule would lose its GPU, or go to SLURM with the default resources)."""
    write_own_data(tmp_path)
    profile = yaml.safe_load((ROOT / "slurm" / "config.yaml").read_text())
    cmd = [sys.executable, "-m", "snakemake", "--profile", "slurm", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(tmp_path), "--configfile", str(SMALL), "-n"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    output = done.stdout + done.stderr
    planned = re.findall(r"^rule (\w+):\n(?:.*\n)*?\s*resources: (.*)$", output, re.M)
    gpu_rules = {rule for rule, resources in planned if "gpu=1" in resources.split(", ")}
    assert gpu_rules == set(CLUSTER_JOBS) == set(profile["set-resources"])
    assert Counter(rule for rule, _ in planned_jobs(output) if rule not in LIGHT_RULES) == CLUSTER_JOBS
    assert localrules() == LIGHT_RULES
    # Every model rule gets the whole scheme: GPU, CPUs, memory and time limit.
    assert all(set(r) == {"gpu", "cpus_per_task", "mem_mb", "runtime"} for r in profile["set-resources"].values())
    assert profile["executor"] == "slurm" and profile["keep-going"] and profile["retries"] > 0


def test_the_small_study_runs_as_slurm_jobs_and_gives_the_local_results(job_completion_log, study, tmp_path):
    write_own_data(tmp_path)
    prefix = f"tbtest{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "snakemake", "--profile", "slurm", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(tmp_path), "--configfile", str(SMALL), "--slurm-no-account",
           "--slurm-jobname-prefix", prefix, "--slurm-init-seconds-before-status-checks", "2",
           "--set-resources", *TEST_CLUSTER_RESOURCES]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"snakemake --profile slurm failed:\n{output[-8000:]}"

    # What Snakemake says it submitted: SLURM job id -> rule (from the job's SLURM log path).
    submitted = dict(re.findall(r"SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/", output))
    assert Counter(submitted.values()) == CLUSTER_JOBS, output[-8000:]
    # What SLURM recorded: exactly those jobs, each completed with exit code 0 (the diverging run too).
    records = completed_jobs(job_completion_log, prefix)
    assert set(records) == set(submitted)
    assert {(r["JobState"], r["ExitCode"]) for r in records.values()} == {("COMPLETED", "0:0")}
    # Per-rule resources reached SLURM: the tunings' override (memory, minutes), the default for the rest.
    memory = {job: re.search(r"mem=(\d+)M", records[job]["Tres"]).group(1) for job in submitted}
    time_limit = {job: records[job]["TimeLimit"] for job in submitted}
    tunings = {job for job, rule in submitted.items() if rule in TUNE_RULES}
    assert {memory[job] for job in tunings} == {"1500"} and {time_limit[job] for job in tunings} == {"10"}
    others = set(submitted) - tunings
    assert {memory[job] for job in others} == {"4000"} and {time_limit[job] for job in others} == {"30"}

    # Same seed, same results as the local run: the table (but for wall time), every loss and every answer.
    _, local = study
    on_slurm = tmp_path / "results" / "small"
    assert table_without_timing(on_slurm) == table_without_timing(local)
    assert losses(on_slurm) == losses(local) and len(losses(local)) == 4  # pretrain + 3 tunings
    # 5 zero-shot + 3 tunings x 5 sets (boom's are empty: it diverged)
    assert predictions(on_slurm) == predictions(local) and len(predictions(local)) == 20


def table_without_timing(results: Path) -> list[dict]:
    return pl.read_csv(results / "tables" / "tiny.csv").drop("train_seconds").to_dicts()


def losses(results: Path) -> dict[str, list[float]]:
    """The loss at every step of every pretraining and tuning run."""
    return {str(log.relative_to(results)): [json.loads(line)["loss"] for line in log.read_text().splitlines()]
            for log in results.glob("*/**/train_log.jsonl")}


def predictions(results: Path) -> dict[str, str]:
    return {str(p.relative_to(results)): p.read_text() for p in (results / "predictions").rglob("*.jsonl")}
