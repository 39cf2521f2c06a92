"""tunebench's one record schema and its Parquet files: every source becomes these columns.

A record is {id, image_id, image (PNG/JPEG bytes), question (the full prompt), choices, answers,
task_type, category, split}."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ..files import atomic_write

SCHEMA = {
    "id": pl.String,
    "image_id": pl.String,
    "image": pl.Binary,
    "question": pl.String,
    "choices": pl.List(pl.String),
    "answers": pl.List(pl.String),
    "task_type": pl.String,
    "category": pl.String,
    "split": pl.String,
}


# Small row groups: a job reads one record's image by reading its row group only (tunebench.data.records).
ROW_GROUP_ROWS = 8


def write_split(frame: pl.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: frame.write_parquet(tmp, row_group_size=ROW_GROUP_ROWS))


def read_split(path: Path) -> list[dict]:
    return pl.read_parquet(path).to_dicts()


def read_splits(paths: dict[str, Path]) -> dict[str, list[dict]]:
    return {name: read_split(path) for name, path in paths.items()}
