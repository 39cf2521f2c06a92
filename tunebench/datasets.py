"""Datasets: adapters from each source to tunebench's one record schema, stored as Parquet.

A record is {id, image_id, image (PNG/JPEG bytes), question, choices, answers, task_type,
category, split}. Every adapter returns records in this schema; `write_split` checks them, so
a bad row fails here, named, and never reaches training or scoring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import polars as pl

from . import world
from .files import atomic_write

TASK_TYPES = ("vqa", "yesno", "choice", "caption", "exact")
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
SPLITS = ("train", "test")


class DatasetError(ValueError):
    """Bad input data, with the dataset, split and row it was found in."""


def synthetic(name: str, entry: dict, split: str, seed: int) -> list[dict]:
    """The embedded image world (tunebench.world)."""
    n_images = entry[f"{split}_images"]
    return world.generate(entry["task"], n_images, seed=seed, split=split)


SOURCES: dict[str, Callable[[str, dict, str, int], list[dict]]] = {"synthetic": synthetic}


def check_record(dataset: str, split: str, record: dict) -> None:
    row = record.get("id", "?")
    where = f"dataset {dataset!r}, split {split!r}, row {row!r}"
    missing = [k for k in SCHEMA if k not in record]
    if missing:
        raise DatasetError(f"{where}: missing fields {missing}")
    if not record["answers"]:
        raise DatasetError(f"{where}: no answer")
    if record["task_type"] not in TASK_TYPES:
        raise DatasetError(f"{where}: task_type {record['task_type']!r} is not one of {TASK_TYPES}")
    if record["task_type"] == "choice" and not record["choices"]:
        raise DatasetError(f"{where}: a multiple-choice row has no choices")
    if not record["image"]:
        raise DatasetError(f"{where}: empty image")


def prepare(name: str, entry: dict, split: str, seed: int) -> pl.DataFrame:
    if split not in SPLITS:
        raise DatasetError(f"dataset {name!r}: unknown split {split!r}; known: {SPLITS}")
    source = entry["source"]
    if source not in SOURCES:
        raise DatasetError(f"dataset {name!r}: unknown source {source!r}; known: {sorted(SOURCES)}")
    records = SOURCES[source](name, entry, split, seed)
    if not records:
        raise DatasetError(f"dataset {name!r}, split {split!r}: no rows")
    for record in records:
        check_record(name, split, record)
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"dataset {name!r}, split {split!r}: duplicate row ids")
    return pl.DataFrame(records, schema=SCHEMA)


def write_split(frame: pl.DataFrame, path: Path) -> None:
    atomic_write(path, frame.write_parquet)


def read_split(path: Path) -> list[dict]:
    return pl.read_parquet(path).to_dicts()
