"""Per-stage code fingerprints: the rerun trigger for package code. Snakemake reruns a `script:` job
when its script changes, not when a package module it imports does; each rule puts its stage's
fingerprint in its params, so editing a module reruns exactly the stages that import it (and,
through their outputs, everything after them).

A stage's fingerprint covers the import closure of its module inside the package, found by reading
the code (imports inside functions included), over normalised code: the syntax tree without
docstrings, so comments, docstrings and formatting change nothing. Modules that only print or
record (progress lines, provenance, experiment trackers) are left out. Light: parses source files, imports nothing.
"""

from __future__ import annotations

import ast
import hashlib
import json
from functools import cache
from pathlib import Path

from .files import write_json

PACKAGE = "tunebench"
ROOT = Path(__file__).resolve().parent
# Shape no output: what a job prints, the provenance it records beside its results, and the
# experiment trackers it logs to.
UNTRACKED = frozenset({"tunebench.progress", "tunebench.provenance", "tunebench.tracking"})


@cache
def module_path(module: str) -> Path | None:
    """The source file of a package module (a package's __init__.py), or None outside the package."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[:len(anchor) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


@cache
def imports(module: str) -> frozenset[str]:
    """The package modules `module` imports anywhere in its code."""
    path = module_path(module)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, path.name == "__init__.py")
            # `from pkg import name`: name is a submodule, or an attribute of pkg
            names = [f"{base}.{alias.name}" if module_path(f"{base}.{alias.name}") else base for alias in node.names]
        else:
            continue
        found |= {name for name in names if module_path(name)}
    return frozenset(found)


def closure(module: str) -> set[str]:
    """`module` and every package module it reaches through imports, less the untracked ones."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen or current in UNTRACKED:
            continue
        seen.add(current)
        todo += imports(current)
    return seen


@cache  # stages share most modules: each is parsed once per process
def normalised(module: str) -> str:
    """The module's syntax tree without docstrings: what its code does, not how it is written."""
    tree = ast.parse(module_path(module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


STAGES = {stage: f"{PACKAGE}.stages.{stage}"
          for stage in ("prepare", "pretrain", "tune", "predict", "score", "aggregate", "report")}


# Every stage's fingerprint, kept per package checkout with the sizes and modification times of its
# modules: a `snakemake` start where no module changed parses none.
CACHE = Path(".snakemake") / "tunebench" / "code_fingerprints.json"


def code_fingerprint(stage: str) -> str:
    return fingerprints()[stage]


def _compute(stage: str) -> str:
    """SHA-256 over the normalised code of the stage's import closure (name and code, in a fixed order)."""
    digest = hashlib.sha256()
    for module in sorted(closure(STAGES[stage])):
        digest.update(module.encode() + b"\0" + normalised(module).encode() + b"\0")
    return digest.hexdigest()[:16]


@cache
def fingerprints(cache_path: Path = CACHE) -> dict[str, str]:
    stamps = sorted([str(p.relative_to(ROOT)), p.stat().st_size, p.stat().st_mtime_ns] for p in ROOT.rglob("*.py"))
    try:
        cached = json.loads(cache_path.read_text())
    except (OSError, ValueError):  # none yet, or another start is writing it
        cached = {}
    entry = cached.get(str(ROOT))
    if entry and entry["stamps"] == stamps:
        return entry["fingerprints"]
    computed = {stage: _compute(stage) for stage in STAGES}
    cached[str(ROOT)] = {"stamps": stamps, "fingerprints": computed}
    try:
        write_json(cached, cache_path)
    except OSError:  # a cache: a start that cannot write it computes again next time
        pass
    return computed
