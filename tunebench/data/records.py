"""Records read on demand, so a job's memory is bounded by what it holds at once, not by the split.

A prepared split keeps its text columns in memory (a few hundred bytes a record); an image's bytes
are read from its Parquet row group when the record is asked for (schema.write_split keeps row
groups small). Every kind of record set knows its images' sizes up front (a prepared split from its
metadata, records in memory from their image headers), which is what batching by length needs
before any image is processed.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from .schema import TEXT_COLUMNS, image_size, image_sizes, read_split


class InMemory:
    """Records already in memory (tests, benchmarks, the embedded world's generator). Every record
    set has `texts` (the records without their image bytes, or with them where already held) and
    `sizes` (each image's (height, width))."""

    def __init__(self, records: list[dict]):
        self.records = self.texts = records
        self.sizes = [image_size(r["image"]) for r in records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        return self.records[i]


class FromParquet:
    """A prepared split: text columns in memory, each image read from its row group when asked for."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.texts = read_split(path, TEXT_COLUMNS)  # polars: a third of pyarrow's to_pylist time
        meta = pq.ParquetFile(self.path).metadata
        self.where = [(group, row) for group in range(meta.num_row_groups)
                      for row in range(meta.row_group(group).num_rows)]
        self.sizes = image_sizes(path, meta.metadata, len(self.texts))
        self._file = None

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> dict:
        if self._file is None:  # opened per process: DataLoader workers each read on their own
            self._file = pq.ParquetFile(self.path)
        group, row = self.where[i]
        image = self._file.read_row_group(group, columns=["image"]).column(0)[row].as_py()
        return {**self.texts[i], "image": image}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None}


class Subset:
    def __init__(self, records, indices: list[int]):
        self.records, self.indices = records, list(indices)
        self.sizes = [records.sizes[i] for i in self.indices]
        self.texts = [records.texts[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        return self.records[self.indices[i]]


class Concat:
    """Record sets one after another; `pools` names the index range each part takes."""

    def __init__(self, parts: dict):
        self.parts, self.pools, start = list(parts.values()), {}, 0
        for name, part in parts.items():
            self.pools[name] = range(start, start + len(part))
            start += len(part)
        self.sizes = [s for part in self.parts for s in part.sizes]
        self.texts = [t for part in self.parts for t in part.texts]

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def __getitem__(self, i: int) -> dict:
        for part, pool in zip(self.parts, self.pools.values()):
            if i in pool:
                return part[i - pool.start]
        raise IndexError(i)


def read(paths: dict[str, Path]) -> dict[str, FromParquet]:
    return {name: FromParquet(path) for name, path in paths.items()}
