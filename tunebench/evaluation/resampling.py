"""A test set's score on resampled copies of it, vectorised: what every interval is built from.

A resample draws a test set's units with replacement, as many as it has, within strata: the units are
items, or image pairs for the yes/no pair metrics (acc+ is defined on pairs); the strata are what a
metric scores separately (MME's and RSVQA's categories, PathVQA's closed and open questions), so each
keeps its size. The draws depend only on the resampling seed, the set's name and its layout, so every
run scored on one set sees the same resamples: zero-shot and tuned, every method, every seed. That is
what pairs their differences.

The score is then recomputed on each resample (as multinomial counts per unit), never averaged item by
item where the metric is corpus-level: `Ratios` covers the accuracies, acc+ and MME's category sums
(count-weighted sums over units); `CiderCorpus` recomputes CIDEr-D with document frequencies counted on
the resampled references, as pycocoevalcap would score the resampled corpus.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

import numpy as np

ROWS_PER_CHUNK = 256  # resamples drawn at once: bounds memory at any test size


@dataclass(frozen=True)
class Layout:
    """How a test set is resampled: each item's unit and each unit's stratum (both 0-based codes)."""

    unit: np.ndarray
    stratum: np.ndarray
    unit_name: str = "item"
    strata_name: str | None = None

    @property
    def units(self) -> int:
        return len(self.stratum)


def codes(labels) -> np.ndarray:
    """0-based codes of `labels`, in order of first appearance."""
    index: dict = {}
    return np.array([index.setdefault(label, len(index)) for label in labels], dtype=np.int64)


def item_layout(strata: list | None = None, n: int | None = None, strata_name: str | None = None) -> Layout:
    """Every item its own unit; strata from `strata` (one label per item), else one stratum of `n`."""
    count = len(strata) if strata is not None else n
    stratum = codes(strata) if strata is not None else np.zeros(count, dtype=np.int64)
    return Layout(np.arange(count), stratum, "item", strata_name if strata is not None else None)


def group_layout(groups: list, strata: list, unit_name: str, strata_name: str) -> Layout:
    """Items grouped into units (`groups`: one key per item); a unit's stratum is its first item's."""
    unit = codes(groups)
    first = np.unique(unit, return_index=True)[1]
    return Layout(unit, codes([strata[i] for i in first]), unit_name, strata_name)


def _stable_int(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def draw_counts(layout: Layout, resamples: int, seed: int, name: str):
    """The resamples of one test set as counts per unit, in chunks of rows (resamples x units). The
    same (seed, name, layout) gives the same counts however the chunks fall."""
    rng = np.random.default_rng([seed, _stable_int(name)])
    order = np.argsort(layout.stratum, kind="stable")  # units grouped by stratum
    sizes = np.bincount(layout.stratum)
    # Draw slot j picks a unit of the stratum that slot belongs to, so each stratum keeps its size.
    slot_start = np.repeat(np.cumsum(sizes) - sizes, sizes)
    slot_size = np.repeat(sizes, sizes)
    n = layout.units
    for begin in range(0, resamples, ROWS_PER_CHUNK):
        rows = min(ROWS_PER_CHUNK, resamples - begin)
        drawn = order[slot_start + (rng.random((rows, n)) * slot_size).astype(np.int64)]
        flat = (drawn + n * np.arange(rows)[:, None]).ravel()
        yield np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


class Statistic(Protocol):
    def on(self, counts: np.ndarray) -> np.ndarray:
        """The score on each resample (row) of `counts` (resamples x units)."""


@dataclass(frozen=True)
class Ratios:
    """100 * sum_j weight_j * (counts @ numerator_j) / (counts @ denominator_j): an accuracy is one
    ratio (right answers over questions), MME's total a sum of per-category acc and acc+ ratios."""

    numerators: np.ndarray  # units x parts
    denominators: np.ndarray
    weights: np.ndarray

    @classmethod
    def of(cls, parts: list[tuple[float, np.ndarray, np.ndarray]]) -> Ratios:
        """`parts`: (weight, per-unit numerator, per-unit denominator)."""
        return cls(np.column_stack([p[1] for p in parts]), np.column_stack([p[2] for p in parts]),
                   np.array([p[0] for p in parts], dtype=np.float64))

    def on(self, counts: np.ndarray) -> np.ndarray:
        return 100.0 * ((counts @ self.numerators) / (counts @ self.denominators)) @ self.weights


def mean_part(layout: Layout, values, mask=None, weight: float = 1.0):
    """The mean of per-item `values` over the items `mask` keeps, as a ratio part."""
    values = np.asarray(values, dtype=np.float64)
    keep = np.ones_like(values) if mask is None else np.asarray(mask, dtype=np.float64)
    return (weight, np.bincount(layout.unit, values * keep, layout.units),
            np.bincount(layout.unit, keep, layout.units))


def all_right_part(layout: Layout, correct, unit_mask=None, weight: float = 1.0):
    """The share of units (of those `unit_mask` keeps) whose items are all right: MME's acc+."""
    correct = np.asarray(correct, dtype=np.float64)
    right = np.bincount(layout.unit, correct, layout.units) == np.bincount(layout.unit, minlength=layout.units)
    keep = np.ones(layout.units) if unit_mask is None else np.asarray(unit_mask, dtype=np.float64)
    return weight, right * keep, keep


@dataclass(frozen=True)
class Resampled:
    """A metric's key in resampling form: how its test set is resampled, the statistic recomputed on
    each resample, and each item's own score (0-100, or CIDEr-D x 100 for an image's caption)."""

    layout: Layout
    statistic: Statistic
    item_scores: list[float]

    def replicates(self, resamples: int, seed: int, name: str) -> np.ndarray:
        return np.concatenate([self.statistic.on(c) for c in draw_counts(self.layout, resamples, seed, name)])


# ---- CIDEr-D on a resampled corpus -----------------------------------------------------------

def _ngram_counts(tokens: str, n: int) -> Counter:
    """pycocoevalcap's precook: every 1..n-gram of the whitespace-split tokens, counted."""
    words = tokens.split()
    return Counter(tuple(words[i:i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1))


class CiderCorpus:
    """CIDEr-D x 100 (pycocoevalcap's `CiderScorer`: n = 4, sigma = 6) on resampled corpora. A resample
    that draws image i c_i times is the corpus holding c_i copies of it: document frequencies count the
    copies, and the corpus score is the count-weighted mean of the per-image scores under them. Per
    (reference, n-gram order), the tf-idf norms and the clipped dot product are sums over its n-grams
    of coefficient x idf^2 (idf >= 0), so each is a sparse matrix applied to every resample's idf^2 at
    once. Only (reference, order) rows that share an n-gram with the hypothesis can score, so only they
    are kept."""

    def __init__(self, refs: list[list[str]], hyps: list[str], n: int = 4, sigma: float = 6.0):
        from scipy import sparse

        hyp_counts = [_ngram_counts(h, n) for h in hyps]
        ref_counts = [[_ngram_counts(r, n) for r in item_refs] for item_refs in refs]
        vocab = {gram: None for counts in hyp_counts for gram in counts}
        rows = []  # (image, reference's counts, order) of every row that can score
        for i, item_refs in enumerate(ref_counts):
            for counts in item_refs:
                shared = {len(g) for g in counts if g in hyp_counts[i]}
                rows += [(i, counts, order) for order in sorted(shared)]
                vocab.update(dict.fromkeys(g for g in counts if len(g) in shared))
        column = {gram: j for j, gram in enumerate(vocab)}

        def matrix(entries, height):
            r, c, v = zip(*entries) if entries else ((), (), ())
            return sparse.csr_matrix((v, (r, c)), shape=(height, len(column)), dtype=np.float64)

        docs = {(column[g], i) for i, item_refs in enumerate(ref_counts) for counts in item_refs
                for g in counts if g in column}
        grams, images = zip(*docs) if docs else ((), ())
        # n-grams x images: 1 where an image's references hold the n-gram (its document frequency's terms)
        self.docs_t = sparse.csr_matrix((np.ones(len(docs)), (grams, images)), shape=(len(column), len(hyps)))
        self.hyp_sq = matrix([(i * n + len(g) - 1, column[g], tf * tf) for i, counts in enumerate(hyp_counts)
                              for g, tf in counts.items()], len(hyps) * n)
        self.ref_sq = matrix([(k, column[g], tf * tf) for k, (_, counts, order) in enumerate(rows)
                              for g, tf in counts.items() if len(g) == order], len(rows))
        self.match = matrix([(k, column[g], min(hyp_counts[i][g], tf) * tf) for k, (i, counts, order) in enumerate(rows)
                             for g, tf in counts.items() if len(g) == order and g in hyp_counts[i]], len(rows))
        image = np.array([i for i, _, _ in rows], dtype=np.int64)
        self.hyp_row = image * n + np.array([order - 1 for _, _, order in rows], dtype=np.int64)

        def length(counts):  # pycocoevalcap's "length" counts bigrams
            return sum(tf for g, tf in counts.items() if len(g) == 2)

        delta = np.array([length(hyp_counts[i]) - length(counts) for i, counts, _ in rows], dtype=np.float64)
        per_image = np.array([len(item_refs) for item_refs in refs], dtype=np.float64)
        # An image's score: 10 x the mean over its references of the mean over orders of penalty x cosine.
        weight = 10.0 * np.exp(-delta ** 2 / (2 * sigma ** 2)) / (n * per_image[image])
        self.combine = sparse.csr_matrix((weight, (image, np.arange(len(rows)))), shape=(len(hyps), len(rows)))
        self.chunk = max(1, min(ROWS_PER_CHUNK, 4_000_000 // max(len(column), len(rows), 1)))

    def image_scores(self, counts: np.ndarray) -> np.ndarray:
        """Each image's CIDEr-D (x 10, as pycocoevalcap) under each resample's document frequencies:
        images x resamples."""
        df = self.docs_t @ counts.T  # n-grams x resamples
        idf_sq = (np.log(counts.sum(axis=1)) - np.log(np.maximum(df, 1.0))) ** 2
        norm_hyp = (self.hyp_sq @ idf_sq)[self.hyp_row]
        norm_ref = self.ref_sq @ idf_sq
        dot = self.match @ idf_sq
        both = (norm_hyp > 0) & (norm_ref > 0)  # pycocoevalcap divides only then (else the dot is 0 too)
        cosine = np.divide(dot, np.sqrt(norm_hyp * norm_ref), out=np.zeros_like(dot), where=both)
        return self.combine @ cosine

    def on(self, counts: np.ndarray) -> np.ndarray:
        parts = []
        for begin in range(0, len(counts), self.chunk):
            block = counts[begin:begin + self.chunk]
            parts.append(100.0 * (block * self.image_scores(block).T).sum(axis=1) / block.sum(axis=1))
        return np.concatenate(parts)
