"""tunebench's one record schema and its Parquet files: every source becomes these columns.

A record is {id, image_id, image (PNG/JPEG bytes), question (the full prompt), choices, answers,
task_type, category, split}. A split's file also holds each image's (height, width) in its Parquet
metadata: batching by length needs them before any image is read, and a job that tunes on 800
records with 10,000 upstream ones to replay would otherwise open every image first (about 1.3 s a
job: bench/open_splits.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
from PIL import Image

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
TEXT_COLUMNS = [c for c in SCHEMA if c != "image"]
IMAGE_SIZES_KEY = "tunebench.image_sizes"


# Small row groups: a job reads one record's image by reading its row group only (tunebench.data.records).
ROW_GROUP_ROWS = 8


def image_size(data: bytes) -> tuple[int, int]:
    """(height, width) from the image's header, without decoding its pixels."""
    width, height = Image.open(io.BytesIO(data)).size
    return height, width


def write_split(frame: pl.DataFrame, path: Path) -> None:
    sizes = json.dumps([image_size(data) for data in frame["image"]])
    atomic_write(path, lambda tmp: frame.write_parquet(tmp, row_group_size=ROW_GROUP_ROWS,
                                                       metadata={IMAGE_SIZES_KEY: sizes}))


def read_split(path: Path, columns: list[str] | None = None) -> list[dict]:
    return pl.read_parquet(path, columns=columns).to_dicts()


def image_sizes(path: Path, metadata: dict | None, rows: int) -> list[tuple[int, int]]:
    """The sizes write_split recorded (`metadata`: the file's Parquet key-value metadata)."""
    given = (metadata or {}).get(IMAGE_SIZES_KEY.encode())
    if given is None:
        raise ValueError(f"{path}: no {IMAGE_SIZES_KEY} in its Parquet metadata: not a split tunebench's "
                         "prepare stage wrote (rerun it)")
    try:
        sizes = json.loads(given)
    except ValueError:
        sizes = None
    if not (isinstance(sizes, list) and len(sizes) == rows and all(
            isinstance(s, list) and len(s) == 2 and all(type(v) is int and v > 0 for v in s) for s in sizes)):
        raise ValueError(f"{path}: its {IMAGE_SIZES_KEY} metadata is not one (height, width) of positive "
                         f"integers for each of its {rows} rows")
    return [tuple(s) for s in sizes]


def read_splits(paths: dict[str, Path]) -> dict[str, list[dict]]:
    return {name: read_split(path) for name, path in paths.items()}
