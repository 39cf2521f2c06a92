"""Do two runs of a study agree? Compares every prediction file byte for byte and every cell's
per-seed scores and E/F/O, between two results directories (e.g. the same config run twice from
scratch under two study names).

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args()
    predictions = relative_files(args.a, "predictions", "*.jsonl")
    cells = relative_files(args.a, "cells", "*.json")
    only = (predictions ^ relative_files(args.b, "predictions", "*.jsonl")) | (cells ^ relative_files(args.b, "cells", "*.json"))
    differing = [p for p in sorted(predictions & relative_files(args.b, "predictions", "*.jsonl"))
                 if (args.a / "predictions" / p).read_bytes() != (args.b / "predictions" / p).read_bytes()]
    differing_cells = [c for c in sorted(cells & relative_files(args.b, "cells", "*.json"))
                       if cell_numbers(args.a / "cells" / c) != cell_numbers(args.b / "cells" / c)]
    print(f"prediction files: {len(predictions)} compared, {len(differing)} differ")
    print(f"cells: {len(cells)} compared, {len(differing_cells)} differ in a score or E/F/O")
    print(f"files in only one of the two: {len(only)}")
    for path in differing[:10] + differing_cells[:10] + sorted(only)[:10]:
        print(f"  {path}")
    raise SystemExit(1 if differing or differing_cells or only else 0)


if __name__ == "__main__":
    main()
