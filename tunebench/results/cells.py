"""E/F/O of one table cell from per-seed scores: E is the gain on the tuned (downstream) dataset,
F the mean change on the upstream datasets (negative = forgetting), O combines both. All values
are in points on each dataset's own reported scale (its primary metric times its `scale`), or, with
`aggregation.normalise`, in % of each set's zero-shot score or of its full scale.

Each seed's values are computed on the test sets as they are and on every resample of them (the
scores files' `resampled`: the same resamples in zero-shot and tuned files), in one pass: element 0
of every array is the observed value, the rest its resamples. The intervals come from those
(tunebench.results.intervals)."""

from __future__ import annotations

import statistics
from typing import Callable

import numpy as np

from . import intervals

O_FORMULAS: dict[str, Callable[[float, float], float]] = {
    "sum": lambda e, f: e + f,
    "mean": lambda e, f: (e + f) / 2,
}
O_TEXT = {"sum": "O = E + F", "mean": "O = (E + F) / 2"}
FORMULAS: dict[str, str] = {
    "E": "E = A_down(tuned) - A_down(zero-shot)",
    "F": "F = mean_u [A_u(tuned) - A_u(zero-shot)] over upstream sets u",
    "O": O_TEXT["sum"],
}
# How a set's change enters E and F, and so the Mean columns (aggregation.normalise).
NORMALISE_TEXT = {
    "none": "points of each set's primary metric (times its scale), so a set on a wider scale "
            "(CIDEr x 100 against accuracy %) weighs more",
    "zeroshot": "% of each set's zero-shot score (a relative change)",
    "range": "% of each set's full scale (accuracy 100, CIDEr-D x 100 1000, MME total 2800)",
}
_RUN_KEYS = ("trainable_params", "total_params", "train_seconds", "peak_memory_mb")
METRICS = ("E", "F", "O")
DIGITS = 4  # stored resamples: a ten-thousandth of a point


class Undefined(ValueError):
    """A cell whose normalised change does not exist (a zero-shot score of 0 under normalise: zeroshot)."""


def _check_o_formula(o_formula: str) -> None:
    if o_formula not in O_FORMULAS:
        raise ValueError(f"unknown o_formula {o_formula!r}; choose from {sorted(O_FORMULAS)}")


def formulas(o_formula: str = "sum") -> dict[str, str]:
    """The E/F/O formula strings, with O matching `o_formula`."""
    _check_o_formula(o_formula)
    return {**FORMULAS, "O": O_TEXT[o_formula]}


def _entry(scores: dict, dataset: str) -> dict:
    if dataset not in scores:
        raise KeyError(f"no scores for dataset {dataset!r} (have: {sorted(scores)})")
    entry = scores[dataset]
    if entry.get("primary") not in entry.get("scores", {}):
        raise KeyError(f"dataset {dataset!r}: primary metric {entry.get('primary')!r} missing from its scores")
    return entry


def primary_score(scores: dict, dataset: str, scale: float = 1.0) -> float:
    """The primary metric of `dataset` in a scores JSON, times the dataset's `scale` (the points that
    enter E, F and O: MME's 0-2800 total with scale 100/2800 enters as % of its maximum)."""
    entry = _entry(scores, dataset)
    return float(entry["scores"][entry["primary"]]) * scale


def observed_and_resampled(scores: dict, dataset: str, scale: float = 1.0) -> np.ndarray:
    """[primary score, its score on each resample of the test set] x scale."""
    entry = _entry(scores, dataset)
    return np.array([entry["scores"][entry["primary"]], *entry["resampled"]["primary"]], dtype=np.float64) * scale


def _check_paired(base: dict, tuned: dict, dataset: str) -> None:
    """Zero-shot and tuned must be scored on the same items with the same resamples to be paired."""
    def layout(entry):
        r = entry["resampled"]
        return r["resamples"], r["seed"], r["unit"], r["strata"], entry["items"]["id"]

    if layout(base[dataset]) != layout(tuned[dataset]):
        raise ValueError(f"dataset {dataset!r}: the zero-shot and tuned scores were not resampled alike (other "
                         "items, resamples or seed): rescore both (snakemake reruns `score` when they change)")


def change(before, after, normalise: str, full_scale: float | None, dataset: str):
    """A set's change from zero-shot to tuned as it enters E and F (aggregation.normalise)."""
    if normalise == "none":
        return after - before
    if normalise == "range":
        return 100 * (after - before) / full_scale
    if np.any(np.asarray(before) <= 0):
        raise Undefined(f"the zero-shot score of {dataset} is 0 on its test set or a resample of it, so a "
                        "change relative to it is unbounded (aggregation.normalise: zeroshot)")
    return 100 * (after - before) / before


def seed_arrays(base_scores: dict, tuned_scores: dict, downstream: str, upstream: list[str],
                scales: dict[str, float] | None = None, o_formula: str = "sum", normalise: str = "none",
                full_scale: dict[str, float | None] | None = None) -> dict:
    """One seed's before/after per set, the change on each set, E, F and O: arrays whose element 0 is
    the observed value and the rest its resamples."""
    if not upstream:
        raise ValueError("F needs at least one upstream dataset")
    _check_o_formula(o_formula)
    scales, full_scale = scales or {}, full_scale or {}

    def pair(dataset):
        _check_paired(base_scores, tuned_scores, dataset)
        scale = scales.get(dataset, 1.0)
        return {"before": observed_and_resampled(base_scores, dataset, scale),
                "after": observed_and_resampled(tuned_scores, dataset, scale)}

    sets = {name: pair(name) for name in [downstream] + list(upstream)}
    changes = {name: change(p["before"], p["after"], normalise, full_scale.get(name), name)
               for name, p in sets.items()}
    e = changes[downstream]
    f = np.mean([changes[u] for u in upstream], axis=0)
    return {"sets": sets, "change": changes, "E": e, "F": f, "O": O_FORMULAS[o_formula](e, f)}


def seed_result(arrays: dict, run: dict, downstream: str) -> dict:
    """E, F and O of one seed, with the raw scores and run costs they came from."""
    observed = {name: {k: float(v[0]) for k, v in pair.items()} for name, pair in arrays["sets"].items()}
    return {
        "downstream": observed[downstream],
        "upstream": {u: v for u, v in observed.items() if u != downstream},
        **{m: float(arrays[m][0]) for m in METRICS},
        **{k: run[k] for k in _RUN_KEYS},
    }


def sample_std(values: list[float]) -> float:
    # Sample std (ddof=1); a single seed has no spread to report.
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _summarise(results: list[dict], upstream: list[str], reduce: Callable) -> dict:
    """Apply `reduce` to each aggregated quantity across seed results."""

    def over(get: Callable[[dict], float]) -> float:
        return reduce([float(get(r)) for r in results])

    def pair(get: Callable[[dict], dict]) -> dict:
        return {k: over(lambda r: get(r)[k]) for k in ("before", "after")}

    return {
        **{m: over(lambda r: r[m]) for m in METRICS},
        "downstream": pair(lambda r: r["downstream"]),
        "upstream": {u: pair(lambda r: r["upstream"][u]) for u in upstream},
        **{k: over(lambda r: r[k]) for k in ("trainable_params", "train_seconds", "peak_memory_mb")},
    }


def _intervals(arrays: list[dict], downstream: str, upstream: list[str], level: float, seed: int) -> dict:
    """The interval of E, F, O and of each set's before/after score, over the seeds' arrays."""
    def of(get) -> list[float]:
        stacked = np.stack([get(a) for a in arrays])
        estimate = intervals.interval(stacked[:, 0], stacked[:, 1:], level, seed)
        return [estimate.lo, estimate.hi]

    def pair(name):
        return {k: of(lambda a: a["sets"][name][k]) for k in ("before", "after")}

    return {"level": level, "seed": seed, **{m: of(lambda a: a[m]) for m in METRICS}, "downstream": pair(downstream),
            "upstream": {u: pair(u) for u in upstream}}


def _divergence_reason(seeds: dict) -> str:
    parts = [
        f"seed {s}: diverged at step {r['diverged'].get('step')} ({r['diverged'].get('reason')})"
        for s, r in seeds.items()
    ]
    return "all seeds diverged; " + "; ".join(parts) if parts else "no seeds were run"


def resampled_of(cell: dict, quantity: str, seeds: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A cell's `quantity` (E, F or O) per seed of `seeds` and on each resample: (seeds,), (seeds x resamples)."""
    index = [cell["resampled"]["seeds"].index(s) for s in seeds]
    return (np.array([cell["seeds"][s][quantity] for s in seeds]),
            np.asarray(cell["resampled"][quantity], dtype=np.float64)[index])


def build_cell(
    model: str,
    method: str,
    dataset: str,
    upstream: list[str],
    per_seed: dict[int, tuple[dict, dict, dict]],
    scales: dict[str, float] | None = None,
    o_formula: str = "sum",
    normalise: str = "none",
    full_scale: dict[str, float | None] | None = None,
    level: float = 0.95,
    resample_seed: int = 0,
) -> dict:
    """One table cell (JSON-serialisable): per-seed results, their mean and std over non-diverged
    seeds, the `level` interval of each, the test sizes and the test-sampling standard error of every
    score, and each seed's resampled E, F and O (for the table's Mean columns and paired ties)."""
    seeds: dict[str, dict] = {}
    arrays: dict[str, dict] = {}
    sizes: dict[str, int] = {}
    for seed in sorted(per_seed):
        base_scores, tuned_scores, run = per_seed[seed]
        if run.get("diverged") is not None:
            # A diverged run has no meaningful scores; keep why, leave it out of the stats.
            seeds[str(seed)] = {"diverged": run["diverged"]}
            continue
        try:
            arrays[str(seed)] = seed_arrays(base_scores, tuned_scores, dataset, upstream, scales, o_formula,
                                            normalise, full_scale)
        except Undefined as undefined:
            return {**_cell_head(model, method, dataset, upstream, o_formula, normalise, full_scale), "seeds": {},
                    "mean": None, "std": None, "n_seeds": 0, "missing_reason": str(undefined)}
        seeds[str(seed)] = seed_result(arrays[str(seed)], run, dataset)
        sizes = {name: int(tuned_scores[name]["scores"]["n"]) for name in [dataset] + list(upstream)}

    ok = [seeds[s] for s in arrays]
    cell = {**_cell_head(model, method, dataset, upstream, o_formula, normalise, full_scale), "seeds": seeds,
            "mean": _summarise(ok, upstream, statistics.fmean) if ok else None,
            "std": _summarise(ok, upstream, sample_std) if ok else None,
            "n_seeds": len(ok)}
    if not ok:
        cell["missing_reason"] = _divergence_reason(seeds)
        return cell
    cell["interval"] = _intervals(list(arrays.values()), dataset, upstream, level, resample_seed)
    cell["test_size"] = sizes
    cell["sampling_se"] = {name: {k: intervals.sampling_se(np.stack([a["sets"][name][k][1:] for a in arrays.values()]))
                                  for k in ("before", "after")} for name in sizes}
    cell["resampled"] = {"seeds": list(arrays), **{m: [np.round(a[m][1:], DIGITS).tolist() for a in arrays.values()]
                                                   for m in METRICS}}
    return cell


def _cell_head(model, method, dataset, upstream, o_formula, normalise, full_scale) -> dict:
    """What a cell is and how its values are read: each set's full scale is in the points that
    enter E and F (the scores figure gives each scale its own axis)."""
    return {"model": model, "method": method, "dataset": dataset, "upstream": list(upstream),
            "formulas": formulas(o_formula), "normalise": normalise, "full_scale": dict(full_scale or {})}
