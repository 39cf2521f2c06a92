"""Peak host memory of a tuning job and a prediction job at N and 8N records: is it bounded by the
batch, not by the split?

    PYTHONPATH=$PWD python bench/memory.py --records 16                      # this checkout
    PYTHONPATH=$PWD python bench/memory.py --records 16 --code-root /tmp/other # another checkout's stages

(--code-root takes a checkout whose stages take plan slices, as this one's do; the figures of the
code before streaming, in bench/RESULTS.md, were measured with this script at that commit.)

The model is the reduced LLaVA-OneVision-0.5B preset (real processor: 384 px tiles, anyres_max_9,
729 tokens a tile; random weights), the records 640x480 JPEG photos drawn by tunebench.data.photos (anyres makes 4
tiles plus the base image of each: 8.8 MB of fp32 pixels a record). Each stage runs as the workflow
runs it, `tunebench.stages.tune.tune` then `tunebench.stages.predict.predict`, in a fresh process
whose package comes from --code-root; every 0.1 s a sampler adds that process's RSS and the
private memory (USS) of its DataLoader workers (what they share with it, forked from it, is in its
RSS). Printed per size and stage: that peak, and the job process's own peak RSS (getrusage).
Last line: `ratio <peak at 8N / peak at N>`, the larger stage's peak at each size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import polars as pl
import psutil

from tunebench import plan
from tunebench.data import schema
from tunebench.data.photos import COLOURS, photo
from tunebench.models import presets

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "What is the main colour of the picture?\nAnswer the question using a single word or phrase."


def write_split(path: Path, n: int, split: str) -> None:
    rows = []
    for i in range(n):
        image, colour = photo(i)
        rows.append({"id": f"{split}-{i}", "image_id": f"{split}-{i}", "image": image, "question": QUESTION,
                     "choices": [], "answers": [colour], "task_type": "exact", "category": "", "split": split})
    schema.write_split(pl.DataFrame(rows, schema=schema.SCHEMA), path)


def study_plan_for(base: Path, work: Path) -> plan.Plan:
    """The plan of a one-cell study around the preset (`photos` tuned by LoRA): what the workflow
    hands the tuning and prediction jobs."""
    model = {"family": "llava_onevision", "source": "hf", "path": str(base), "predict_batch_size": 4,
             "micro_batch_size": 2, "num_workers": 2}
    photos = {"task_type": "exact", "metric": "exact_match",
              **{split: {"source": "local", "path": str(work / f"{split}.jsonl")} for split in ("train", "test")}}
    up = {"source": "synthetic", "task": "attribute", "metric": "vqa_accuracy", "train_images": 1, "test_images": 2}
    return plan.build({"study": "bench", "seeds": [0], "models": {"bench": model},
                       "datasets": {"photos": photos, "up": up}, "upstream": ["up"], "downstream": ["photos"],
                       "tuning": {"steps": 4, "batch_size": 4, "warmup": 0, "max_grad_norm": 1.0},
                       "methods": {"lora": {"kind": "lora", "lr": 1e-4, "r": 8, "alpha": 16,
                                            "targets": ["q_proj", "v_proj"]}},
                       "checkpoint_every": 0})


STAGE = """
import json, resource, sys, torch
torch.set_num_threads(1)
args = json.loads(sys.argv[2])
if sys.argv[1] == "tune":
    from tunebench.stages.tune import tune
    tune(**args)
else:
    from tunebench.stages.predict import predict
    predict(**args)
print("RSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def _job_mb(process: psutil.Process) -> float:
    """The job's resident memory: its own RSS plus each worker's private pages (USS; the pages a
    forked worker shares with the job are in the job's RSS already)."""
    total = process.memory_info().rss
    for worker in process.children(recursive=True):
        try:
            total += worker.memory_full_info().uss
        except psutil.Error:
            pass  # a worker that just ended
    return total / 2**20


def run_stage(stage: str, args: dict, code_root: Path) -> dict:
    """One stage in a fresh process: the peak of its memory with its workers', and its own peak RSS."""
    env = {**os.environ, "PYTHONPATH": str(code_root), "TOKENIZERS_PARALLELISM": "false"}
    job = subprocess.Popen([sys.executable, "-c", STAGE, stage, json.dumps(args)], env=env, cwd=code_root,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak, process = [0.0], psutil.Process(job.pid)

    def sample():
        while job.poll() is None:
            peak[0] = max(peak[0], _job_mb(process))
            time.sleep(0.1)
    sampler = threading.Thread(target=sample)
    start = time.perf_counter()
    sampler.start()
    out, _ = job.communicate()
    sampler.join()
    if job.returncode:
        raise RuntimeError(f"{stage} failed (exit {job.returncode})")
    rss = next(float(line.split()[1]) for line in out.splitlines() if line.startswith("RSS"))
    return {"peak_mb": round(peak[0]), "job_peak_rss_mb": round(rss), "seconds": round(time.perf_counter() - start, 1)}


def measure(root: Path, n: int, base: Path, code_root: Path) -> dict:
    work = root / f"n{n}"
    for split in ("train", "test"):
        write_split(work / f"{split}.parquet", n, split)
    study = study_plan_for(base, work)
    control = plan.job_control(study.config, "bench")
    tune = {"job": study.tune_job("bench", "lora", "photos", 0), "base": str(base),
            "train_path": str(work / "train.parquet"), "replay_paths": {}, "tuned_path": str(work / "tune" / "adapter"),
            "run_path": str(work / "tune" / "run.json"), "control": control, "code": "bench"}
    predict = {"job": study.predict_job("bench", plan.ZEROSHOT, "photos"), "base": str(base), "tuned": None,
               "run_path": None, "test_paths": {"photos": str(work / "test.parquet")},
               "outputs": {"photos": str(work / "predictions" / "photos.jsonl")}, "control": control}
    return {"tune": run_stage("tune", tune, code_root), "predict": run_stage("predict", predict, code_root)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=16, help="N: the small size (the large one is 8N)")
    parser.add_argument("--scale", type=float, default=0.05, help="the preset's depth and width factor")
    parser.add_argument("--code-root", type=Path, default=ROOT, help="the checkout whose stages run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        texts = [QUESTION, *COLOURS]
        base = presets.save_preset("llava-ov-0.5b", texts, root / "base", scale=args.scale)
        peaks = {}
        for n in (args.records, 8 * args.records):
            result = measure(root, n, base, args.code_root.resolve())
            for stage, figures in result.items():
                print(f"{n:5d} records  {stage:8s} peak (job RSS + workers' USS) {figures['peak_mb']:6d} MB  "
                      f"job peak RSS {figures['job_peak_rss_mb']:6d} MB  {figures['seconds']:6.1f} s", flush=True)
            peaks[n] = max(f["peak_mb"] for f in result.values())
    print(f"ratio {peaks[8 * args.records] / peaks[args.records]:.3f}")


if __name__ == "__main__":
    main()
