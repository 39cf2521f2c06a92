"""What the main Snakemake process prints about the whole study, from Snakemake's own log events:

- after each finished job, one line: jobs done out of all, jobs running, time so far, and an ETA
  from the times of the jobs finished so far (per rule; a rule none of whose jobs has finished yet
  counts as the mean finished job), spread over as many jobs as have been running at once;
- for `snakemake --report` on an unfinished study, one line instead of a "Missing metadata" warning
  for every output not built yet (a warning about an output that exists still shows).

The workflow installs it in its main process (`follow`); jobs, also on SLURM, print their own lines.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from pathlib import Path

from snakemake_interface_logger_plugins.common import LogEvent

from .progress import duration, write_line

SNAKEMAKE_LOGGER = "snakemake.logging"
_MISSING_METADATA = "Missing metadata for file "


class StudyProgress(logging.Handler):
    def __init__(self, study: str):
        super().__init__()
        self.study = study
        self.planned: dict[str, int] = {}  # rule -> jobs in the run
        self.running: dict[int, tuple[str, float]] = {}  # jobid -> (rule, start)
        self.took: dict[str, list[float]] = defaultdict(list)  # rule -> seconds of its finished jobs
        self.first_start: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        event, now = getattr(record, "event", None), time.monotonic()
        if event == LogEvent.RUN_INFO:
            self.planned = {rule: n for rule, n in record.stats.items() if rule != "total"}
        elif event == LogEvent.JOB_INFO:
            self.running[record.jobid] = (record.rule_name, now)
            self.first_start = self.first_start or now
        elif event == LogEvent.JOB_FINISHED and record.job_id in self.running:
            rule, start = self.running.pop(record.job_id)
            self.took[rule].append(now - start)
        elif event == LogEvent.JOB_ERROR:  # it stops running; a retry starts it again
            self.running.pop(record.jobid, None)
        elif event == LogEvent.PROGRESS and self.first_start is not None:
            write_line(self.line(record.done, record.total, now))

    def line(self, done: int, total: int, now: float) -> str:
        elapsed = now - self.first_start
        head = f"[tunebench] study {self.study}: {done}/{total} jobs done"
        if done >= total:
            return f"{head} in {duration(elapsed)}"
        eta = self.eta(now)
        return (f"{head}, {len(self.running)} running, {duration(elapsed)} so far"
                + (f", ETA {duration(eta)}" if eta is not None else ""))

    def eta(self, now: float) -> float | None:
        finished = [t for times in self.took.values() for t in times]
        if not finished:
            return None
        mean = {rule: sum(times) / len(times) for rule, times in self.took.items()}
        fallback = sum(finished) / len(finished)
        running = Counter(rule for rule, _ in self.running.values())
        waiting = sum((n - len(self.took.get(rule, ())) - running[rule]) * mean.get(rule, fallback)
                      for rule, n in self.planned.items())
        left_running = sum(max(mean.get(rule, fallback) - (now - start), 0.0) for rule, start in self.running.values())
        busy = sum(finished) + sum(now - start for _, start in self.running.values())
        at_once = max(1.0, busy / max(now - self.first_start, 1e-9))
        return (max(waiting, 0.0) + left_running) / at_once


class NotBuiltYet(logging.Filter):
    """Counts the report's "Missing metadata" warnings about outputs that do not exist, and says
    so once before the report is written."""

    def __init__(self):
        super().__init__()
        self.missing = 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith(_MISSING_METADATA):
            path = message[len(_MISSING_METADATA):].split(". Maybe", 1)[0]
            if not Path(path).exists():
                self.missing += 1
                return False
        elif message == "Report created." and self.missing:
            write_line(f"[tunebench] this report shows an unfinished study: {self.missing} outputs are not built "
                       "yet (`tunebench status` lists the cells; `tunebench report` refuses to build one)")
        return True


def follow(study: str) -> None:
    logger = logging.getLogger(SNAKEMAKE_LOGGER)
    logger.addHandler(StudyProgress(study))  # Snakemake drops its logger's handlers when it starts
    for earlier in [f for f in logger.filters if isinstance(f, NotBuiltYet)]:  # but keeps its filters
        logger.removeFilter(earlier)
    logger.addFilter(NotBuiltYet())
