"""What a job prints: one summary line at its end (what it did, its result, its time), on stderr so
it lands in Snakemake's console output and in SLURM job logs; and its own log file, which holds its
stderr and the error that ended it."""

from __future__ import annotations

import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import psutil


def done(what: str, result: str) -> str:
    # From the job process's start: interpreter start-up and imports count too.
    line = f"[tunebench] done {what}: {result} ({time.time() - psutil.Process().create_time():.1f} s)"
    # A fresh line first: concurrent jobs share stderr, and another job's progress bar may have
    # left its line open (bars end with a carriage return, not a newline).
    print("\n" + line, file=sys.stderr, flush=True)
    return line


# ---- each stage's summary line (here, not in the stages: rewording one reruns nothing) -----------

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
def logged(log_path: str | Path):
    """Copy the job's stderr into its log file and end the log with the error that stopped it, if
    any, so the reason a job failed outlives the console it printed to."""
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as log:
        console, sys.stderr = sys.stderr, _Tee(sys.stderr, log)
        try:
            yield
        except BaseException as err:
            log.write("".join(traceback.format_exception(err)))
            log.write(f"ERROR: {type(err).__name__}: {err}\n")
            raise
        finally:
            sys.stderr = console
