"""Do two runs of a study agree? Compares, between two results directories (e.g. the same config
run twice from scratch under two study names), every prediction file both hold byte for byte and
every cell's scores and E/F/O for the seeds both ran (one may have run a subset of the seeds).

    python bench/compare_studies.py results/embedded results/embedded_repro
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MEASURES = ("E", "F", "O", "downstream", "upstream")


def relative_files(root: Path, folder: str, pattern: str) -> set[Path]:
    return {p.relative_to(root / folder) for p in (root / folder).rglob(pattern)}


def cell_numbers(path: Path) -> dict:
    """What a cell measured per seed (not when or where: provenance differs between runs)."""
    cell = json.loads(path.read_text())
    return {seed: {k: run[k] for k in MEASURES if k in run} for seed, run in cell["seeds"].items()}


def same_cell(a: Path, b: Path) -> tuple[bool, int]:
    """Whether the seeds both cells hold agree, and how many that is."""
    x, y = cell_numbers(a), cell_numbers(b)
    seeds = set(x) & set(y)
    return all(x[s] == y[s] for s in seeds), len(seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args()
    predictions = relative_files(args.a, "predictions", "*.jsonl") & relative_files(args.b, "predictions", "*.jsonl")
    cells = relative_files(args.a, "cells", "*.json") & relative_files(args.b, "cells", "*.json")
    differing = [p for p in sorted(predictions)
                 if (args.a / "predictions" / p).read_bytes() != (args.b / "predictions" / p).read_bytes()]
    compared = {c: same_cell(args.a / "cells" / c, args.b / "cells" / c) for c in sorted(cells)}
    differing_cells = [c for c, (same, _) in compared.items() if not same]
    print(f"prediction files in both: {len(predictions)}, {len(differing)} differ")
    print(f"cells in both: {len(cells)} ({sum(n for _, n in compared.values())} cell-seeds), "
          f"{len(differing_cells)} differ in a score or E/F/O")
    for path in differing[:10] + differing_cells[:10]:
        print(f"  {path}")
    raise SystemExit(1 if differing or differing_cells or not predictions else 0)


if __name__ == "__main__":
    main()
