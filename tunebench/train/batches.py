"""Seeded batch indices: fixed per-pool proportions in every batch (tuning data + replay), phases
(the pretraining curriculum), and optional regrouping by length."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    """`steps` steps drawing each batch from pools in fixed proportions (pool name -> fraction)."""

    steps: int
    mix: dict[str, float]


def batch_counts(mix: dict[str, float], batch_size: int) -> dict[str, int]:
    """Samples per pool in every batch, by largest remainder, so proportions hold exactly per batch."""
    total = sum(mix.values())
    raw = {k: batch_size * v / total for k, v in mix.items()}
    counts = {k: int(math.floor(x)) for k, x in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[: batch_size - sum(counts.values())]:
        counts[k] += 1
    return counts


class Batches:
    """Seeded batch indices into one concatenated Encoded set, pool by pool."""

    def __init__(self, pools: dict[str, range], phases: list[Phase], batch_size: int, seed: int):
        self.pools, self.phases, self.batch_size = pools, phases, batch_size
        self.rng = random.Random(seed)

    def __iter__(self):
        for phase in self.phases:
            counts = batch_counts(phase.mix, self.batch_size)
            for _ in range(phase.steps):
                batch = []
                for pool, n in counts.items():
                    batch += self.rng.choices(self.pools[pool], k=n)
                yield batch

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.phases)


class LengthGrouped:
    """Batches regrouped by length: every `group` consecutive batches are pooled, sorted by sequence
    length and split again, so a batch holds similar lengths and pads little; the group's batches
    are then yielded in seeded random order. Mixing fractions hold per group instead of per batch."""

    def __init__(self, batches: Batches, lengths: list[int], group: int, seed: int):
        self.batches, self.lengths, self.group = batches, lengths, group
        self.rng = random.Random(seed)
        self.total_steps, self.batch_size = batches.total_steps, batches.batch_size

    def __iter__(self):
        batches = iter(self.batches)
        while chunk := [b for _, b in zip(range(self.group), batches)]:
            pooled = sorted((i for b in chunk for i in b), key=lambda i: self.lengths[i])
            regrouped = [pooled[k:k + self.batch_size] for k in range(0, len(pooled), self.batch_size)]
            self.rng.shuffle(regrouped)
            yield from regrouped


def by_length(batches: Batches, data, group: int, seed: int):
    """`batches` regrouped every `group` batches by the lengths of `data`'s records (LengthGrouped),
    or as they are (0 or 1: the lengths are then not computed, which costs a pass over the split)."""
    return LengthGrouped(batches, data.lengths(), group, seed) if group > 1 else batches
