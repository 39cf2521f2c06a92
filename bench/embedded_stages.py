"""Wall time of a study and per-stage job time and peak memory, from Snakemake's own per-job benchmark files.

    python bench/embedded_stages.py --fresh    # removes results/<study>/, runs the embedded study, reports
    python bench/embedded_stages.py            # runs what is left of the study (nothing, if finished), reports
    python bench/embedded_stages.py --report   # reports on results/<study>/ as it is, running nothing

The acceptance figure is `--fresh` on a quiet 2-core machine with the environment set up: the load
average before and after is printed, so a figure taken on a shared machine says so. Job times add up
CPU-side work; on 2 cores two jobs run at once, so the stage sums exceed wall time. For pretraining and
tuning, "training s" is the optimisation loop alone (run.json's train_seconds): the rest of those jobs'
time is Python starting, imports, encoding the data, loading and saving the model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import yaml

from tunebench import provenance
from tunebench.files import write_json

ROOT = Path(__file__).resolve().parent.parent


def stage_of(tsv: Path) -> str:
    """The benchmark folder is the rule's log group; zero-shot prediction is told apart by its name."""
    return "predict (zero-shot)" if tsv.parent.name == "predict" and ".zeroshot." in tsv.name else tsv.parent.name


def training_seconds(results: Path) -> dict[str, float]:
    runs = {"pretrain": results.glob("base/*/*/run.json"), "tune": results.glob("tune/**/run.json")}
    return {stage: sum(json.loads(p.read_text()).get("train_seconds") or 0 for p in paths)
            for stage, paths in runs.items()}


def stage_table(results: Path) -> pl.DataFrame:
    rows = []
    for tsv in sorted((results / "benchmarks").glob("*/*.tsv")):
        frame = pl.read_csv(tsv, separator="\t")
        rows.append({"stage": stage_of(tsv), "job": tsv.stem, "seconds": frame["s"][0],
                     "max_rss_mb": frame["max_rss"][0]})
    if not rows:
        sys.exit(f"no benchmark files under {results / 'benchmarks'}: run the study first")
    jobs = pl.DataFrame(rows)
    trained = training_seconds(results)
    stages = (jobs.group_by("stage", maintain_order=True)
              .agg(pl.len().alias("jobs"), pl.col("seconds").sum().round(1).alias("job_seconds_total"),
                   pl.col("seconds").mean().round(1).alias("job_seconds_mean"),
                   pl.col("max_rss_mb").max().round(0).alias("peak_rss_mb"))
              .with_columns(pl.col("stage").replace_strict(trained, default=None).round(1).alias("training_s"))
              .sort("job_seconds_total", descending=True))
    return stages


def report(results: Path) -> None:
    stages = stage_table(results)
    with pl.Config(tbl_rows=50, tbl_hide_dataframe_shape=True):
        print(stages)
    print(f"all jobs: {stages['jobs'].sum()}, summed job time {stages['job_seconds_total'].sum():.0f} s")


def wall_path(results: Path) -> Path:
    return results / "benchmarks" / "study.json"


def recorded_wall(results: Path) -> dict | None:
    """The wall time of the last `--fresh` run of the whole study, the machine's load around it and
    its per-stage table (jobs run since, e.g. by `make beyond`, are not in it)."""
    path = wall_path(results)
    return json.loads(path.read_text()) if path.is_file() else None


def load_text() -> str:
    return "load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--cores", default="2")
    parser.add_argument("--fresh", action="store_true", help="remove results/<study>/ first: the whole study runs")
    parser.add_argument("--report", action="store_true", help="only report on existing results")
    args = parser.parse_args()
    study = yaml.safe_load(Path(args.configfile).read_text())["study"]
    results = ROOT / "results" / study
    if not args.report:
        if args.fresh:
            shutil.rmtree(results, ignore_errors=True)
        before = os.getloadavg()[0]
        print(f"before: {load_text()} on {os.cpu_count()} CPUs")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snakemake", "--cores", args.cores, "--configfile", args.configfile],
                       cwd=ROOT, check=True)
        wall = time.perf_counter() - start
        print(f"after: {load_text()}")
        print(f"study wall time: {wall:.0f} s ({int(wall // 60)} min {wall % 60:.0f} s) on {args.cores} cores")
        if args.fresh:  # the whole study ran: the figures the docs quote (make docs reads them)
            write_json({"wall_seconds": round(wall, 1), "cores": int(args.cores), "cpu": provenance.cpu_model(),
                        "load_before": before, "load_after": os.getloadavg()[0], "git": provenance.git_state(),
                        "stages": stage_table(results).to_dicts()}, wall_path(results))
    report(results)


if __name__ == "__main__":
    main()
