"""The study's light steps, one function per workflow rule: data preparation, scoring and
aggregation. They import no model code, so these jobs start in well under a second; the
model-bound steps are in `runs`. Workflow scripts only unpack the `snakemake` object and call these."""

from __future__ import annotations

from pathlib import Path

from . import aggregation, datasets, paths, progress, provenance, report
from .files import read_json, read_jsonl, write_json
from .config import method_settings, primary_metric, scale, tune_method
from .metrics import Sample, score


def prepare(config: dict, dataset: str, split: str, out: Path, manifest_out: Path) -> None:
    frame, manifest = datasets.prepare(dataset, config["datasets"][dataset], split, config["data_seed"])
    datasets.write_split(frame, out)
    write_json(manifest, manifest_out)
    progress.done(f"prepare {dataset} {split}", f"{len(frame)} records")


# ---- evaluation -----------------------------------------------------------------------------

def score_predictions(config: dict, dataset: str, predictions_path: Path, test_path: Path) -> dict:
    records = {r["id"]: r for r in datasets.read_split(test_path)}
    predictions = read_jsonl(predictions_path)
    unknown = [p["id"] for p in predictions if p["id"] not in records]
    if unknown or len(predictions) != len(records):
        raise ValueError(f"{predictions_path}: {len(predictions)} predictions for {len(records)} test rows "
                         f"of {dataset!r}; unknown ids: {unknown[:5]}")
    samples = [Sample(id=p["id"], output=p["output"], answers=records[p["id"]]["answers"],
                      choices=records[p["id"]]["choices"], image_id=records[p["id"]]["image_id"],
                      category=records[p["id"]]["category"]) for p in predictions]
    metric = config["datasets"][dataset]["metric"]
    scores = score(metric, samples)
    primary = primary_metric(config, dataset)
    if primary not in scores:
        raise KeyError(f"config key datasets.{dataset}.primary: {primary!r} is not among {sorted(scores)}")
    return {"metric": metric, "primary": primary, "scale": scale(config, dataset), "scores": scores}


def score_run(config: dict, predictions: dict[str, Path], tests: dict[str, Path], out: Path,
              run_path: Path | None = None) -> None:
    """Scores of one run on each of its eval sets; a diverged tuning run (per its run.json) has
    none, and its scores file says so."""
    run = read_json(run_path) if run_path else {}
    job = f"score {'/'.join(Path(out).parts[-4:-1])} {Path(out).stem}"
    if run.get("diverged"):
        write_json({"diverged": run["diverged"]}, out)
        progress.done(job, f"none: the run diverged at step {run['diverged']['step']}")
        return
    scores = {name: score_predictions(config, name, predictions[name], tests[name]) for name in predictions}
    write_json(scores, out)
    progress.done(job, ", ".join(f"{name} {s['scores'][s['primary']]:.1f}" for name, s in scores.items()))


# ---- aggregation ----------------------------------------------------------------------------

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
    result = aggregation.build_cell(model_name, method, dataset, list(config["upstream"]), per_seed,
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
    written = aggregation.write_tables(cells, Path(outputs["md"]).with_suffix(""), caption)
    aggregation.plot_tradeoff(cells, Path(outputs["plot"]), f"{config['study']}: {model_name}")
    write_json(_table_provenance(config, model_name, cells, cell_paths), outputs["provenance"])
    progress.done(f"tables {model_name}", f"{len(cells)} cells -> {', '.join(str(p) for p in written.values())}")


def figures(config: dict, model_name: str, cell_paths: list[Path], outputs: dict[str, Path]) -> None:
    """The report's own figures and the per-cell page."""
    cells = [read_json(p) for p in cell_paths]
    root = paths.results_dir(config)
    logs = {(c["method"], c["dataset"]): {seed: Path(paths.tune_dir(root, model_name, tune_method(config, c["method"]),
                                                                     c["dataset"], seed))
                                          / "train_log.jsonl" for seed in config["seeds"]} for c in cells}
    title = f"{config['study']}: {model_name}"
    report.score_bars(cells, Path(outputs["scores"]), title)
    report.loss_curves(cells, logs, Path(outputs["loss"]))
    report.cells_page(cells, Path(outputs["cells"]), title)
    progress.done(f"figures {model_name}", f"score bars, {len(cells)} loss curves, cell details")
