"""Stage `prepare`: one dataset split in the record schema (Parquet), with its manifest."""

from __future__ import annotations

from pathlib import Path

from .. import progress
from ..data import schema, sources
from ..files import write_json


def prepare(config: dict, dataset: str, split: str, out: Path, manifest_out: Path) -> None:
    frame, manifest = sources.prepare(dataset, config["datasets"][dataset], split, config["data_seed"])
    schema.write_split(frame, out)
    write_json(manifest, manifest_out)
    progress.done(f"prepare {dataset} {split}", f"{len(frame)} records")
