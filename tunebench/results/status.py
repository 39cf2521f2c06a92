"""Which cells of a study are done, running, failed or missing, read from the results and from
Snakemake's own bookkeeping in `.snakemake/` (locks, incomplete-output markers, logs), so it works the
same for local runs and SLURM runs (the main Snakemake process keeps both while its jobs run)."""

from __future__ import annotations

import re
from base64 import urlsafe_b64decode
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..files import read_json

STATES = ("done", "running", "failed", "missing")


@dataclass(frozen=True)
class CellStatus:
    model: str
    method: str
    dataset: str
    state: str
    detail: str


@dataclass(frozen=True)
class Bookkeeping:
    """What Snakemake records in a working directory while and after it runs."""

    locked: bool  # a Snakemake process holds the directory (it runs jobs locally or on SLURM)
    incomplete: frozenset[str]  # outputs of jobs started and not finished
    failed: dict[str, str]  # output -> "rule X failed (log)", from the Snakemake logs, newest last

    @classmethod
    def read(cls, workdir: Path) -> Bookkeeping:
        meta = Path(workdir) / ".snakemake"
        locks = meta / "locks"
        return cls(locked=locks.is_dir() and any(locks.iterdir()), incomplete=frozenset(_incomplete(meta)),
                   failed=_failed_outputs(meta / "log"))


def _incomplete(meta: Path) -> list[str]:
    """Snakemake marks an output incomplete under .snakemake/incomplete/<urlsafe base64 of its path>,
    split into '@'-prefixed directories when the name is too long for the file system."""
    root = meta / "incomplete"
    if not root.is_dir():
        return []
    found = []
    for marker in root.rglob("*"):
        if marker.is_file() and marker.name != "migration_underway":
            encoded = "".join(part.lstrip("@") for part in marker.relative_to(root).parts)
            found.append(urlsafe_b64decode(encoded).decode())
    return found


_ERROR = re.compile(r"^Error in rule (\w+):\n((?:[ \t]+.*\n?)*)", re.M)


def _failed_outputs(log_dir: Path) -> dict[str, str]:
    failed: dict[str, str] = {}
    logs = sorted(log_dir.glob("*.snakemake.log")) if log_dir.is_dir() else []
    for log in logs:  # oldest first: a later failure of the same output overrides an earlier one
        for rule, block in _ERROR.findall(log.read_text(errors="replace")):
            outputs = re.search(r"^\s+output: (.*)$", block, re.M)
            job_log = re.search(r"^\s+log: (.*?)(?: \(check log|$)", block, re.M)
            where = job_log.group(1) if job_log else str(log)
            for out in outputs.group(1).split(", ") if outputs else []:
                failed[out.strip()] = f"rule {rule} failed (see {where})"
    return failed


def _chain(config: dict, root: str, model: str, method: str, dataset: str, seed) -> list[str]:
    """Every output one seed of a cell needs, from data preparation to its scores."""
    data = [paths.data(root, d, split) for d in [dataset] + list(config["upstream"]) for split in ("train", "test")]
    return data + [
        paths.base_dir(root, model, seed),
        paths.predictions_dir(root, model, "zeroshot", "all", seed),
        paths.scores_path(root, model, "zeroshot", "all", seed),
        paths.tune_dir(root, model, method, dataset, seed),
        paths.predictions_dir(root, model, method, dataset, seed),
        paths.scores_path(root, model, method, dataset, seed),
    ]


def _within(path: str, prefixes: list[str]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


def _diverged(runs: dict) -> list[str]:
    return [f"seed {seed} diverged at step {run['diverged']['step']} ({run['diverged']['reason']})"
            for seed, run in runs.items() if run.get("diverged")]


def _some(items: list[str], shown: int = 2) -> str:
    return ", ".join(items[:shown]) + (f" (+{len(items) - shown} more)" if len(items) > shown else "")


def cell_status(workdir: Path, config: dict, model: str, method: str, dataset: str, book: Bookkeeping) -> CellStatus:
    workdir = Path(workdir)
    root = paths.results_dir(config)
    seeds = list(config["seeds"])
    cell_file = paths.cell_path(root, model, method, dataset)
    chain = [p for seed in seeds for p in _chain(config, root, model, method, dataset, seed)] + [cell_file]
    tune_dirs = {seed: workdir / paths.tune_dir(root, model, method, dataset, seed) for seed in seeds}
    runs = {seed: read_json(d / "run.json") for seed, d in tune_dirs.items() if (d / "run.json").exists()}
    unfinished = sorted({p for p in book.incomplete if _within(p, chain)}
                        | {str(d.relative_to(workdir)) for s, d in tune_dirs.items() if d.is_dir() and s not in runs})

    def status(state: str, detail: str) -> CellStatus:
        return CellStatus(model, method, dataset, state, detail)

    if unfinished and book.locked:
        return status("running", "writing " + _some(unfinished))
    failures = sorted({why for out, why in book.failed.items() if _within(out, chain) and not (workdir / out).exists()})
    diverged = _diverged(runs)
    if (workdir / cell_file).exists():
        cell = read_json(workdir / cell_file)
        mean, std = cell["mean"], cell["std"]
        result = (", ".join(f"{m} {mean[m]:.1f} ± {std[m]:.1f}" for m in ("E", "F", "O")) if mean
                  else cell.get("missing_reason", "no result"))
        result += f" ({cell['n_seeds']}/{len(cell['seeds'])} seeds)"
        return status("failed", "; ".join(diverged) + "; " + result) if diverged else status("done", result)
    if failures or diverged:
        return status("failed", "; ".join(failures + diverged))
    if unfinished:
        return status("failed", "interrupted: " + _some(unfinished) + " (rerun with --rerun-incomplete)")
    scored = sum((workdir / paths.scores_path(root, model, method, dataset, s)).exists() for s in seeds)
    return status("missing", f"{len(runs)}/{len(seeds)} seeds tuned, {scored}/{len(seeds)} scored")


def study_status(workdir: Path, config: dict) -> list[CellStatus]:
    book = Bookkeeping.read(Path(workdir))
    return [cell_status(Path(workdir), config, model, method, dataset, book)
            for model in config["models"] for method in config["methods"] for dataset in config["downstream"]]


def render(config: dict, cells: list[CellStatus]) -> str:
    counts = {state: sum(c.state == state for c in cells) for state in STATES}
    header = (f"study {config['study']}: {len(cells)} cells: "
              + ", ".join(f"{n} {state}" for state, n in counts.items()))
    rows = [("model", "method", "dataset", "state", "detail")]
    rows += [(c.model, c.method, c.dataset, c.state, c.detail) for c in cells]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    return "\n".join([header, *lines]) + "\n"
