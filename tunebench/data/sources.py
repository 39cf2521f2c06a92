"""Datasets: sources -> tunebench's one record schema, stored as Parquet with a manifest.

A record is {id, image_id, image (PNG/JPEG bytes), question, choices, answers, task_type,
category, split}. A dataset entry in config either is synthetic (the embedded world) or names
one source per split (`train:` and `test:`), since evaluation copies often lack a train split:

- `hf`: a Hugging Face datasets id or a folder of data files, through `datasets.load_dataset`
  (the local HF cache and HF_DATASETS_OFFLINE apply as usual);
- `hf_disk`: a folder written by `datasets`' `save_to_disk`;
- `llava`: LLaVA-format JSON plus an image folder;
- `local`: bring-your-own JSONL or CSV plus an image folder;
- `rsvqa_release`, `iconqa_release`: the original releases of RSVQA and IconQA (the sources with
  a train split).

The first two hold rows in the dataset's public schema, converted by the entry's `format`
(tunebench.data.formats.FORMATS). A source lacking a column its format reads (or a `where:` key)
is refused before any row is converted, naming dataset, split, source, the column and the
columns it has. Every row is checked here (image present, decodable and within the pixel limit, an
image path inside the images folder, an answer, choices that fit); a bad row, and a line of a JSONL
or CSV file that holds no row, fails with the dataset, split and row id (or line), or, with
`skip_bad_rows: true`, is skipped and listed in the split's manifest. Never a silent drop.
References that are placeholders (an evaluation copy without public answers) are refused for the
whole split.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from PIL import Image, UnidentifiedImageError

from . import formats, world
from .formats import TASK_TYPES, RowError

if TYPE_CHECKING:
    import polars as pl

SPLITS = ("train", "test")
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS  # Pillow's decompression-bomb limit: the schema's default


class DatasetError(ValueError):
    """Bad input data, with the dataset, split and row it was found in."""


@dataclass
class Rows:
    """A source's rows and how to turn one into records."""

    rows: Sequence[dict]
    convert: Callable[[dict, int], list[dict]]
    row_id: Callable[[dict, int], str]
    base_dir: Path | None = None  # image paths are relative to it
    required: tuple = ()  # the columns `convert` reads (formats.missing_columns)
    reader: str = ""  # what reads them, as error messages name it
    unit: tuple[str, ...] = ()  # rows equal on these columns are drawn whole by max_samples


def columns(rows: Sequence[dict]) -> list[str]:
    """A `datasets` split's columns, or every key of a list of rows (JSON, CSV)."""
    if hasattr(rows, "column_names"):
        return list(rows.column_names)
    return sorted({key for row in rows for key in row})


def column_values(rows: Sequence[dict], column: str) -> list:
    """One column of a `datasets` split (read without decoding images) or of a list of rows."""
    return list(rows[column]) if hasattr(rows, "column_names") else [row[column] for row in rows]


def describe(spec: dict) -> str:
    """The source of a split spec, as error messages name it."""
    extra = "".join(f", {key} {spec[key]!r}" for key in ("name", "split") if key in spec)
    return f"source {spec['source']} {spec['path']!r}" + (f" ({extra[2:]})" if extra else "")


def check_columns(name: str, split: str, spec: dict, expected: tuple, present: list[str], reader: str) -> None:
    """One error for every column `reader` needs and the source lacks, before any row is read."""
    missing = formats.missing_columns(expected, present)
    if missing:
        raise DatasetError(f"dataset {name!r}, split {split!r}, {describe(spec)}: no column {', '.join(missing)} "
                           f"({reader} reads it); the source has columns {sorted(present)}")


# ---- sources ---------------------------------------------------------------------------------

def synthetic(name: str, entry: dict, spec: dict, split: str, seed: int) -> Rows:
    """The embedded image world (tunebench.data.world)."""
    records = world.generate(entry["task"], entry[f"{split}_images"], seed=seed, split=split)
    return Rows(records, lambda r, i: [r], lambda r, i: r["id"])


def _undecoded(ds):
    """Image columns as {bytes, path}: we decode and check each image ourselves, naming the row."""
    from datasets import Image as ImageFeature

    for column, feature in ds.features.items():
        if isinstance(feature, ImageFeature):
            ds = ds.cast_column(column, ImageFeature(decode=False))
    return ds


def _load_hf(name: str, spec: dict, split: str, config_name: str | None):
    import datasets as hf

    where = f"dataset {name!r}, split {split!r}"
    path, hf_split = spec["path"], spec.get("split", split)
    try:
        if spec["source"] == "hf_disk":
            ds = hf.load_from_disk(path)
            if isinstance(ds, hf.DatasetDict):
                if hf_split not in ds:
                    raise DatasetError(f"{where}: {path!r} has no split {hf_split!r}; it has {sorted(ds)}")
                ds = ds[hf_split]
        else:
            ds = hf.load_dataset(path, config_name, split=hf_split, revision=spec.get("revision"))
    except DatasetError:
        raise
    except Exception as err:  # datasets raises many kinds: not found, offline, unknown split or config
        raise DatasetError(f"{where}: cannot load {path!r} (config {config_name!r}, split {hf_split!r}): "
                           f"{type(err).__name__}: {err}") from err
    where = spec.get("where", {})
    check_columns(name, split, spec, tuple(where), ds.column_names, "`where:`")
    for column, value in where.items():
        ds = ds.filter(lambda v: v == value, input_columns=column)
    return _undecoded(ds)


def formatted(rows: Sequence[dict], fmt_name: str, entry: dict, base_dir: Path | None, **ctx) -> Rows:
    """Rows in a public schema, converted by the format `fmt_name` (with the entry's options)."""
    fmt = formats.FORMATS[fmt_name]
    ctx = {"options": entry.get("options", {}), **ctx}
    return Rows(rows, lambda row, i: fmt.convert(row, i, ctx), lambda row, i: formats.row_id(row, i, fmt.id_fields),
                base_dir, fmt.required(ctx["options"]), f"format {fmt_name!r}", fmt.unit)


def hf_rows(name: str, entry: dict, spec: dict, split: str, seed: int) -> Rows:
    images = None
    if "image_config" in spec:  # GQA keeps images in a config of their own, keyed by id
        on_disk = spec["source"] == "hf_disk"  # then image_config is the saved images folder
        image_spec = {**spec, "where": {}, **({"path": spec["image_config"]} if on_disk else {})}
        loaded = _load_hf(name, image_spec, split, None if on_disk else spec["image_config"])
        check_columns(name, split, {**image_spec, "name": spec["image_config"]}, formats.GQA_IMAGE_COLUMNS,
                      loaded.column_names, "GQA's images config")
        images = dict(zip(loaded["id"], loaded["image"]))
    ds = _load_hf(name, spec, split, spec.get("name"))
    return formatted(ds, entry["format"], entry, Path(spec["path"]) if spec["source"] == "hf_disk" else None,
                     images=images)


def _task_type(entry: dict) -> str:
    return entry["task_type"] if "task_type" in entry else formats.FORMATS[entry["format"]].task_type


class BadRow(dict):
    """A line or entry of a rows file that holds no row (malformed, or no object): it fails, or is
    skipped under skip_bad_rows, as a bad row does, named by where it is."""

    def __init__(self, where: str, reason: str):
        super().__init__()
        self.where, self.reason = where, reason


_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false",
               type(None): "null"}


def _row(value, where: str):
    return value if isinstance(value, dict) else BadRow(where, f"{_JSON_TYPES[type(value)]}, not an object")


def _jsonl_rows(path: Path) -> list[dict]:
    rows = []
    for n, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
            if line.strip():
                rows.append(_row(json.loads(line), f"line {n}"))
        except UnicodeDecodeError:
            rows.append(BadRow(f"line {n}", "not UTF-8 text"))
        except json.JSONDecodeError as err:
            rows.append(BadRow(f"line {n}", f"not valid JSON in {str(path)!r}: {err.msg} (column {err.colno})"))
    return rows


def _csv_rows(path: Path) -> list[dict]:
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return rows
            except csv.Error as err:
                rows.append(BadRow(f"line {reader.line_num}", f"malformed CSV in {str(path)!r}: {err}"))
                continue
            fields = len(reader.fieldnames) + len(row.get(None, [])) - list(row.values()).count(None)
            if fields != len(reader.fieldnames):
                rows.append(BadRow(f"line {reader.line_num}", f"{fields} fields in {str(path)!r}, its header has "
                                                              f"{len(reader.fieldnames)}"))
            else:
                rows.append(row)


def _read_file(name: str, split: str, path: Path):
    """A JSON file's content; JSONL and CSV as rows, a line that holds no row as a BadRow."""
    if not path.is_file():
        raise DatasetError(f"dataset {name!r}, split {split!r}: file {str(path)!r} not found")
    try:
        if path.suffix == ".csv":
            return _csv_rows(path)
        if path.suffix == ".jsonl":
            return _jsonl_rows(path)
        return json.loads(path.read_text())
    except (json.JSONDecodeError, csv.Error, UnicodeDecodeError) as err:
        raise DatasetError(f"dataset {name!r}, split {split!r}: cannot read {str(path)!r}: {err}") from err


def file_rows(name: str, entry: dict, spec: dict, split: str, seed: int) -> Rows:
    """`llava` (LLaVA JSON) and `local` (bring-your-own JSONL/CSV); images under `images`."""
    path = Path(spec["path"])
    rows = _read_file(name, split, path)
    if not isinstance(rows, list):
        raise DatasetError(f"dataset {name!r}, split {split!r}: {str(path)!r} holds "
                           f"{_JSON_TYPES.get(type(rows), 'an object')}, not a list of rows")
    rows = [_row(row, f"entry {i}") for i, row in enumerate(rows)]
    task_type = _task_type(entry)
    if spec["source"] == "llava":
        convert, required = formats.llava, formats.LLAVA_COLUMNS
    else:
        convert, required = formats.own, formats.OWN_COLUMNS + (("question",) if task_type != "caption" else ())

    def converted(row: dict, i: int) -> list[dict]:
        if isinstance(row, BadRow):
            raise RowError(row.reason)
        return convert(row, i, task_type)

    def row_id(row: dict, i: int) -> str:
        return row.where if isinstance(row, BadRow) else str(row.get("id", i))

    return Rows(rows, converted, row_id, Path(spec.get("images", path.parent)), required, f"source {spec['source']}")


def rsvqa_release(name: str, entry: dict, spec: dict, split: str, seed: int) -> Rows:
    """RSVQA's original release (Zenodo): `<prefix>_questions.json` (the `path`), its `_answers.json`
    beside it, images `<img_id>.tif` under `images`; inactive questions are left out as RSVQA does."""
    questions_path = Path(spec["path"])
    answers_path = questions_path.with_name(questions_path.name.replace("_questions.json", "_answers.json"))
    questions = _read_file(name, split, questions_path)["questions"]
    answers = {a["question_id"]: a["answer"] for a in _read_file(name, split, answers_path)["answers"]
               if a.get("active", True)}
    rows = [{"question_id": q["id"], "image_id": q["img_id"], "image": f"{q['img_id']}.tif",
             "question": q["question"], "answer": answers.get(q["id"]), "question_type": q["type"]}
            for q in questions if q.get("active", True)]
    return formatted(rows, "rsvqa", entry, Path(spec.get("images", questions_path.parent)))


def iconqa_release(name: str, entry: dict, spec: dict, split: str, seed: int) -> Rows:
    """IconQA's original release: `problems.json` and `pid_splits.json` in `path` (iconqa_data), images
    at iconqa/<split>/choose_txt/<pid>/image.png; the choose_txt questions of the source split."""
    root, source_split = Path(spec["path"]), spec.get("split", split)
    problems = _read_file(name, split, root / "problems.json")
    pids = _read_file(name, split, root / "pid_splits.json").get(f"choose_txt_{source_split}")
    if pids is None:
        raise DatasetError(f"dataset {name!r}, split {split!r}: {str(root / 'pid_splits.json')!r} has no "
                           f"'choose_txt_{source_split}'")
    rows = [{**problems[pid], "question_id": pid, "query_image": f"iconqa/{source_split}/choose_txt/{pid}/image.png"}
            for pid in pids]
    return formatted(rows, "iconqa", entry, root)


SOURCES: dict[str, Callable[[str, dict, dict, str, int], Rows]] = {
    "synthetic": synthetic,
    "hf": hf_rows,
    "hf_disk": hf_rows,
    "llava": file_rows,
    "local": file_rows,
    "rsvqa_release": rsvqa_release,
    "iconqa_release": iconqa_release,
}


def local_files(spec: dict) -> list[Path]:
    """The local files and folders a split's source reads: their content is an input of its
    preparation (a fixed label reruns that dataset). A hub id reads nothing local."""
    source, path = spec["source"], Path(spec["path"])
    if source in ("local", "llava"):
        return [path, Path(spec.get("images", path.parent))]
    if source == "rsvqa_release":
        answers = path.with_name(path.name.replace("_questions.json", "_answers.json"))
        return [path, answers, Path(spec.get("images", path.parent))]
    if source == "hf" and not path.is_dir():
        return []  # a hub id: its revision is in the config
    return [path] + ([Path(spec["image_config"])] if source == "hf_disk" and "image_config" in spec else [])


# ---- images and checks -----------------------------------------------------------------------

def image_path(value: str, base_dir: Path | None) -> Path:
    """A row's image path, inside its images folder: a row naming '../secret.png' or '/etc/...' is
    refused (rows files get shared; the folder is what the config names)."""
    if base_dir is None:
        return Path(value)
    path = Path(os.path.normpath(base_dir / value))
    if not Path(os.path.abspath(path)).is_relative_to(os.path.abspath(base_dir)):
        raise RowError(f"image path {value!r} is outside the images folder {str(base_dir)!r}")
    return path


@contextmanager
def _pixel_limit_of_our_own():
    """Pillow's own decompression-bomb check off: the caller applies the dataset's limit, naming the row."""
    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _decoded(data: bytes, what: str, max_pixels: int) -> bytes:
    """`data` checked to be an image within `max_pixels`; PNG and JPEG as they are, other formats as PNG."""
    try:
        with _pixel_limit_of_our_own(), Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:  # before decoding: a decompression bomb is never expanded
                raise RowError(f"over the pixel limit: {what} is {width}x{height} = {width * height:,} pixels, "
                               f"more than max_image_pixels {max_pixels:,}")
            image.load()
            if image.format in ("PNG", "JPEG"):
                return data
            buffer = io.BytesIO()  # e.g. RSVQA's GeoTIFFs: stored as PNG
            image.convert("RGB").save(buffer, format="PNG")
            return buffer.getvalue()
    except UnidentifiedImageError as err:
        raise RowError(f"not an image (PNG/JPEG/... as Pillow reads them): {what}") from err
    except RowError:
        raise
    except Exception as err:
        detail = re.sub(r" at 0x[0-9a-fA-F]+", "", str(err))  # no memory addresses: manifests stay reproducible
        raise RowError(f"image cannot be decoded ({type(err).__name__}: {detail}): {what}") from err


def image_bytes(value, base_dir: Path | None, max_pixels: int = MAX_IMAGE_PIXELS) -> bytes:
    """The encoded image of a row: `datasets`' {bytes, path}, a path, raw bytes or a PIL image."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, Image.Image):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        value = buffer.getvalue()
    what = "the row's image bytes"
    if isinstance(value, str):
        path = image_path(value, base_dir)
        if not path.is_file():
            raise RowError(f"image file {str(path)!r} not found")
        value, what = path.read_bytes(), f"image file {str(path)!r}"
        if not value:
            raise RowError(f"empty image file {str(path)!r}")
    if not value:
        raise RowError("missing image")
    return _decoded(value, what, max_pixels)


def convert_row(rows: Rows, i: int, name: str, split: str, spec: dict, max_pixels: int) -> list[dict]:
    """Row i's checked records (images encoded); a placeholder reference fails the whole split."""
    row = rows.rows[i]
    try:
        converted = rows.convert(row, i)
    except formats.PlaceholderError as err:
        raise DatasetError(f"dataset {name!r}, split {split!r}, {describe(spec)}, row {rows.row_id(row, i)!r}: {err}: "
                           "this split publishes no references to score against (as COCO's test split); "
                           "use a split that does (lmms-lab/COCO-Caption: val)") from err
    for r in converted:
        r["image"] = image_bytes(r["image"], rows.base_dir, max_pixels)
        check_record(r)
    return converted


def check_record(record: dict) -> None:
    if not any(a.strip() for a in record["answers"]):
        raise RowError(f"no answer (answers {record['answers']!r})")
    if record["task_type"] not in TASK_TYPES:
        raise RowError(f"task_type {record['task_type']!r} is not one of {TASK_TYPES}")
    if record["task_type"] == "choice" and not record["choices"]:
        raise RowError("a multiple-choice row has no choices")


def split_spec(name: str, entry: dict, split: str) -> dict:
    if split not in SPLITS:
        raise DatasetError(f"dataset {name!r}: unknown split {split!r}; known: {SPLITS}")
    if split in entry:
        return entry[split]
    if "source" in entry:  # one source for both splits (the synthetic world)
        return entry
    raise DatasetError(f"dataset {name!r}: no source for split {split!r} (config key datasets.{name}.{split})")


# ---- preparation -----------------------------------------------------------------------------

def draw_order(rows: Rows, limit: int | None, key: str) -> list[list[int]]:
    """Row indices in the order they are read, in units kept whole: one row each, or the rows a
    format pairs (MME: one image's questions within a category). With `limit`, units are shuffled
    by a seed derived from `key`."""
    if rows.unit:
        groups: dict[tuple, list[int]] = {}
        for i, value in enumerate(zip(*(column_values(rows.rows, c) for c in rows.unit))):
            groups.setdefault(value, []).append(i)
        units = list(groups.values())
    else:
        units = [[i] for i in range(len(rows.rows))]
    if limit is not None:
        random.Random(key).shuffle(units)
    return units


def read_unit(rows: Rows, unit: list[int], name: str, split: str, spec: dict,
              skip_bad: bool, max_pixels: int) -> tuple[list[dict], list[dict], int]:
    """A unit's records, the rows skipped as bad, and how many rows the format filtered out. A pair
    that lost a row is dropped whole: neither of its questions can be scored."""
    kept, skipped, filtered = [], [], 0
    for i in unit:
        try:
            converted = convert_row(rows, i, name, split, spec, max_pixels)
        except RowError as err:
            row_id = rows.row_id(rows.rows[i], i)
            if not skip_bad:
                raise DatasetError(f"dataset {name!r}, split {split!r}, row {row_id!r}: {err}") from err
            skipped.append({"row": row_id, "reason": str(err)})
            continue
        filtered += not converted
        kept.extend({**r, "split": split} for r in converted)
    if skipped and rows.unit:
        return [], skipped + [{"row": r["id"], "reason": "its pair lost a row"} for r in kept], filtered
    return kept, skipped, filtered


def prepare(name: str, entry: dict, split: str, seed: int) -> tuple[pl.DataFrame, dict]:
    """The split's records and its manifest (source, counts, filtered and skipped rows).
    With `max_samples`, rows are taken in a seeded random order until that many records are kept;
    a format's paired rows (MME) are kept whole or not at all, so that many or fewer."""
    import polars as pl  # here only: the workflow reads this module at every start, and polars takes 0.2 s

    from .schema import SCHEMA

    spec = split_spec(name, entry, split)
    source = spec.get("source")
    if source not in SOURCES:
        raise DatasetError(f"dataset {name!r}, split {split!r}: unknown source {source!r}; known: {sorted(SOURCES)}")
    rows = SOURCES[source](name, entry, spec, split, seed)
    if rows.required:
        check_columns(name, split, spec, rows.required, columns(rows.rows), rows.reader)
    limit = spec.get("max_samples")
    records, skipped, filtered, read = [], [], 0, 0
    for unit in draw_order(rows, limit, f"{name}/{split}/{seed}"):
        if limit is not None and len(records) >= limit:
            break
        kept, bad, dropped = read_unit(rows, unit, name, split, spec, entry.get("skip_bad_rows", False),
                                       entry.get("max_image_pixels", MAX_IMAGE_PIXELS))
        read, skipped, filtered = read + len(unit), skipped + bad, filtered + dropped
        if limit is not None and rows.unit and len(records) + len(kept) > limit:
            break
        records.extend(kept)
    records = records[:limit]
    if not records:
        raise DatasetError(f"dataset {name!r}, split {split!r}: no rows ({len(skipped)} skipped, {filtered} filtered)")
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise DatasetError(f"dataset {name!r}, split {split!r}: duplicate row ids {dup}")
    manifest = {"dataset": name, "split": split, "source": spec,
                "format": entry.get("format"), "task_type": records[0]["task_type"], "seed": seed,
                "rows_available": len(rows.rows), "rows_read": read, "records": len(records),
                "filtered": filtered, "skipped": len(skipped), "skipped_rows": skipped}
    return pl.DataFrame(records, schema=SCHEMA), manifest
