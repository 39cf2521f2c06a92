"""Which cells of a study are done, running, failed or missing, read from the results and from
Snakemake's own bookkeeping in `.snakemake/` (locks, incomplete-output markers, logs), so it works the
same for local runs and SLURM runs (the main Snakemake process keeps both while its jobs run)."""

from __future__ import annotations

import re
from base64 import urlsafe_b64decode
from dataclasses import dataclass
from pathlib import Path

from ..files import read_json
from ..plan import Plan

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
                   failed=_failed_outputs(meta / "log", Path(workdir)))


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


def _failed_outputs(log_dir: Path, workdir: Path) -> dict[str, str]:
    failed: dict[str, str] = {}
    logs = sorted(log_dir.glob("*.snakemake.log")) if log_dir.is_dir() else []
    for log in logs:  # oldest first: a later failure of the same output overrides an earlier one
        for rule, block in _ERROR.findall(log.read_text(errors="replace")):
            outputs = re.search(r"^\s+output: (.*)$", block, re.M)
            job_log = re.search(r"^\s+log: (.*?)(?: \(check log|$)", block, re.M)
            why = f"rule {rule} failed"
            if job_log:
                error = _job_error(workdir / job_log.group(1))
                why += f": {error} (log {job_log.group(1)})" if error else f" (see {job_log.group(1)})"
            else:
                why += f" (see {log})"
            for out in outputs.group(1).split(", ") if outputs else []:
                failed[out.strip()] = why
    return failed


def _job_error(job_log: Path) -> str | None:
    """The error that ended a job, as its own log records it (tunebench.progress.logged)."""
    if not job_log.is_file():
        return None
    errors = [line[len("ERROR: "):] for line in job_log.read_text(errors="replace").splitlines()
              if line.startswith("ERROR: ")]
    return errors[-1] if errors else None


def _chain(plan: Plan, model: str, method: str, dataset: str, seed) -> list[str]:
    """Every output one seed of a cell needs, from data preparation to its scores."""
    sets = [dataset] + plan.upstream
    data = [plan.data(d, "train") for d in [dataset] + plan.replay_sets(model, method)]
    data += [plan.data(d, "test") for d in sets]
    zeroshot = plan.zeroshot_predictions(model, seed) + [plan.zeroshot_scores(model, seed)]
    return data + plan.base_input(model, seed) + zeroshot + [
        plan.run_dir(model, method, dataset, seed), *plan.predictions(model, method, dataset, seed),
        plan.scores(model, method, dataset, seed)]


def _within(path: str, prefixes: list[str]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


def _diverged(runs: dict) -> list[str]:
    return [f"seed {seed} diverged at step {run['diverged']['step']} ({run['diverged']['reason']})"
            for seed, run in runs.items() if run.get("diverged")]


def _some(items: list[str], shown: int = 2) -> str:
    return ", ".join(items[:shown]) + (f" (+{len(items) - shown} more)" if len(items) > shown else "")


def cell_status(workdir: Path, plan: Plan, model: str, method: str, dataset: str, book: Bookkeeping) -> CellStatus:
    workdir = Path(workdir)
    cell_file = plan.cell_path(model, method, dataset)
    chain = [p for seed in plan.seeds for p in _chain(plan, model, method, dataset, seed)] + [cell_file]
    run_dirs = {seed: workdir / plan.run_dir(model, method, dataset, seed) for seed in plan.seeds}
    runs = {seed: read_json(d / "run.json") for seed, d in run_dirs.items() if (d / "run.json").exists()}
    unfinished = sorted({p for p in book.incomplete if _within(p, chain)}
                        | {str(d.relative_to(workdir)) for s, d in run_dirs.items() if d.is_dir() and s not in runs})

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
    seeds = plan.seeds
    scored = sum((workdir / plan.scores(model, method, dataset, s)).exists() for s in seeds)
    return status("missing", f"{len(runs)}/{len(seeds)} seeds tuned, {scored}/{len(seeds)} scored")


def study_status(workdir: Path, plan: Plan) -> list[CellStatus]:
    book = Bookkeeping.read(Path(workdir))
    return [cell_status(Path(workdir), plan, model, method, dataset, book)
            for model in plan.models for method in plan.methods for dataset in plan.downstream]


def render(plan: Plan, cells: list[CellStatus]) -> str:
    counts = {state: sum(c.state == state for c in cells) for state in STATES}
    header = (f"study {plan.study}: {len(cells)} cells: "
              + ", ".join(f"{n} {state}" for state, n in counts.items()))
    rows = [("model", "method", "dataset", "state", "detail")]
    rows += [(c.model, c.method, c.dataset, c.state, c.detail) for c in cells]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    return "\n".join([header, *lines]) + "\n"
