"""How long a tuning job takes to open its splits before its first step: the tuned set and every
upstream set it replays from (text columns and image sizes; images are read per batch later), in a
fresh process, the median of --repeat runs.

    python bench/open_splits.py                          # results/embedded/data, with this checkout
    python bench/open_splits.py --code-root /tmp/old     # with another checkout's tunebench (before a change)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPEN = """
import sys, time
from pathlib import Path
from tunebench.data import records
paths = {Path(p).parent.name: Path(p) for p in sys.argv[1:]}
start = time.perf_counter()
opened = records.read(paths)
print(time.perf_counter() - start, sum(len(s) for s in opened.values()))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "results" / "embedded" / "data")
    parser.add_argument("--tuned", default="big_colour")
    parser.add_argument("--upstream", nargs="+", default=["shapes_vqa", "shapes_yesno", "shapes_choice", "shapes_caption"])
    parser.add_argument("--code-root", type=Path, default=ROOT)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    paths = [str(args.data / name / "train.parquet") for name in [args.tuned, *args.upstream]]
    env = {**os.environ, "PYTHONPATH": str(args.code_root)}
    runs = [subprocess.run([sys.executable, "-c", OPEN, *paths], env=env, cwd=args.code_root, capture_output=True,
                           text=True, check=True)
            for _ in range(args.repeat)]
    seconds = statistics.median(float(r.stdout.split()[0]) for r in runs)
    print(f"{seconds:.3f} s to open {runs[0].stdout.split()[1]} records of {len(paths)} splits "
          f"(code: {args.code_root})")


if __name__ == "__main__":
    main()
