"""Confidence intervals over seeds and test items: a paired two-level bootstrap.

Every quantity (a cell's E, F or O, a Mean column, the difference of two methods) comes as its value
per seed and its value per seed on each resample of the test sets (`items`: seeds x resamples). The
test items are crossed with the seeds (every seed answers the same items), and the resamples are the
same for every seed, zero-shot and tuned, and every method (tunebench.evaluation.resampling), so a
difference of two quantities is resampled as a difference: it is paired.

One replicate of a quantity with per-seed values x_s (mean m) is

    m + shared * (mean_s items[s, b] - m) + sum_s w[b, s] * (x_s - m)

- the second term is the test sets' sampling error that all seeds share: the item resamples' spread of
  the seed mean, shrunk to the part the seeds have in common (their covariance across resamples). The
  rest of it differs from seed to seed and is already in the seeds' spread, so it is not counted twice.
- the third is the seed level, by random weights on the seeds' deviations: w[b] = c_b (g_b - mean g_b)
  with g_b standard normal and c_b^2 = 1 / (k chi2_b), chi2_b ~ chi2(k - 1). For any quantity it is
  then distributed as (s / sqrt(k)) t(k - 1), s the seeds' standard deviation: the exact small-sample
  law of a mean of k normal seeds. Drawing 2 or 3 seeds with replacement instead would give intervals
  that cover the truth about 50% or 75% of the time when seeds dominate.

The interval is the central `level` share of the replicates. With one seed only the test sets'
sampling is covered. tests/test_intervals.py checks 93-97% coverage of 95% intervals on simulated
studies whose true difference is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

POWER = 0.8  # the detection probability behind "smallest detectable difference" and "seeds needed"
MAX_SEEDS = 1000


@dataclass(frozen=True)
class Estimate:
    mean: float
    lo: float
    hi: float

    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0


def seed_weights(seeds: int, resamples: int, seed: int) -> np.ndarray:
    """resamples x seeds weights on the seeds' deviations (see the module doc); zero for one seed.
    The same for every quantity with this many seeds, so differences stay paired."""
    if seeds < 2:
        return np.zeros((resamples, seeds))
    rng = np.random.default_rng([seed, seeds, 0x5EED])
    g = rng.standard_normal((resamples, seeds))
    scale = 1.0 / np.sqrt(seeds * rng.chisquare(seeds - 1, resamples))
    return scale[:, None] * (g - g.mean(axis=1, keepdims=True))


def shared_variance(items: np.ndarray) -> float:
    """The test-sampling variance the seeds share: the mean covariance across resamples of two
    different seeds' values (all of it, with one seed)."""
    k = len(items)
    cov = np.atleast_2d(np.cov(items))
    within = float(np.trace(cov)) / k
    if k == 1:
        return within
    between = (float(cov.sum()) - float(np.trace(cov))) / (k * (k - 1))
    return min(max(between, 0.0), within)


def replicates(values: np.ndarray, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The bootstrap replicates of one quantity (module doc): per-seed `values` (k), their resampled
    `items` (k x resamples), the seed `weights` (resamples x k)."""
    values, items = np.asarray(values, dtype=np.float64), np.asarray(items, dtype=np.float64)
    mean = values.mean()
    seed_mean = items.mean(axis=0)
    total = seed_mean.var()
    shared = 1.0 if len(values) == 1 else (np.sqrt(shared_variance(items) / total) if total > 0 else 0.0)
    return mean + shared * (seed_mean - mean) + weights @ (values - mean)


def interval(values, items, level: float, seed: int) -> Estimate:
    """`values` per seed and their resampled `items`: the mean and its central `level` interval."""
    items = np.asarray(items, dtype=np.float64)
    reps = replicates(values, items, seed_weights(len(items), items.shape[1], seed))
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(float(np.mean(values)), float(lo), float(hi))


def sampling_se(items) -> float:
    """The standard error a score owes to its test set's size: the resamples' spread of its seed mean."""
    return float(np.asarray(items, dtype=np.float64).mean(axis=0).std())


def _z(level: float) -> float:
    return NormalDist().inv_cdf((1 + level) / 2) + NormalDist().inv_cdf(POWER)


def detectable(se: float, level: float) -> float:
    """The smallest difference between two scores of standard error `se` each that a test at `level`
    detects with probability POWER (normal approximation)."""
    return _z(level) * np.sqrt(2.0) * se


@dataclass(frozen=True)
class SeedsNeeded:
    seeds: int | None  # None: no number of seeds does it (see `why`)
    gap: float
    seed_sd: float
    why: str = ""


def seeds_needed(values, items, level: float) -> SeedsNeeded:
    """How many seeds separate two methods whose per-seed difference is `values` (resampled: `items`):
    the fewest N with |gap| >= (t(N-1, (1+level)/2) + t(N-1, POWER)) * sqrt(s^2 / N + shared), s the
    seeds' standard deviation of the difference and `shared` its test-sampling variance, which more
    seeds do not shrink."""
    from scipy.stats import t

    values = np.asarray(values, dtype=np.float64)
    gap = float(values.mean())
    if len(values) < 2:
        return SeedsNeeded(None, gap, float("nan"), "one seed shows no seed-to-seed spread: run at least 2")
    sd, shared = float(values.std(ddof=1)), shared_variance(np.asarray(items, dtype=np.float64))
    if gap == 0:
        return SeedsNeeded(None, gap, sd, "they score the same on average, so no number of seeds separates them")
    if _z(level) * np.sqrt(shared) >= abs(gap):
        return SeedsNeeded(None, gap, sd, "the test sets are too small to separate them, however many seeds")
    for n in range(2, MAX_SEEDS + 1):
        quantile = t.ppf((1 + level) / 2, n - 1) + t.ppf(POWER, n - 1)
        if abs(gap) >= quantile * np.sqrt(sd ** 2 / n + shared):
            return SeedsNeeded(n, gap, sd)
    return SeedsNeeded(None, gap, sd, f"more than {MAX_SEEDS} seeds")
