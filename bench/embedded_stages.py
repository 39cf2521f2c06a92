"""Per-stage wall time and peak memory of a study, from Snakemake's own per-job benchmark files.

    python bench/embedded_stages.py            # runs the embedded study (config/config.yaml), then reports
    python bench/embedded_stages.py --report   # reports on results/<study>/ as it is, running nothing

Job times add up CPU-side work; on 2 cores two jobs run at once, so the stage sums exceed wall time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import yaml

ROOT = Path(__file__).resolve().parent.parent


def report(results: Path) -> None:
    rows = []
    for tsv in sorted((results / "benchmarks").glob("*/*.tsv")):
        frame = pl.read_csv(tsv, separator="\t")
        rows.append({"stage": tsv.parent.name, "job": tsv.stem, "seconds": frame["s"][0], "max_rss_mb": frame["max_rss"][0]})
    if not rows:
        sys.exit(f"no benchmark files under {results / 'benchmarks'}: run the study first")
    jobs = pl.DataFrame(rows)
    stages = (jobs.group_by("stage", maintain_order=True)
              .agg(pl.len().alias("jobs"), pl.col("seconds").sum().round(1).alias("job_seconds_total"),
                   pl.col("seconds").mean().round(1).alias("job_seconds_mean"),
                   pl.col("max_rss_mb").max().round(0).alias("peak_rss_mb"))
              .sort("job_seconds_total", descending=True))
    with pl.Config(tbl_rows=50, tbl_hide_dataframe_shape=True):
        print(stages)
    print(f"all jobs: {jobs.height}, summed job time {jobs['seconds'].sum():.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--cores", default="2")
    parser.add_argument("--report", action="store_true", help="only report on existing results")
    args = parser.parse_args()
    study = yaml.safe_load(Path(args.configfile).read_text())["study"]
    if not args.report:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snakemake", "--cores", args.cores, "--configfile", args.configfile],
                       cwd=ROOT, check=True)
        print(f"study wall time: {time.perf_counter() - start:.0f} s on {args.cores} cores")
    report(ROOT / "results" / study)


if __name__ == "__main__":
    main()
