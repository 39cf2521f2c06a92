"""Scoring a predictions file against its prepared test split with the dataset's metric."""

from __future__ import annotations

from pathlib import Path

from ..data import schema
from ..files import read_jsonl
from .metrics import Sample, score


def score_predictions(dataset: str, metric: str, primary: str, predictions_path: Path, test_path: Path) -> dict:
    """`metric`'s scores of the predictions of one test set, with the key that enters E/F/O."""
    by_id = {r["id"]: r for r in schema.read_split(test_path)}
    predictions = read_jsonl(predictions_path)
    unknown = [p["id"] for p in predictions if p["id"] not in by_id]
    if unknown or len(predictions) != len(by_id):
        raise ValueError(f"{predictions_path}: {len(predictions)} predictions for {len(by_id)} test rows "
                         f"of {dataset!r}; unknown ids: {unknown[:5]}")
    samples = [Sample(id=p["id"], output=p["output"], answers=by_id[p["id"]]["answers"],
                      choices=by_id[p["id"]]["choices"], image_id=by_id[p["id"]]["image_id"],
                      category=by_id[p["id"]]["category"]) for p in predictions]
    scores = score(metric, samples)
    if primary not in scores:  # a per-category key whose category this set lacks
        raise KeyError(f"config key datasets.{dataset}.primary: {primary!r} is not among {sorted(scores)}")
    return {"metric": metric, "primary": primary, "scores": scores}
