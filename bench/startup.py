"""What a `snakemake` start costs before any job runs: its version, a dry run of the paper grid
(config/paper.yaml, ~300 jobs planned with neither weights nor data) and a no-op rerun of the finished
embedded study (run it first: `make run`). Each command runs `--repeat` times; the median counts.

    python bench/startup.py                 # in the environment as it is
    python bench/startup.py --repeat 5

It says whether the SLURM executor plugin is installed and whether SLURM's client tools are on PATH and
a controller answers: with the plugin installed, every start asks SLURM for its settings (`scontrol
show config`), which waits ~10 s where the tools are installed and no controller answers. The plugin
is the `slurm` extra (`make slurm`), installed where the slurm profile is used.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 3.0


def seconds(cmd: list[str], cwd: Path, repeat: int) -> tuple[float, str]:
    times, output = [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        output = done.stdout + done.stderr
        if done.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{output[-3000:]}")
    return statistics.median(times), output


def slurm_situation() -> str:
    plugin = importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None
    if not shutil.which("sinfo"):
        tools = "SLURM's client tools not on PATH"
    else:
        try:
            answers = subprocess.run(["sinfo", "-h"], capture_output=True, timeout=15).returncode == 0
        except subprocess.TimeoutExpired:
            answers = False
        tools = f"SLURM's client tools on PATH, {'a controller answers' if answers else 'no controller answers'}"
    return f"SLURM executor plugin {'installed' if plugin else 'not installed'}; {tools}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    snakemake = [sys.executable, "-m", "snakemake"]
    print(slurm_situation())
    rows = []
    with tempfile.TemporaryDirectory() as empty:
        rows.append(("snakemake --version", seconds(snakemake + ["--version"], ROOT, args.repeat)[0]))
        paper = snakemake + ["-n", "--cores", "2", "--snakefile", str(ROOT / "Snakefile"), "--directory", empty,
                             "--configfile", str(ROOT / "config" / "paper.yaml")]
        took, output = seconds(paper, ROOT, args.repeat)
        jobs = next((line.split()[-1] for line in output.splitlines() if line.startswith("total")), "?")
        rows.append((f"snakemake -n, paper grid ({jobs} jobs)", took))
    took, output = seconds(snakemake + ["--cores", "2"], ROOT, args.repeat)
    if "Nothing to be done" not in output:
        sys.exit("the embedded study is not finished (`make run` first): a no-op rerun cannot be timed")
    rows.append(("snakemake --cores 2, finished embedded study (no-op)", took))
    for what, took in rows:
        verdict = "" if what.startswith("snakemake --version") else \
            f"  {'within' if took <= TARGET_SECONDS else 'OVER'} {TARGET_SECONDS:g} s"
        print(f"{took:6.2f} s  {what}{verdict}")


if __name__ == "__main__":
    main()
