"""How long the intervals take at the paper's size: scores files of synthetic per-item results for
2 models x 10 methods x 6 downstream x 6 upstream sets x 3 seeds, 5,000 test items per set, then the
cells (E/F/O with intervals) and the tables (Mean columns, ties, notes) built from them, timed stage by
stage. Also one set's resampling cost per kind of metric (an accuracy, MME's pairs, CIDEr's corpus).

    PYTHONPATH=$PWD python bench/table_build.py [--resamples 2000] [--items 5000] [--jobs 2] [--keep DIR]

The per-item results are right/wrong answers, drawn per method, seed and item with a set difficulty;
what they are does not change what cells and tables cost (they read only the resampled scores). The
resampling runs in the `score` jobs, one per run and seed, as here; the bench scores every entry of the
grid in one process, drawing each set's resamples once (each score job draws them for its own sets).
Cells and tables run `--jobs` at a time, as Snakemake runs their jobs on that many cores; each phase
prints its wall time and the CPU time of its processes.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from tunebench.evaluation import metrics, resampling
from tunebench.evaluation.metrics import Sample
from tunebench.files import read_json, write_json
from tunebench.results import cells, tables

MODELS = ["llava_ov_7b", "vila_3b"]
METHODS = ["lora", "dora", "full", "top", "last", "projector", "pissa", "ia3", "attention", "lora_replay"]
DOWNSTREAM = ["scienceqa", "iconqa", "rsvqa", "pathvqa", "flickr30k", "chd"]
UPSTREAM = ["okvqa", "gqa", "textvqa", "ocrvqa", "coco", "mme"]
SEEDS = [0, 1, 2]


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the pool's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(label: str, work) -> float:
    start, cpu = time.perf_counter(), cpu_seconds()
    work()
    wall = time.perf_counter() - start
    print(f"{label}: {wall:.1f} s wall, {cpu_seconds() - cpu:.1f} s CPU (load average {os.getloadavg()[0]:.1f})",
          flush=True)
    return wall


def one_set_costs(items: int, resamples: int) -> None:
    """The score stage's resampling of one set of `items`, per kind of metric."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(2000)]

    def sentence(length):
        return " ".join(rng.choice(words[:300]) if rng.random() < 0.7 else rng.choice(words) for _ in range(length))

    accuracy = [Sample(str(i), rng.choice("AB"), ["A"]) for i in range(items)]
    mme = [Sample(str(i), rng.choice(["yes", "no"]), ["yes" if i % 2 == 0 else "no"], image_id=str(i // 2),
                  category=metrics.MME_PERCEPTION[i // 2 % 10]) for i in range(items)]  # an image's two questions
    captions = [Sample(str(i), sentence(10), [sentence(rng.randint(8, 13)) for _ in range(5)]) for i in range(items)]
    for name, metric, samples, key in [("accuracy", "exact_match", accuracy, "accuracy"),
                                       ("MME pairs", "mme", mme, "total"), ("CIDEr corpus", "cider", captions, "cider")]:
        start = time.perf_counter()
        form = metrics.resampled(metric, samples, key)
        built = time.perf_counter()
        form.replicates(resamples, 0, name)
        print(f"resampling one {name} set of {items:,} items, {resamples:,} resamples: "
              f"{built - start:.1f} s to read the items, {time.perf_counter() - built:.1f} s to resample", flush=True)


def entry(replicates: np.ndarray, correct: np.ndarray, ids: list[str], resamples: int) -> dict:
    return {"metric": "exact_match", "primary": "accuracy", "protocol": "lmms_eval", "tokenizer": None, "notes": [],
            "scores": {"accuracy": 100 * float(correct.mean()), "n": len(correct)},
            "items": {"id": ids, "score": (100 * correct).tolist()},
            "resampled": {"resamples": resamples, "seed": 0, "unit": "item", "strata": None,
                          "primary": np.round(replicates, 6).tolist()}}


def write_scores(root: Path, items: int, resamples: int) -> None:
    """Every scores file of the grid: per set, its resamples drawn once and applied to every run's items."""
    rng = np.random.default_rng(0)
    ids = [f"q{i:05d}" for i in range(items)]
    layout = resampling.item_layout(n=items)
    files: dict[Path, dict] = {}
    for name in DOWNSTREAM + UPSTREAM:
        counts = np.concatenate(list(resampling.draw_counts(layout, resamples, 0, name)))
        difficulty = rng.uniform(0.2, 0.8, items)
        runs = [(m, "zeroshot", name, s) for m in MODELS for s in SEEDS]
        runs += [(m, method, d, s) for m in MODELS for method in METHODS for d in DOWNSTREAM for s in SEEDS
                 if name in (d, *UPSTREAM)]
        for model, run, train, seed in runs:
            gain = 0.0 if run == "zeroshot" else rng.normal(0.15 if name == train else -0.05, 0.05)
            correct = (rng.random(items) < np.clip(difficulty + gain, 0, 1)).astype(np.float64)
            statistic = resampling.Ratios.of([resampling.mean_part(layout, correct)])
            path = root / "scores" / model / run / (name if run == "zeroshot" else train) / f"seed{seed}.json"
            files.setdefault(path, {})[name] = entry(statistic.on(counts), correct, ids, resamples)
    for path, content in files.items():
        write_json(content, path)


def build_cell(root: Path, model: str, method: str, d: str) -> None:
    """What one `cell` job does: read its scores files, build the cell, write it."""
    def zeroshot(seed, sets):
        return {name: read_json(root / "scores" / model / "zeroshot" / name / f"seed{seed}.json")[name]
                for name in sets}

    run = {"trainable_params": 1, "total_params": 10, "train_seconds": 1.0, "peak_memory_mb": 1.0, "diverged": None}
    per_seed = {s: (zeroshot(s, [d] + UPSTREAM), read_json(root / "scores" / model / method / d / f"seed{s}.json"),
                    run) for s in SEEDS}
    write_json(cells.build_cell(model, method, d, UPSTREAM, per_seed), root / "cells" / model / method / f"{d}.json")


def build_table(root: Path, model: str) -> None:
    """What one `tables` job does."""
    found = [read_json(root / "cells" / model / m / f"{d}.json") for m in METHODS for d in DOWNSTREAM]
    tables.write_tables(found, root / "tables" / model, f"paper grid, {model}")


def in_parallel(jobs: int, work, arguments: list[tuple]) -> None:
    with ProcessPoolExecutor(jobs) as pool:
        for done in [pool.submit(work, *a) for a in arguments]:
            done.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--jobs", type=int, default=2, help="cell and table jobs at a time (cores)")
    parser.add_argument("--keep", help="write the grid here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    one_set_costs(args.items, args.resamples)
    root = Path(args.keep or tempfile.mkdtemp(prefix="table_build_"))
    try:
        timed(f"scores files: per-item results and their resampled scores, every entry of the grid "
              f"({len(MODELS) * (len(METHODS) * len(DOWNSTREAM) + len(DOWNSTREAM + UPSTREAM)) * len(SEEDS)} files)",
              lambda: write_scores(root, args.items, args.resamples))
        grid = [(root, m, method, d) for m in MODELS for method in METHODS for d in DOWNSTREAM]
        wall = timed(f"cells ({len(grid)}, from the scores files, {args.jobs} at a time)",
                     lambda: in_parallel(args.jobs, build_cell, grid))
        wall += timed(f"tables ({len(MODELS)}, from the cells)",
                      lambda: in_parallel(args.jobs, build_table, [(root, m) for m in MODELS]))
        print(f"table build (cells + tables): {wall:.1f} s wall")
        print((root / "tables" / f"{MODELS[0]}.md").read_text().splitlines()[-1])
    finally:
        if not args.keep:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
