"""Plan slices as values: their canonical JSON, its digest, and what differs between two of them.
Light (no imports from the package), so training code can digest its slice without importing the plan."""

from __future__ import annotations

import hashlib
import json


def canonical(value) -> str:
    """A slice as Snakemake compares params (by repr): sorted keys, so reordering a config reruns nothing."""
    return json.dumps(value, sort_keys=True)


def digest_of(value) -> str:
    """16 hex digits of the SHA-256 of a value's canonical JSON."""
    return hashlib.sha256(canonical(value).encode()).hexdigest()[:16]


def changed_keys(old, new, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two slices, e.g. ['settings.lr']."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [k for key in sorted(set(old) | set(new), key=str)
                for k in changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".") or "<all>"]


def value_at(value, dotted: str):
    """The value under a dotted key of `changed_keys` (None where it is absent)."""
    for key in dotted.split(".") if dotted != "<all>" else []:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def changes(old, new) -> str:
    """What differs between two slices, for a person: 'settings.lr 0.001 -> 0.002'."""
    return ", ".join(f"{k} {value_at(old, k)!r} -> {value_at(new, k)!r}" for k in changed_keys(old, new))
