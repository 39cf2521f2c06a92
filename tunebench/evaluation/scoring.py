"""Scoring a predictions file against its prepared test split with the dataset's metric."""

from __future__ import annotations

from pathlib import Path

from ..data import formats, schema
from ..files import read_jsonl
from .metrics import Sample, cider_tokenizer, resampled, score

DIGITS = 6  # resampled scores are stored to a millionth of a point


def notes(entry: dict, records: list[dict]) -> list[str]:
    """What the scores lack because the source does (RSVQA-LR's 2k copy has no question types)."""
    fmt = formats.FORMATS.get(entry.get("format"))
    if fmt and fmt.category and not any(r["category"] for r in records):
        return [f"no {fmt.category}s in this source: accuracy is not given per {fmt.category}"]
    return []


def score_predictions(dataset: str, job: dict, predictions_path: Path, test_path: Path) -> dict:
    """The dataset's scores entry: metric, primary key, the protocol it read letters by, the caption
    tokenizer CIDEr ran (null for metrics that tokenise nothing), notes on what the source lacks, the
    scores, each test item's own score (`items`, in test-split order) and the primary score on each
    resample of the test set (`resampled`; tunebench.evaluation.resampling). `job`: the plan's scoring
    slice of the dataset (metric, primary, protocol, format, resamples, resample seed)."""
    records = schema.read_split(test_path, schema.TEXT_COLUMNS)  # not the images: memory stays the texts'
    outputs = {p["id"]: p["output"] for p in read_jsonl(predictions_path)}
    ids = {r["id"] for r in records}
    unknown = [i for i in outputs if i not in ids]
    if unknown or len(outputs) != len(records):
        raise ValueError(f"{predictions_path}: {len(outputs)} predictions for {len(records)} test rows "
                         f"of {dataset!r}; unknown ids: {unknown[:5]}")
    # In test-split order, so every run's items (and resamples) of this set line up.
    samples = [Sample(id=r["id"], output=outputs[r["id"]], answers=r["answers"], choices=r["choices"],
                      image_id=r["image_id"], category=r["category"]) for r in records]
    metric, primary, protocol = job["metric"], job["primary"], job["protocol"]
    scores = score(metric, samples, protocol)
    if primary not in scores:  # a per-category key whose category this set lacks
        raise KeyError(f"config key datasets.{dataset}.primary: {primary!r} is not among {sorted(scores)}")
    form = resampled(metric, samples, primary, protocol)
    replicates = form.replicates(job["resamples"], job["resample_seed"], dataset)
    return {"metric": metric, "primary": primary, "protocol": protocol,
            "tokenizer": cider_tokenizer() if metric == "cider" else None, "notes": notes(job, records),
            "scores": scores,
            "items": {"id": [s.id for s in samples], "score": [round(v, DIGITS) for v in form.item_scores]},
            "resampled": {"resamples": job["resamples"], "seed": job["resample_seed"], "unit": form.layout.unit_name,
                          "strata": form.layout.strata_name, "primary": [round(float(v), DIGITS) for v in replicates]}}
