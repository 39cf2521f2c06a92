"""Which cells of a study are done, outdated, running, failed or missing, read from the results and
from Snakemake's own bookkeeping in `.snakemake/` (locks, incomplete-output markers, logs), so it works
the same for local runs and SLURM runs (the main Snakemake process keeps both while its jobs run).
A lock counts only while a Snakemake process works in the directory (a killed one leaves its locks).

A built cell is done only if the current plan would build the same: its recorded plan digest (the
cell's rerun trigger over its whole chain) equals the current plan's, and `snakemake --summary` on
the built cells, which compares what each output was built from (its plan slice and code
fingerprint, which are its params; its inputs; its rule's code) with what the config and code give
now, finds nothing to rebuild. A running cell shows what runs, with the step and ETA of a training
run from its train log.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from base64 import urlsafe_b64decode
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import psutil

from .. import slices
from ..files import read_json, read_jsonl
from ..plan import ZEROSHOT, Plan
from ..progress import duration
from .tables import seeds_note

STATES = ("done", "outdated", "running", "failed", "missing")
# What `snakemake --summary` says of an output rebuilt only because an output it reads is, or
# because its job reruns for another output (a temp() file, deleted once used).
CONSEQUENCES = ("ok", "updated input files", "removed temp file")
SNAKEFILE = Path(__file__).resolve().parents[2] / "Snakefile"


@dataclass(frozen=True)
class CellStatus:
    model: str
    method: str
    dataset: str
    state: str
    detail: str
    result: dict | None = None  # the cell's mean and std of E, F, O and its seeds, once built
    running: list[dict] = field(default_factory=list)  # what runs: {"what", "seed", "step", "total_steps", "eta_s"}


@dataclass(frozen=True)
class Bookkeeping:
    """What Snakemake records in a working directory while and after it runs."""

    locked: bool  # a Snakemake process holds the directory (it runs jobs locally or on SLURM)
    incomplete: frozenset[str]  # outputs of jobs started and not finished
    failed: dict[str, str]  # output -> "rule X failed (log)", from the Snakemake logs, newest last
    pending: dict[str, tuple[str, str]]  # output Snakemake would rebuild -> (rule, why)

    @classmethod
    def read(cls, workdir: Path) -> Bookkeeping:
        meta = Path(workdir) / ".snakemake"
        locks = meta / "locks"
        locked = locks.is_dir() and any(locks.iterdir()) and snakemake_runs_in(workdir)
        return cls(locked=locked, incomplete=frozenset(_incomplete(meta)),
                   failed=_failed_outputs(meta / "log", Path(workdir)), pending={})


def _is_snakemake(cmdline: list[str]) -> bool:
    """`snakemake ...`, `python /venv/bin/snakemake ...` or `python -m snakemake ...`."""
    return any(Path(arg).name == "snakemake" for arg in cmdline[:3])


def snakemake_runs_in(workdir: Path) -> bool:
    """Whether a Snakemake process on this host works in `workdir` (it changes into its --directory).
    Snakemake's lock files name no process, and one that was killed leaves them behind."""
    target = Path(workdir).resolve()
    for process in psutil.process_iter(["cmdline"]):
        try:
            if _is_snakemake(process.info["cmdline"] or []) and Path(process.cwd()).resolve() == target:
                return True
        except psutil.Error:  # gone meanwhile, or another user's
            continue
    return False


def built_under_another_plan(cell: dict, plan: Plan, model: str, method: str, dataset: str) -> str | None:
    """Why a cell file is not what the current plan builds (None: it is). Its recorded plan digest is
    the cell's rerun trigger over its whole chain (config slices, code, local data), so a cell built
    under another config, O formula or code, or left behind by a failed or killed rebuild, differs."""
    recorded = cell.get("provenance", {})
    if recorded.get("plan_digest") == plan.trigger("cell", model=model, method=method, dataset=dataset):
        return None
    changed = slices.changes(recorded.get("plan"), plan.cell_job(model, method, dataset))
    return f"built under another plan ({changed or 'code, data or settings of an earlier stage changed'})"


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


def snakemake(workdir: Path, config_files: list[Path], args: list[str], snakefile: Path = SNAKEFILE) -> str:
    """Run the study's workflow in its working directory with `args`; its standard output."""
    command = [sys.executable, "-m", "snakemake", *args, "--snakefile", str(snakefile), "--directory", str(workdir),
               "--configfile", *map(str, config_files)]
    # The workflow imports the tunebench beside its Snakefile, as `snakemake` run there does.
    path = os.pathsep.join(filter(None, [str(Path(snakefile).parent), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(command, capture_output=True, text=True, cwd=workdir, env={**os.environ, "PYTHONPATH": path})
    if done.returncode != 0:
        raise RuntimeError(f"snakemake {args[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def snakemake_pending(workdir: Path, config_files: list[Path], targets: list[str],
                      snakefile: Path = SNAKEFILE) -> dict[str, tuple[str, str]]:
    """Every output Snakemake would (re)build for `targets`, with its rule and Snakemake's reason
    ("params changed", "updated input files", "missing", ...), from `snakemake --summary`."""
    pending = {}
    for line in snakemake(workdir, config_files, ["--summary", "--nolock", *targets], snakefile).splitlines():
        fields = line.split("\t")
        if len(fields) == 6 and fields[5] == "update pending":
            output, _, rule, _, why, _ = fields
            pending[output] = (rule, why)
    return pending


def _chain(plan: Plan, model: str, method: str, dataset: str, seed) -> list[tuple[str, str]]:
    """(output, what building it is called) for every output one seed of a cell needs, from data
    preparation to its scores, in the order they are built."""
    sets = [dataset] + plan.upstream
    chain = [(plan.data(d, "train"), "preparing data") for d in [dataset] + plan.replay_sets(model, method)]
    chain += [(plan.data(d, "test"), "preparing data") for d in sets]
    chain += [(p, "pretraining") for p in plan.base_input(model, seed)]
    chain += [(p, "zero-shot predictions") for d in sets for p in plan.predictions(model, ZEROSHOT, d, seed)]
    chain += [(plan.scores(model, ZEROSHOT, d, seed), "zero-shot scoring") for d in sets]
    chain.append((plan.run_dir(model, method, dataset, seed), "tuning"))
    chain += [(p, "predicting") for p in plan.predictions(model, method, dataset, seed)]
    chain.append((plan.scores(model, method, dataset, seed), "scoring"))
    return chain


def _within(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _diverged(runs: dict) -> list[str]:
    return [f"seed {seed} diverged at step {run['diverged']['step']} ({run['diverged']['reason']})"
            for seed, run in runs.items() if run.get("diverged")]


def _some(items: list[str], shown: int = 2) -> str:
    return ", ".join(items[:shown]) + (f" (+{len(items) - shown} more)" if len(items) > shown else "")


def training_progress(train_log: Path) -> dict:
    """Step, total steps and ETA of a training run so far, from its train_log.jsonl."""
    rows = read_jsonl(train_log) if train_log.is_file() else []
    if not rows:
        return {}
    last = rows[-1]
    attempt = [r for r in rows if r.get("attempt") == last.get("attempt") and "time" in r]
    found = {"step": last["step"], "total_steps": last.get("total_steps")}
    if found["total_steps"] and len(attempt) > 1:
        per_step = (attempt[-1]["time"] - attempt[0]["time"]) / (attempt[-1]["step"] - attempt[0]["step"])
        left = (found["total_steps"] - last["step"]) * per_step - (time.time() - last["time"])
        found["eta_s"] = round(max(left, 0.0))
    return found


def _running(workdir: Path, what: str, seed, output: str) -> dict:
    entry = {"what": what, "seed": seed}
    if what in ("tuning", "pretraining"):
        entry.update(training_progress(workdir / output / "train_log.jsonl"))
    return entry


def _describe(entry: dict) -> str:
    text = f"{entry['what']} seed {entry['seed']}" if entry["seed"] is not None else entry["what"]
    if "step" in entry:
        text += f": step {entry['step']}/{entry['total_steps'] or '?'}"
        text += f", ETA {duration(entry['eta_s'])}" if "eta_s" in entry else ""
    return text


def _result(cell: dict) -> tuple[dict, str]:
    mean, std = cell["mean"], cell["std"]
    summary = (", ".join(f"{m} {mean[m]:.1f} ± {std[m]:.1f}" for m in ("E", "F", "O")) if mean
               else cell.get("missing_reason", "no result"))
    result = {"mean": mean and {m: mean[m] for m in ("E", "F", "O")},
              "std": std and {m: std[m] for m in ("E", "F", "O")}, "seeds": cell["n_seeds"]}
    return result, f"{summary} ({cell['n_seeds']}/{len(cell['seeds'])} seeds)"


def cell_status(workdir: Path, plan: Plan, model: str, method: str, dataset: str, book: Bookkeeping) -> CellStatus:
    workdir = Path(workdir)
    cell_file = plan.cell_path(model, method, dataset)
    chain = [(path, what, seed) for seed in plan.seeds for path, what in _chain(plan, model, method, dataset, seed)]
    chain.append((cell_file, "aggregating", None))
    run_dirs = {seed: workdir / plan.run_dir(model, method, dataset, seed) for seed in plan.seeds}
    runs = {seed: read_json(d / "run.json") for seed, d in run_dirs.items() if (d / "run.json").exists()}
    # Under way: marked incomplete by Snakemake, or a tuning run without its run.json yet.
    under_way = [(path, what, seed) for path, what, seed in chain
                 if any(_within(p, path) for p in book.incomplete)
                 or (what == "tuning" and (workdir / path).is_dir() and seed not in runs)]

    def status(state: str, detail: str, **extra) -> CellStatus:
        return CellStatus(model, method, dataset, state, detail, **extra)

    if under_way and book.locked:
        running = list({(what, seed): _running(workdir, what, seed, path) for path, what, seed in under_way}.values())
        return status("running", "; ".join(map(_describe, running)), running=running)
    # What stops the cell from being done, whatever file it has: a job of its chain failed (its output
    # still missing) or was interrupted.
    failures = sorted({why for out, why in book.failed.items()
                       if any(_within(out, path) for path, _, _ in chain) and not (workdir / out).exists()})
    if under_way:
        failures.append("interrupted: " + _some([p for p, _, _ in under_way]) + " (no Snakemake process on this "
                        "host works in the directory: rerun with --rerun-incomplete)")
    diverged = _diverged(runs)
    cell = read_json(workdir / cell_file) if (workdir / cell_file).exists() else None
    another_plan = cell and built_under_another_plan(cell, plan, model, method, dataset)
    if failures:
        return status("failed", "; ".join(failures + diverged + ([another_plan] if another_plan else [])))
    if cell:
        result, summary = _result(cell)
        # In the order they are built, so the first one whose own record changed is the cause.
        stale = [(out, *book.pending[out]) for path, _, _ in chain for out in book.pending if _within(out, path)]
        if stale:
            out, rule, why = next((s for s in stale if s[2] not in CONSEQUENCES), stale[0])
            cause = f"{why}: {out} (rule {rule}); {len(stale)} outputs to rebuild"
            return status("outdated", "; ".join([cause, *([another_plan] if another_plan else []), f"as built: {summary}"]),
                          result=result)
        if another_plan:
            return status("outdated", f"{another_plan}; as built: {summary}", result=result)
        if diverged:  # a cell without a result says why itself
            return status("failed", summary if result["mean"] is None else "; ".join(diverged) + "; " + summary,
                          result=result)
        return status("done", summary, result=result)
    if diverged:
        return status("failed", "; ".join(diverged))
    seeds = plan.seeds
    scored = sum((workdir / plan.scores(model, method, dataset, s)).exists() for s in seeds)
    progress = f"{len(runs)}/{len(seeds)} seeds tuned, {scored}/{len(seeds)} scored"
    if book.locked and (runs or scored):  # between two of its jobs while the study runs
        return status("running", f"waiting for its next job: {progress}")
    return status("missing", progress)


def study_status(workdir: Path, plan: Plan, config_files: list[Path] | None = None,
                 snakefile: Path = SNAKEFILE) -> list[CellStatus]:
    """Every cell's status; with `config_files` (the study's, as given to snakemake), built cells
    are checked against Snakemake's bookkeeping for being outdated."""
    workdir = Path(workdir).resolve()
    cells = [(model, method, dataset) for model in plan.models for method in plan.methods for dataset in plan.downstream]
    built = [plan.cell_path(*cell) for cell in cells if (workdir / plan.cell_path(*cell)).exists()]
    book = Bookkeeping.read(workdir)  # first: what runs now, before the seconds `--summary` takes
    if built and config_files:
        book = replace(book, pending=snakemake_pending(workdir, config_files, built, snakefile))
    with contextlib.chdir(workdir):  # local data paths in the config are the workflow's, relative to it
        return [cell_status(workdir, plan, *cell, book) for cell in cells]


def counts(cells: list[CellStatus]) -> dict[str, int]:
    return {state: sum(c.state == state for c in cells) for state in STATES}


def as_json(plan: Plan, cells: list[CellStatus]) -> dict:
    return {"study": plan.study, "counts": counts(cells), "cells": [asdict(c) for c in cells]}


def render(plan: Plan, cells: list[CellStatus]) -> str:
    header = (f"study {plan.study}: {len(cells)} cells: "
              + ", ".join(f"{n} {state}" for state, n in counts(cells).items()))
    rows = [("model", "method", "dataset", "state", "detail")]
    rows += [(c.model, c.method, c.dataset, c.state, c.detail) for c in cells]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    return "\n".join([header, *lines]) + "\n"


def seeds_needed(workdir: Path, plan: Plan) -> list[str]:
    """Per model whose cells are all built: how many seeds would separate its two best methods
    (tunebench.results.tables.seeds_note, the table's own note)."""
    lines = []
    for model in plan.models:
        paths = [Path(workdir) / p for p in plan.cell_paths(model)]
        note = seeds_note([read_json(p) for p in paths]) if all(p.exists() for p in paths) else None
        lines += [f"{model}: {note}"] if note else []
    return lines
