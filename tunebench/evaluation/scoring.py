"""Scoring a predictions file against its prepared test split with the dataset's metric."""

from __future__ import annotations

from pathlib import Path

from ..data import formats, schema
from ..files import read_jsonl
from .metrics import Sample, cider_tokenizer, score


def notes(entry: dict, records: list[dict]) -> list[str]:
    """What the scores lack because the source does (RSVQA-LR's 2k copy has no question types)."""
    fmt = formats.FORMATS.get(entry.get("format"))
    if fmt and fmt.category and not any(r["category"] for r in records):
        return [f"no {fmt.category}s in this source: accuracy is not given per {fmt.category}"]
    return []


def score_predictions(dataset: str, job: dict, predictions_path: Path, test_path: Path) -> dict:
    """The dataset's scores entry: metric, primary key, the protocol it read letters by, the caption
    tokenizer CIDEr ran (null for metrics that tokenise nothing), notes on what the source lacks, and
    the scores. `job`: the plan's scoring slice of the dataset (metric, primary, protocol, format)."""
    records = schema.read_split(test_path)
    by_id = {r["id"]: r for r in records}
    predictions = read_jsonl(predictions_path)
    unknown = [p["id"] for p in predictions if p["id"] not in by_id]
    if unknown or len(predictions) != len(by_id):
        raise ValueError(f"{predictions_path}: {len(predictions)} predictions for {len(by_id)} test rows "
                         f"of {dataset!r}; unknown ids: {unknown[:5]}")
    samples = [Sample(id=p["id"], output=p["output"], answers=by_id[p["id"]]["answers"],
                      choices=by_id[p["id"]]["choices"], image_id=by_id[p["id"]]["image_id"],
                      category=by_id[p["id"]]["category"]) for p in predictions]
    metric, primary, protocol = job["metric"], job["primary"], job["protocol"]
    scores = score(metric, samples, protocol)
    if primary not in scores:  # a per-category key whose category this set lacks
        raise KeyError(f"config key datasets.{dataset}.primary: {primary!r} is not among {sorted(scores)}")
    return {"metric": metric, "primary": primary, "protocol": protocol,
            "tokenizer": cider_tokenizer() if metric == "cider" else None, "notes": notes(job, records), "scores": scores}
