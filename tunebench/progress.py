"""What a job prints: progress while it works, one summary line at its end (what it did, its result,
its time), and its own log file, which holds its stderr and the error that ended it. Lines go to
stderr, so they land in Snakemake's console output and in SLURM job logs.

Jobs run side by side and share one stderr, so every line is written whole, in one write, and names
its job. On a terminal a long loop draws a tqdm bar instead, on a line of its own beside other jobs'
bars; off a terminal (Snakemake's output piped, SLURM logs) it prints a plain line every N% or M
seconds (`progress:` in the config). The job log always gets the plain lines.

Third-party noise is silenced where it starts: `quiet_libraries` (the progress bars of transformers,
the Hub and datasets, set for every job by the workflow), `KNOWN_WARNINGS` (filtered in every job)
and `dropping_lines` (output of subprocesses, such as PTBTokenizer's java). Every other warning and
error still shows.
"""

from __future__ import annotations

import fcntl
import os
import re
import sys
import tempfile
import time
import traceback
import warnings
from contextlib import contextmanager
from itertools import count
from pathlib import Path

import psutil

# Defaults of the config's `progress:` block (the schema holds the same): a plain line at every
# 10% of a loop or after a minute without one, whichever comes first.
EVERY = {"percent": 10, "seconds": 60}
# Environment every job inherits from the workflow: the libraries read it when they are imported.
QUIET_ENVIRONMENT = {"HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' bars ("Loading weights") and downloads
                     "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
# Warnings that say nothing about a run: (message regex, category).
KNOWN_WARNINGS = [
    # peft asks transformers 5 for the old name of a model's gradient-checkpointing flag
    (r"`is_gradient_checkpointing` is deprecated", FutureWarning),
]


class _Job:
    """Where the current job's lines go: its console (stderr as the job started) and its log file."""

    console = None
    log = None
    every = EVERY


def _console():
    return _Job.console or sys.stderr


def write_line(line: str, console: bool = True) -> None:
    """`line` in one write to the console (and the job log): a line written in pieces can be split
    by another job's. On a terminal it first clears the line a bar may hold."""
    if console:
        stream = _console()
        stream.write(("\r\x1b[2K" if stream.isatty() else "") + line + "\n")
        stream.flush()
    if _Job.log is not None:
        _Job.log.write(line + "\n")
        _Job.log.flush()


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    return f"{minutes // 60} h {minutes % 60} min"


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Progress:
    """A long loop's progress: `update()` after each unit (a training step, a batch of answers).
    `name` names the job in full (`tune tiny/lora/big_count seed 0`), so every line says whose it is."""

    def __init__(self, name: str, total: int, unit: str, done: int = 0, enabled: bool = True):
        self.name, self.total, self.unit, self.enabled = name, total, unit, enabled
        self.done = self.first = done
        self.stats: dict = {}
        self.start = self.last_line = time.monotonic()
        self.mark = self._mark()
        self.bar = self.slot_file = None
        if enabled and _console().isatty():
            slot, self.slot_file = terminal_slot(_console())
            self.bar = _bar(self, slot)

    def _mark(self) -> int:
        """How many `every percent` steps of the loop are done."""
        return int(100 * self.done / max(self.total, 1) // _Job.every["percent"])

    def update(self, n: int = 1, stats: dict | None = None) -> None:
        self.done += n
        self.stats = stats or {}
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix({k: _number(v) for k, v in self.stats.items()}, refresh=False)
            self.bar.update(n)
        mark, now = self._mark(), time.monotonic()
        if mark > self.mark or now - self.last_line >= _Job.every["seconds"] or self.done >= self.total:
            self.mark, self.last_line = mark, now
            write_line(self.line(), console=self.bar is None)

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = (self.done - self.first) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.done}/{self.total} {self.unit}s ({100 * self.done / max(self.total, 1):.0f}%)"]
        parts += [f"{k} {_number(v)}" for k, v in self.stats.items()]
        parts.append(f"{rate:.3g} {self.unit}s/s")
        if self.done < self.total and rate > 0:
            parts.append(f"ETA {duration((self.total - self.done) / rate)}")
        elif self.done >= self.total:
            parts.append(f"in {duration(elapsed)}")
        return f"[tunebench] {self.name}: " + ", ".join(parts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.slot_file.close()  # frees the terminal line for the next job's bar
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_) -> None:
        self.close()


def terminal_slot(console) -> tuple[int, object]:
    """The lowest terminal line no other job's bar holds, and the locked file that holds it (the
    lock goes with the file, or with the process)."""
    folder = Path(tempfile.gettempdir()) / f"tunebench-bars-{os.getuid()}" / os.ttyname(console.fileno()).strip("/").replace("/", "-")
    folder.mkdir(parents=True, exist_ok=True)
    for slot in count():
        handle = open(folder / str(slot), "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return slot, handle
        except BlockingIOError:
            handle.close()


def _bar(progress: Progress, slot: int):
    from tqdm import tqdm

    # A bar below the first leaves no line behind: the next job's bar takes that line.
    return tqdm(total=progress.total, initial=progress.done, desc=progress.name, unit=progress.unit,
                position=slot, leave=slot == 0, file=_console(), dynamic_ncols=True, mininterval=0.5)


# ---- each stage's summary line (here, not in the stages: rewording one reruns nothing) -----------

def done(what: str, result: str) -> str:
    # From the job process's start: interpreter start-up and imports count too.
    line = f"[tunebench] done {what}: {result} ({time.time() - psutil.Process().create_time():.1f} s)"
    write_line(line)
    return line


def prepared(job: dict, records: int) -> str:
    return done(f"prepare {job['dataset']} {job['split']}", f"{records} records")


def _train_result(stats: dict) -> str:
    return f"{stats['steps']} steps, final loss {stats['final_loss']:.3f}, peak {stats['peak_memory_mb']:.0f} MB"


def pretrained(job: dict, stats: dict) -> str:
    return done(f"pretrain {job['model']} seed {job['seed']}", _train_result(stats))


def tuned(job: dict, trainable: int, stats: dict, diverged: dict | None) -> str:
    result = (f"DIVERGED at step {diverged['step']} ({diverged['reason']}); its cell is reported as missing"
              if diverged else _train_result(stats))
    return done(f"tune {job['model']}/{job['method']}/{job['dataset']} seed {job['seed']}",
                f"{trainable:,} trainable parameters, {result}")


def predicted(run: str, answers: int | None, sets: list[str]) -> str:
    if answers is None:
        return done(f"predict {run}", "no answers: the run diverged")
    return done(f"predict {run}", f"{answers} answers on {len(sets)} test sets ({', '.join(sets)})")


def scored(job_name: str, scores: dict | None, diverged: dict | None = None) -> str:
    if diverged:
        return done(job_name, f"none: the run diverged at step {diverged['step']}")
    return done(job_name, ", ".join(f"{name} {s['scores'][s['primary']]:.1f}" for name, s in scores.items()))


def aggregated(cell: dict) -> str:
    mean = cell["mean"]
    summary = f"E {mean['E']:.1f}, F {mean['F']:.1f}, O {mean['O']:.1f}" if mean else cell["missing_reason"]
    return done(f"cell {cell['model']}/{cell['method']}/{cell['dataset']}", f"{summary} over {cell['n_seeds']} seed(s)")


def drew(what: str, outputs) -> str:
    return done(what, ", ".join(str(p) for p in outputs))


# ---- the job's log and quiet libraries ----------------------------------------------------------

def quiet_libraries() -> None:
    """Silence the libraries' own progress bars in this process's future jobs (they read the
    environment when imported); a value the user set wins."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()

    def isatty(self) -> bool:
        return False


@contextmanager
def logged(log_path: str | Path, every: dict | None = None):
    """Copy the job's stderr into its log file and end the log with the error that stopped it, if
    any, so the reason a job failed outlives the console it printed to. `every`: the config's
    `progress:` block (`plan.progress`)."""
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as log, warnings.catch_warnings():
        for message, category in KNOWN_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        _Job.console, _Job.log, _Job.every = sys.stderr, log, every or EVERY
        sys.stderr = _Tee(_Job.console, log)
        try:
            yield
        except BaseException as err:
            log.write("".join(traceback.format_exception(err)))
            log.write(f"ERROR: {type(err).__name__}: {err}\n")
            raise
        finally:
            sys.stderr, _Job.console, _Job.log, _Job.every = _Job.console, None, None, EVERY


@contextmanager
def dropping_lines(noise: re.Pattern):
    """Run the body with this process's stderr file descriptor, which subprocesses inherit, in a
    temporary file; then write back every line of it but those `noise` matches."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines() if not noise.search(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
