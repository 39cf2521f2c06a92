"""E/F/O of one table cell from per-seed scores: E is the gain on the tuned (downstream) dataset,
F the mean change on the upstream datasets (negative = forgetting), O combines both. All values
are in points on each dataset's own reported scale (its primary metric times its `scale`)."""

from __future__ import annotations

import statistics
from typing import Callable

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
_RUN_KEYS = ("trainable_params", "total_params", "train_seconds", "peak_memory_mb")
METRICS = ("E", "F", "O")


def _check_o_formula(o_formula: str) -> None:
    if o_formula not in O_FORMULAS:
        raise ValueError(f"unknown o_formula {o_formula!r}; choose from {sorted(O_FORMULAS)}")


def formulas(o_formula: str = "sum") -> dict[str, str]:
    """The E/F/O formula strings, with O matching `o_formula`."""
    _check_o_formula(o_formula)
    return {**FORMULAS, "O": O_TEXT[o_formula]}


def primary_score(scores: dict, dataset: str, scale: float = 1.0) -> float:
    """The primary metric of `dataset` in a scores JSON, times the dataset's `scale` (the points that
    enter E, F and O: MME's 0-2800 total with scale 100/2800 enters as % of its maximum)."""
    if dataset not in scores:
        raise KeyError(f"no scores for dataset {dataset!r} (have: {sorted(scores)})")
    entry = scores[dataset]
    primary = entry.get("primary")
    if primary not in entry.get("scores", {}):
        raise KeyError(f"dataset {dataset!r}: primary metric {primary!r} missing from its scores")
    return float(entry["scores"][primary]) * scale


def _before_after(base_scores: dict, tuned_scores: dict, dataset: str, scale: float) -> dict:
    return {
        "before": primary_score(base_scores, dataset, scale),
        "after": primary_score(tuned_scores, dataset, scale),
    }


def seed_result(
    base_scores: dict,
    tuned_scores: dict,
    run: dict,
    downstream: str,
    upstream: list[str],
    scales: dict[str, float] | None = None,
    o_formula: str = "sum",
) -> dict:
    """E, F and O of one seed, with the raw scores and run costs they came from; `scales`: each
    dataset's factor into E/F/O (default 1)."""
    if not upstream:
        raise ValueError("F needs at least one upstream dataset")
    _check_o_formula(o_formula)
    scales = scales or {}
    down = _before_after(base_scores, tuned_scores, downstream, scales.get(downstream, 1.0))
    ups = {u: _before_after(base_scores, tuned_scores, u, scales.get(u, 1.0)) for u in upstream}
    e = down["after"] - down["before"]
    f = statistics.fmean(s["after"] - s["before"] for s in ups.values())
    return {
        "downstream": down,
        "upstream": ups,
        "E": e,
        "F": f,
        "O": O_FORMULAS[o_formula](e, f),
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


def _divergence_reason(seeds: dict) -> str:
    parts = [
        f"seed {s}: diverged at step {r['diverged'].get('step')} ({r['diverged'].get('reason')})"
        for s, r in seeds.items()
    ]
    return "all seeds diverged; " + "; ".join(parts) if parts else "no seeds were run"


def build_cell(
    model: str,
    method: str,
    dataset: str,
    upstream: list[str],
    per_seed: dict[int, tuple[dict, dict, dict]],
    scales: dict[str, float] | None = None,
    o_formula: str = "sum",
) -> dict:
    """One table cell (JSON-serialisable): per-seed results plus mean/std over non-diverged seeds."""
    seeds: dict[str, dict] = {}
    ok: list[dict] = []
    for seed in sorted(per_seed):
        base_scores, tuned_scores, run = per_seed[seed]
        if run.get("diverged") is not None:
            # A diverged run has no meaningful scores; keep why, leave it out of the stats.
            seeds[str(seed)] = {"diverged": run["diverged"]}
            continue
        result = seed_result(base_scores, tuned_scores, run, dataset, upstream, scales, o_formula)
        seeds[str(seed)] = result
        ok.append(result)

    cell = {
        "model": model,
        "method": method,
        "dataset": dataset,
        "upstream": list(upstream),
        "formulas": formulas(o_formula),
        "seeds": seeds,
        "mean": _summarise(ok, upstream, statistics.fmean) if ok else None,
        "std": _summarise(ok, upstream, sample_std) if ok else None,
        "n_seeds": len(ok),
    }
    if not ok:
        cell["missing_reason"] = _divergence_reason(seeds)
    return cell
