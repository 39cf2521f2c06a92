"""Stage `prepare`: one dataset split in the record schema (Parquet), with its manifest."""

from __future__ import annotations

from pathlib import Path

from .. import progress
from ..data import schema, sources
from ..files import write_json


def prepare(job: dict, out: Path, manifest_out: Path) -> None:
    """`job`: the plan's prepare slice (dataset, split, its entry's preparation keys, data seed)."""
    frame, manifest = sources.prepare(job["dataset"], job["entry"], job["split"], job["data_seed"])
    schema.write_split(frame, out)
    write_json(manifest, manifest_out)
    progress.prepared(job, len(frame))
