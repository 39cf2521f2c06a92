"""Result files, written atomically: a killed job never leaves a half-written file under its final name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """`write` fills a temporary file beside `path`, which then takes its final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    write(tmp)
    tmp.rename(path)


def write_text(text: str, path: Path) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(data: dict, path: Path) -> None:
    write_text(json.dumps(data, indent=1), path)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def write_jsonl(rows: list[dict], path: Path) -> None:
    write_text("".join(json.dumps(row) + "\n" for row in rows), path)


def read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
