"""Result files, written atomically: a killed job never leaves a half-written file under its final name,
a failed write (a full disk) leaves no temporary file, and a restarted job removes those a killed one left."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable


def temporary(path: Path) -> Path:
    """Where `path` is written before it takes its name."""
    path = Path(path)
    return path.with_name(path.name + ".tmp")


def remove(path: Path) -> None:
    """A file or a directory, if there."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def remove_temporaries(outputs) -> None:
    """What a killed attempt at writing `outputs` left: called when their job starts again."""
    for output in outputs:
        remove(temporary(output))


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """`write` fills a temporary file beside `path`, which then takes its final name; if writing
    fails (a full disk), the temporary file goes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary(path)
    remove(tmp)  # a killed attempt's
    try:
        write(tmp)
    except BaseException:
        remove(tmp)
        raise
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
