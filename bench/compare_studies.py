"""Do two runs of a study agree? Compares, between two results directories (e.g. the same config run
from scratch on two machines, or twice under two study names), every prediction file both hold and
every cell's scores and E/F/O for the seeds both ran (one may have run a subset of the seeds).

    python bench/compare_studies.py results/embedded /elsewhere/results/embedded

Prints "identical" when every shared prediction file is byte-identical and every shared cell-seed
has the same numbers; otherwise the drift: per prediction file how many answers differ, per cell
and seed each number that moved (from -> to, and by how much). Exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MEASURES = ("E", "F", "O")


def relative_files(root: Path, folder: str, pattern: str) -> set[Path]:
    return {p.relative_to(root / folder) for p in (root / folder).rglob(pattern)}


def numbers(seed_result: dict) -> dict[str, float]:
    """What a cell measured for one seed, flat: E, F, O and every score before and after tuning."""
    flat = {k: seed_result[k] for k in MEASURES if k in seed_result}
    sets = {"downstream": seed_result.get("downstream")} | {f"upstream {k}": v for k, v in
                                                            (seed_result.get("upstream") or {}).items()}
    for name, scores in sets.items():
        for when in ("before", "after"):
            if scores and when in scores:
                flat[f"{name} {when}"] = scores[when]
    return flat


def cell_drift(a: Path, b: Path) -> tuple[list[str], int]:
    """Each number that differs between the seeds both cells hold, and how many seeds that is."""
    x, y = (json.loads(p.read_text())["seeds"] for p in (a, b))
    seeds = sorted(set(x) & set(y))
    drift = []
    for seed in seeds:
        if "diverged" in x[seed] or "diverged" in y[seed]:
            if x[seed] != y[seed]:
                drift.append(f"seed {seed}: {x[seed].get('diverged') or 'ran'} -> {y[seed].get('diverged') or 'ran'}")
            continue
        nx, ny = numbers(x[seed]), numbers(y[seed])
        drift += [f"seed {seed} {k}: {nx.get(k)} -> {ny.get(k)}"
                  + (f" ({ny[k] - nx[k]:+.2f})" if k in nx and k in ny else "")
                  for k in sorted(set(nx) | set(ny)) if nx.get(k) != ny.get(k)]
    return drift, len(seeds)


def answers_differing(a: Path, b: Path) -> str:
    x, y = (a.read_text().splitlines(), b.read_text().splitlines())
    outputs = lambda lines: {r["id"]: r["output"] for r in map(json.loads, lines)}  # noqa: E731
    ox, oy = outputs(x), outputs(y)
    changed = sum(ox.get(i) != oy.get(i) for i in set(ox) | set(oy))
    return f"{changed} of {len(set(ox) | set(oy))} answers differ"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args()
    predictions = relative_files(args.a, "predictions", "*.jsonl") & relative_files(args.b, "predictions", "*.jsonl")
    cells = relative_files(args.a, "cells", "*.json") & relative_files(args.b, "cells", "*.json")
    if not predictions or not cells:
        raise SystemExit(f"nothing to compare: {len(predictions)} prediction files and {len(cells)} cells in both")
    differing = {p: answers_differing(args.a / "predictions" / p, args.b / "predictions" / p)
                 for p in sorted(predictions)
                 if (args.a / "predictions" / p).read_bytes() != (args.b / "predictions" / p).read_bytes()}
    compared = {c: cell_drift(args.a / "cells" / c, args.b / "cells" / c) for c in sorted(cells)}
    drifted = {c: drift for c, (drift, _) in compared.items() if drift}
    cell_seeds = sum(n for _, n in compared.values())
    if not differing and not drifted:
        print(f"identical: {len(predictions)} prediction files, {len(cells)} cells ({cell_seeds} cell-seeds)")
        return
    print(f"prediction files in both: {len(predictions)}, {len(differing)} differ")
    for path, what in differing.items():
        print(f"  {path}: {what}")
    print(f"cells in both: {len(cells)} ({cell_seeds} cell-seeds), {len(drifted)} drifted")
    for cell, drift in drifted.items():
        print(f"  {cell.with_suffix('')}")
        for line in drift:
            print(f"    {line}")
    raise SystemExit(1)


if __name__ == "__main__":
    main()
