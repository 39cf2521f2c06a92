"""Content digests of local data (files and whole folders), the rerun trigger of data preparation.
Hashing a large image folder at every workflow start would be slow, so each file's SHA-256 is
cached by (path, size, modification time): only new or changed files are read again."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..files import write_json

CACHE = Path(".snakemake") / "tunebench" / "file_digests.json"
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(Path(root) / name for root, _, names in os.walk(path) for name in names)


def tree_digest(paths: list[Path], cache_path: Path | None = CACHE) -> str:
    """One digest over the names and contents of every file under `paths` (a missing path counts
    as absent: its job then fails, naming it). `cache_path` None: every file read, nothing cached."""
    cache = json.loads(cache_path.read_text()) if cache_path and cache_path.is_file() else {}
    changed = False
    digest = hashlib.sha256()
    for top in paths:
        digest.update(f"{top}\0".encode())
        if not top.exists():
            digest.update(b"absent\0")
            continue
        for file in _files(top):
            stat = file.stat()
            key, stamp = str(file.resolve()), [stat.st_size, stat.st_mtime_ns]
            if cache.get(key, {}).get("stamp") != stamp:
                cache[key] = {"stamp": stamp, "sha256": file_sha256(file)}
                changed = True
            digest.update(f"{file.relative_to(top) if file != top else ''}\0{cache[key]['sha256']}\0".encode())
    if changed and cache_path:
        write_json(cache, cache_path)
    return digest.hexdigest()[:16]
