"""Stages `cell` and `tables`: E/F/O per cell over seeds, and a model's table with its provenance."""

from __future__ import annotations

from pathlib import Path

from .. import progress, provenance
from ..files import read_json, write_json
from ..results import cells as cell_results
from ..results import tables as table_results


def _cell_provenance(job: dict, runs: dict[int, dict], base_dirs: dict[int, Path], data_paths: list[Path]) -> dict:
    """The resolved plan slice, runs, data and weights behind one cell."""
    return {
        "plan": job,
        "runs": {str(seed): {"seed": seed, "environment": run.get("environment"),
                             "base_weights": provenance.weights_hashes(base_dirs[seed])}
                 for seed, run in runs.items()},
        "data": {str(p): provenance.sha256(p) for p in data_paths},
        "aggregated_by": provenance.environment(),
    }


def cell(job: dict, base_scores: dict[int, Path], tuned_scores: dict[int, Path], runs: dict[int, Path],
         base_dirs: dict[int, Path], data_paths: list[Path], out: Path) -> None:
    """`job`: the plan's cell slice; `base_scores`: per seed, the zero-shot scores file (every eval set)."""
    seeds = job["seeds"]
    run_records = {seed: read_json(runs[seed]) for seed in seeds}
    per_seed = {seed: (read_json(base_scores[seed]), read_json(tuned_scores[seed]), run_records[seed]) for seed in seeds}
    result = cell_results.build_cell(job["model"], job["method"], job["dataset"], job["upstream"], per_seed,
                                     job["scale"], o_formula=job["o"])
    result["settings"] = job["settings"]
    result["metric"] = {d: f"{metric} x {job['scale'][d]:g}" for d, metric in job["metric"].items()}
    result["provenance"] = _cell_provenance(job, run_records, base_dirs, data_paths)
    write_json(result, out)
    progress.aggregated(result)


def _table_provenance(job: dict, cells: list[dict], cell_paths: list[Path]) -> dict:
    """What the table was built from: every cell file (hashed) with the commits and hardware of its runs."""
    return {
        "plan": job,
        "cells": {f"{c['method']}/{c['dataset']}": {
            "file": str(p), "sha256": provenance.sha256(p), "settings": c["settings"],
            "runs": {seed: {k: (r["environment"] or {}).get(k) for k in ("git", "hardware", "libraries")}
                     for seed, r in c["provenance"]["runs"].items()}}
            for c, p in zip(cells, cell_paths)},
        "data": {k: v for c in cells for k, v in c["provenance"]["data"].items()},
        "base_weights": {seed: r["base_weights"] for c in cells for seed, r in c["provenance"]["runs"].items()},
        "aggregated_by": provenance.environment(),
    }


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.3g}%"


def table_caption(job: dict, cells: list[dict]) -> str:
    replay = job["replay"]
    others = [f"{c['method']} {_percent(c['settings']['replay'])}" for c in cells if c["settings"]["replay"] != replay]
    return (f"{job['study']} study, {job['model']}: mean ± std over seeds {job['seeds']}. "
            f"E on each downstream set's primary metric, F over upstream sets {job['upstream']}. "
            + (f"Every tuning batch mixes in {_percent(replay)} upstream replay (a forgetting mitigation)" if replay
               else "No upstream replay")
            + (f", except: {', '.join(dict.fromkeys(others))}." if others else "."))


def tables(job: dict, cell_paths: list[Path], outputs: dict[str, Path]) -> None:
    """`job`: the plan's table slice (model, study, seeds, upstream sets, the shared replay fraction)."""
    cells = [read_json(p) for p in cell_paths]
    written = table_results.write_tables(cells, Path(outputs["md"]).with_suffix(""), table_caption(job, cells))
    write_json(_table_provenance(job, cells, cell_paths), outputs["provenance"])
    progress.drew(f"tables {job['model']}", written.values())
