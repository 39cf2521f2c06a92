"""Two methods' paired difference on every set, with its interval (`tunebench compare`): per downstream
set E, F and O, their means over the sets, and the change on each upstream set after tuning on each
downstream set. Paired: the same seeds and the same resamples of every test set
(tunebench.results.intervals)."""

from __future__ import annotations

import numpy as np

from . import intervals
from .cells import METRICS

Arrays = dict[str, dict]  # seed -> tunebench.results.cells.seed_arrays


def paired(a: Arrays, b: Arrays, get) -> tuple[np.ndarray, np.ndarray] | None:
    """`get(arrays)` of a minus b per seed both have: (values, resampled) for intervals.interval."""
    seeds = [s for s in a if s in b]
    if not seeds:
        return None
    diff = np.stack([get(a[s]) - get(b[s]) for s in seeds])
    return diff[:, 0], diff[:, 1:]


def _cell(difference, level: float, seed: int) -> str:
    if difference is None:
        return "–"
    estimate = intervals.interval(*difference, level, seed)
    return f"{estimate.mean:.1f} [{estimate.lo:.1f}, {estimate.hi:.1f}]" + ("*" if estimate.excludes_zero() else "")


def _mean_over_sets(sets: dict[str, tuple[Arrays, Arrays]], metric: str, side: int) -> Arrays:
    """Per seed with a result on every set: the mean over the sets of `metric` (and its resamples)."""
    seeds = set.intersection(*(set(pair[side]) for pair in sets.values())) if sets else set()
    return {s: {metric: np.mean([pair[side][s][metric] for pair in sets.values()], axis=0)} for s in sorted(seeds)}


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in [header, *rows]]


def report(model: str, a: str, b: str, sets: dict[str, tuple[Arrays, Arrays]], upstream: list[str],
           level: float, seed: int) -> str:
    """`sets`: per downstream set, the two methods' per-seed arrays (seeds that scored)."""
    seeds = sorted({s for pair in sets.values() for side in pair for s in side})
    lines = [f"{model}: {a} - {b}, paired differences with {100 * level:g}% intervals over seeds {', '.join(seeds)} "
             "(* : the interval excludes 0)"]
    rows = [[d] + [_cell(paired(*pair, lambda x, m=m: x[m]), level, seed) for m in METRICS] for d, pair in sets.items()]
    means = {m: (_mean_over_sets(sets, m, 0), _mean_over_sets(sets, m, 1)) for m in METRICS}
    rows.append(["Mean"] + [_cell(paired(*means[m], lambda x, m=m: x[m]), level, seed) for m in METRICS])
    lines += _table(["tuned on", *METRICS], rows)
    lines += ["", "change on each upstream set, after tuning on:"]
    lines += _table(["upstream", *sets], [[u] + [_cell(paired(*pair, lambda x, u=u: x["change"][u]), level, seed)
                                                 for pair in sets.values()] for u in upstream])
    return "\n".join(lines) + "\n"
