"""A short pretraining and its zero-shot predictions, run by the workflow's own stages in a process of
their own, as a model job runs them: its CPU numerics are set up first (tunebench.numerics), then
torch loads. tests/test_numerics.py runs it under several instruction-set dispatches;
`python tests/numerics_job.py --write-digest` records what it computes in NUMERICS_DIGEST, which the
tests compare on every machine CI runs on.

    python tests/numerics_job.py --write-digest   # after a change that is meant to move the numbers
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NUMERICS_DIGEST = ROOT / "tests" / "numerics_digest.json"
# A study of its own, so the digest moves only when code or libraries do: the embedded model at the
# test size, pretrained 20 steps on three synthetic upstream sets, then asked every test set.
STUDY = {
    "study": "numerics", "seeds": [0], "data_seed": 0,
    "models": {"tiny": {
        "family": "llava_onevision", "source": "embedded", "predict_batch_size": 16,
        "architecture": {"hidden_size": 32, "image_size": 48, "patch_size": 16, "vision_layers": 1, "text_layers": 4,
                         "heads": 2, "kv_heads": 1, "vocab_size": 400},
        "pretrain": {"steps": 20, "batch_size": 8, "lr": 1.0e-3, "warmup": 2,
                     "curriculum": [{"steps": 5, "datasets": ["shapes_vqa"]}]}}},
    "datasets": {
        "shapes_vqa": {"source": "synthetic", "task": "attribute", "metric": "vqa_accuracy", "train_images": 40,
                       "test_images": 12},
        "shapes_yesno": {"source": "synthetic", "task": "count_yesno", "metric": "yesno_pairs", "train_images": 40,
                         "test_images": 12},
        "shapes_caption": {"source": "synthetic", "task": "caption", "metric": "cider", "train_images": 40,
                           "test_images": 12},
        "big_count": {"source": "synthetic", "task": "big_count_choice", "metric": "choice_accuracy",
                      "train_images": 40, "test_images": 12}},
    "upstream": ["shapes_vqa", "shapes_yesno", "shapes_caption"], "downstream": ["big_count"],
    "tuning": {"steps": 1, "batch_size": 8}, "methods": {"last": {"kind": "last", "lr": 1.0e-3}},
}


def job_args(workdir: Path, mode: str) -> dict:
    """What the job process gets: its plan slices (pretrain, zero-shot predict) under `cpu_numerics`
    `mode`, and where its splits and outputs are."""
    from tunebench import plan  # noqa: PLC0415 (light: no torch, no numpy)

    study = plan.build(copy.deepcopy({**STUDY, "cpu_numerics": mode}))
    sets = study.downstream + study.upstream
    return {"workdir": str(workdir), "upstream": study.upstream, "sets": sets,
            "prepare": [study.prepare_job(name, split) for name in sets for split in ("train", "test")
                        if split == "test" or name in study.upstream],
            "pretrain": study.pretrain_job("tiny", 0),
            "predict": {name: study.predict_job("tiny", plan.ZEROSHOT, name) for name in sets},
            "control": plan.job_control(study.config, "tiny")}


def run(workdir: Path, mode: str, env: dict[str, str] | None = None) -> dict:
    """Run the job in a fresh process with `env` (e.g. a forced instruction set) and return what it
    computed: the loss at every step, the sha256 of the weights and of the predictions."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    args = workdir / "args.json"
    args.write_text(json.dumps(job_args(workdir, mode)))
    done = subprocess.run([sys.executable, __file__, str(args)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    if done.returncode != 0:
        raise RuntimeError(f"numerics job failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def _job(args: dict) -> dict:
    """In the job process: numerics first, then the stages."""
    from tunebench import numerics  # noqa: PLC0415

    numerics.pin(args["pretrain"]["cpu_numerics"], threads=1)
    from tunebench.data import schema, sources  # noqa: PLC0415
    from tunebench.stages import predict, pretrain  # noqa: PLC0415

    workdir = Path(args["workdir"])
    split_path = lambda name, split: workdir / "data" / name / f"{split}.parquet"  # noqa: E731
    for prep in args["prepare"]:
        frame, _ = sources.prepare(prep["dataset"], prep["entry"], prep["split"], prep["data_seed"])
        schema.write_split(frame, split_path(prep["dataset"], prep["split"]))
    base = workdir / "base"
    pretrain.pretrain(args["pretrain"], {name: split_path(name, "train") for name in args["upstream"]}, base,
                      args["control"], "pretrain-code")
    outputs = {name: workdir / "predictions" / f"{name}.jsonl" for name in args["sets"]}
    for name in args["sets"]:  # one zero-shot job per set, as the workflow runs them
        predict.predict(args["predict"][name], base, None, None, {name: split_path(name, "test")},
                        {name: outputs[name]}, args["control"])
    losses = [json.loads(line)["loss"] for line in (base / "train_log.jsonl").read_text().splitlines()]
    return {"losses": losses, "weights_sha256": _sha256((base / "model.safetensors").read_bytes()),
            "predictions_sha256": _sha256(b"".join(outputs[name].read_bytes() for name in args["sets"])),
            "numerics": numerics.record()}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def computed(result: dict) -> dict:
    """What a run computed (not how: its numerics record differs between dispatches)."""
    return {k: result[k] for k in ("losses", "weights_sha256", "predictions_sha256")}


def write_digest(workdir: Path) -> dict:
    from tunebench import provenance  # noqa: PLC0415

    result = run(workdir, "pinned")
    digest = {**computed(result), "made_with": {"libraries": provenance.environment()["libraries"],
                                                "cpu": provenance.hardware()["cpu"],
                                                "cpu_flags": provenance.hardware()["cpu_flags"]}}
    NUMERICS_DIGEST.write_text(json.dumps(digest, indent=1) + "\n")
    return digest


if __name__ == "__main__":
    if sys.argv[1] == "--write-digest":
        import tempfile  # noqa: PLC0415

        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(write_digest(Path(tmp)), indent=1))
    else:
        print(json.dumps(_job(json.loads(Path(sys.argv[1]).read_text()))))
