"""Stages `cell` and `tables`: E/F/O per cell over seeds, and a model's table with its provenance."""

from __future__ import annotations

from pathlib import Path

from .. import progress, provenance
from ..config import method_settings, primary_metric, scale
from ..files import read_json, write_json
from ..results import cells as cell_results
from ..results import tables as table_results
from ..results.figures import plot_tradeoff


def _cell_provenance(config: dict, model_name: str, method: str, dataset: str, runs: dict[int, dict],
                     base_dirs: dict[int, Path], data_paths: list[Path]) -> dict:
    """The config values, runs, data and weights behind one cell."""
    used = [dataset] + list(config["upstream"])
    return {
        "config": {"study": config["study"], "model": config["models"][model_name],
                   "method": method_settings(config, method), "datasets": {d: config["datasets"][d] for d in used},
                   "data_seed": config["data_seed"], "seeds": list(config["seeds"]),
                   "aggregation": config["aggregation"]},
        "runs": {str(seed): {"seed": seed, "environment": run.get("environment"),
                             "base_weights": provenance.weights_hashes(base_dirs[seed])}
                 for seed, run in runs.items()},
        "data": {str(p): provenance.sha256(p) for p in data_paths},
        "aggregated_by": provenance.environment(),
    }


def cell(config: dict, model_name: str, method: str, dataset: str, base_scores: dict[int, list[Path]],
         tuned_scores: dict[int, Path], runs: dict[int, Path], base_dirs: dict[int, Path], data_paths: list[Path],
         out: Path) -> None:
    """`base_scores`: per seed, the zero-shot scores files of the cell's eval sets (one per set)."""
    def merged(paths: list[Path]) -> dict:
        return {name: entry for path in paths for name, entry in read_json(path).items()}

    run_records = {seed: read_json(runs[seed]) for seed in config["seeds"]}
    per_seed = {seed: (merged(base_scores[seed]), read_json(tuned_scores[seed]), run_records[seed])
                for seed in config["seeds"]}
    result = cell_results.build_cell(model_name, method, dataset, list(config["upstream"]), per_seed,
                                    o_formula=config["aggregation"]["o"])
    result["settings"] = method_settings(config, method, model_name)
    result["metric"] = {d: f"{config['datasets'][d]['metric']}.{primary_metric(config, d)} x {scale(config, d):g}"
                        for d in [dataset] + list(config["upstream"])}
    result["provenance"] = _cell_provenance(config, model_name, method, dataset, run_records, base_dirs, data_paths)
    write_json(result, out)
    mean = result["mean"]
    summary = (f"E {mean['E']:.1f}, F {mean['F']:.1f}, O {mean['O']:.1f}" if mean else result["missing_reason"])
    progress.done(f"cell {model_name}/{method}/{dataset}", f"{summary} over {result['n_seeds']} seed(s)")


def _table_provenance(config: dict, model_name: str, cells: list[dict], cell_paths: list[Path]) -> dict:
    """What the table was built from: every cell file (hashed) with the commits and hardware of its runs."""
    return {
        "model": model_name,
        "config": config,
        "cells": {f"{c['method']}/{c['dataset']}": {
            "file": str(p), "sha256": provenance.sha256(p),
            "runs": {seed: {k: (r["environment"] or {}).get(k) for k in ("git", "hardware", "libraries")}
                     for seed, r in c["provenance"]["runs"].items()}}
            for c, p in zip(cells, cell_paths)},
        "data": {k: v for c in cells for k, v in c["provenance"]["data"].items()},
        "base_weights": {seed: r["base_weights"] for c in cells for seed, r in c["provenance"]["runs"].items()},
        "aggregated_by": provenance.environment(),
    }


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.3g}%"


def table_caption(config: dict, model_name: str, cells: list[dict]) -> str:
    replay = config["tuning"].get("replay", 0)
    others = [f"{c['method']} {_percent(c['settings'].get('replay', 0))}" for c in cells
              if c["settings"].get("replay", 0) != replay]
    return (f"{config['study']} study, {model_name}: mean ± std over seeds {config['seeds']}. "
            f"E on each downstream set's primary metric, F over upstream sets {config['upstream']}. "
            + (f"Every tuning batch mixes in {_percent(replay)} upstream replay (a forgetting mitigation)" if replay
               else "No upstream replay")
            + (f", except: {', '.join(dict.fromkeys(others))}." if others else "."))


def tables(config: dict, model_name: str, cell_paths: list[Path], outputs: dict[str, Path]) -> None:
    cells = [read_json(p) for p in cell_paths]
    caption = table_caption(config, model_name, cells)
    written = table_results.write_tables(cells, Path(outputs["md"]).with_suffix(""), caption)
    plot_tradeoff(cells, Path(outputs["plot"]), f"{config['study']}: {model_name}")
    write_json(_table_provenance(config, model_name, cells, cell_paths), outputs["provenance"])
    progress.done(f"tables {model_name}", f"{len(cells)} cells -> {', '.join(str(p) for p in written.values())}")
