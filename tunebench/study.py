"""The study's light steps, one function per workflow rule: data preparation, scoring and
aggregation. They import no model code, so these jobs start in well under a second; the
model-bound steps are in `runs`. Workflow scripts only unpack the `snakemake` object and call these."""

from __future__ import annotations

from pathlib import Path

from . import aggregation, datasets
from .files import read_json, read_jsonl, write_json
from .config import method_settings, primary_metric
from .metrics import Sample, score


def prepare(config: dict, dataset: str, split: str, out: Path) -> None:
    frame = datasets.prepare(dataset, config["datasets"][dataset], split, config["data_seed"])
    datasets.write_split(frame, out)


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
    return {"metric": metric, "primary": primary, "scores": scores}


def score_run(config: dict, predictions: dict[str, Path], tests: dict[str, Path], out: Path) -> None:
    write_json({name: score_predictions(config, name, predictions[name], tests[name]) for name in predictions}, out)


# ---- aggregation ----------------------------------------------------------------------------

def cell(config: dict, model_name: str, method: str, dataset: str, base_scores: dict[int, Path],
         tuned_scores: dict[int, Path], runs: dict[int, Path], out: Path) -> None:
    per_seed = {seed: (read_json(base_scores[seed]), read_json(tuned_scores[seed]), read_json(runs[seed]))
                for seed in config["seeds"]}
    result = aggregation.build_cell(model_name, method, dataset, list(config["upstream"]), per_seed,
                                    o_formula=config["aggregation"]["o"])
    result["settings"] = method_settings(config, method)
    result["metric"] = {d: f"{config['datasets'][d]['metric']}.{primary_metric(config, d)}"
                        for d in [dataset] + list(config["upstream"])}
    write_json(result, out)


def tables(config: dict, model_name: str, cell_paths: list[Path], out_prefix: Path, plot: Path) -> None:
    cells = [read_json(p) for p in cell_paths]
    replay = config["tuning"].get("replay", 0)
    others = [f"{c['method']} {c['settings'].get('replay', 0):.0%}" for c in cells
              if c["settings"].get("replay", 0) != replay]
    caption = (f"{config['study']} study, {model_name}: mean ± std over seeds {config['seeds']}. "
               f"E on each downstream set's primary metric, F over upstream sets {config['upstream']}. "
               + (f"Every tuning batch mixes in {replay:.0%} upstream replay (a forgetting mitigation)" if replay
                  else "No upstream replay")
               + (f", except: {', '.join(dict.fromkeys(others))}." if others else "."))
    aggregation.write_tables(cells, Path(out_prefix), caption)
    aggregation.plot_tradeoff(cells, Path(plot), f"{config['study']}: {model_name}")
