"""Scoring a predictions file against its prepared test split with the dataset's metric."""

from __future__ import annotations

from pathlib import Path

from ..config import primary_metric, scale
from ..data import schema
from ..files import read_jsonl
from .metrics import Sample, score


def score_predictions(config: dict, dataset: str, predictions_path: Path, test_path: Path) -> dict:
    by_id = {r["id"]: r for r in schema.read_split(test_path)}
    predictions = read_jsonl(predictions_path)
    unknown = [p["id"] for p in predictions if p["id"] not in by_id]
    if unknown or len(predictions) != len(by_id):
        raise ValueError(f"{predictions_path}: {len(predictions)} predictions for {len(by_id)} test rows "
                         f"of {dataset!r}; unknown ids: {unknown[:5]}")
    samples = [Sample(id=p["id"], output=p["output"], answers=by_id[p["id"]]["answers"],
                      choices=by_id[p["id"]]["choices"], image_id=by_id[p["id"]]["image_id"],
                      category=by_id[p["id"]]["category"]) for p in predictions]
    metric = config["datasets"][dataset]["metric"]
    scores = score(metric, samples)
    primary = primary_metric(config, dataset)
    if primary not in scores:
        raise KeyError(f"config key datasets.{dataset}.primary: {primary!r} is not among {sorted(scores)}")
    return {"metric": metric, "primary": primary, "scale": scale(config, dataset), "scores": scores}
