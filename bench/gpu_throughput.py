"""GPU benchmark, prepared to run as is on a CUDA machine (none was lent to the session that wrote it):

    PYTHONPATH=$PWD python bench/gpu_throughput.py > gpu_throughput.json      # full size, ~20 min on one H100
    PYTHONPATH=$PWD python bench/gpu_throughput.py --scale 0.05 --steps 1     # a smoke run (CPU works too)

The full-size LLaVA-OneVision-0.5B preset (random weights, its real processor), bf16, 640x480 photos
(4 anyres tiles plus the base image: ~3,000 tokens a sample). For LoRA and Full-ST, at micro-batch
1, 4 and 8 (global batch 8: 8, 2 and 1 micro-batches a step), with and without gradient
checkpointing: samples/s, tokens/s, MFU and peak GPU memory through tunebench's loop
(tunebench.train.loop.train: DataLoader workers running the processor, accumulation), and the same
for a minimal plain-transformers loop on the same inputs (collated once, on the GPU beforehand;
autocast bf16, AdamW): the loop's overhead is the difference. Then prediction: tunebench's batched
generation against one by one, and plain `model.generate` on the same batches. An OOM is reported
as such (tunebench halves and goes on; the plain loop stops). MFU as in bench/throughput.py:
(4 x all + 2 x trainable parameters) per token over the GPU's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from pathlib import Path

import torch

from tunebench.data.photos import COLOURS, photo
from tunebench.evaluation import prediction
from tunebench.methods import registry as methods
from tunebench.models import families, inputs, loading, presets
from tunebench.train import batches as batching
from tunebench.train import loop as training

QUESTION = "What is the main colour of the picture?\nAnswer the question using a single word or phrase."
GPU_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}
METHODS = {"lora": {"kind": "lora", "r": 8, "alpha": 16, "targets": ["q_proj", "v_proj"]}, "full": {"kind": "full"}}
FAMILY = families.family("llava_onevision")


def records(n: int) -> list[dict]:
    out = []
    for i in range(n):
        image, colour = photo(i)
        out.append({"id": str(i), "image": image, "question": QUESTION, "answers": [colour], "task_type": "exact"})
    return out


def peak_tflops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    return next((v for k, v in GPU_PEAK_TFLOPS.items() if k in name), None)


def figures(samples: int, tokens: int, seconds: float, counts: dict) -> dict:
    flops = (4 * counts["total_params"] + 2 * counts["trainable_params"]) * tokens
    peak = peak_tflops()
    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {"samples_per_s": round(samples / seconds, 3), "tokens_per_s": round(tokens / seconds, 1),
            "mfu": round(flops / seconds / 1e12 / peak, 4) if peak else None,
            "peak_gpu_mb": round(gpu) if gpu else None, "seconds": round(seconds, 2)}


def fresh(base: Path, method: str, checkpointing: bool):
    model, processor = loading.load(base, FAMILY, attn_implementation=loading.attention("auto"))
    model, _ = methods.apply(model, FAMILY, METHODS[method])
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, processor


def tunebench_loop(base, recs, method, micro, checkpointing, args, workdir) -> dict:
    model, processor = fresh(base, method, checkpointing)
    counts = methods.parameter_counts(model)
    data = inputs.Batched(recs, processor, with_targets=True)
    plan = lambda steps, seed: batching.Batches({"d": range(len(recs))}, [batching.Phase(steps, {"d": 1.0})], args.batch, seed)
    run = lambda steps, seed: training.train(
        model, data, plan(steps, seed), lr=1e-5, warmup=0, log_path=workdir / "log.jsonl", precision="bf16",
        gradient_checkpointing=checkpointing, micro_batch_size=micro, num_workers=args.num_workers, desc="tunebench")
    run(1, seed=1)  # warm-up: allocation, kernel choice
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    stats = run(args.steps, seed=2)
    lengths = data.lengths()
    tokens = sum(lengths[i] for b in plan(args.steps, 2) for i in b)
    return {**figures(args.steps * args.batch, tokens, stats["train_seconds"], counts),
            "micro_batch_size": stats["micro_batch_size"], "oom_halvings": stats["oom_halvings"]}


def plain_loop(base, recs, method, micro, checkpointing, args) -> dict:
    """The same steps written as a bare transformers loop: inputs collated beforehand and on the GPU."""
    model, processor = fresh(base, method, checkpointing)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).train()
    counts = methods.parameter_counts(model)
    data = inputs.Batched(recs, processor, with_targets=True)
    steps = list(batching.Batches({"d": range(len(recs))}, [batching.Phase(args.steps + 1, {"d": 1.0})], args.batch, 2))
    micro_batches = [[{k: v.to(device) for k, v in data[b[j:j + micro]].items()} for j in range(0, len(b), micro)]
                     for b in steps]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    tokens = 0
    try:
        for k, step in enumerate(micro_batches):
            if k == 1:  # after the warm-up step
                torch.cuda.synchronize() if device == "cuda" else None
                torch.cuda.reset_peak_memory_stats() if device == "cuda" else None
                start = time.perf_counter()
            for batch in step:
                with torch.autocast(device, dtype=torch.bfloat16):
                    loss = model(**batch).loss / len(step)
                loss.backward()
                tokens += int(batch["attention_mask"].sum()) if k else 0
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize() if device == "cuda" else None
    except torch.OutOfMemoryError:
        return {"oom": True}
    return figures(args.steps * args.batch, tokens, time.perf_counter() - start, counts)


def bench_prediction(base, recs, args) -> dict:
    model, processor = loading.load(base, FAMILY, dtype=torch.bfloat16, attn_implementation=loading.attention("auto"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    out = {}
    for name, size in (("tunebench_batched", args.predict_batch), ("tunebench_one_by_one", 1)):
        prediction.generate(model, processor, recs[:size], size, 8)  # warm-up
        start = time.perf_counter()
        outputs = prediction.generate(model, processor, recs, size, 8, num_workers=args.num_workers)
        out[name] = {"batch_size": size, "samples_per_s": round(len(recs) / (time.perf_counter() - start), 3)}
        out[name + "_outputs"] = outputs
    data = inputs.Batched(recs, processor, with_targets=False)
    batches = [{k: v.to(device) for k, v in data[list(range(j, min(j + args.predict_batch, len(recs))))].items()}
               for j in range(0, len(recs), args.predict_batch)]
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            model.generate(**batch, max_new_tokens=8, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id)
    out["plain_generate"] = {"batch_size": args.predict_batch, "samples_per_s": round(len(recs) / (time.perf_counter() - start), 3)}
    out["same_outputs_batched_and_one_by_one"] = out.pop("tunebench_batched_outputs") == out.pop("tunebench_one_by_one_outputs")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="the preset's depth and width factor (1: full size)")
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps per configuration")
    parser.add_argument("--batch", type=int, default=8, help="global batch")
    parser.add_argument("--micro", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--predict-samples", type=int, default=64)
    parser.add_argument("--predict-batch", type=int, default=16)
    parser.add_argument("--num-workers", type=int, default=4)
    args = parser.parse_args()
    recs = records(max(args.batch * 4, args.predict_samples))
    result = {"args": vars(args), "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
              "peak_tflops": peak_tflops(), "training": []}
    with tempfile.TemporaryDirectory() as tmp:
        base = presets.save_preset("llava-ov-0.5b", [QUESTION, *COLOURS], Path(tmp) / "base", scale=args.scale)
        for method in METHODS:
            for micro in args.micro:
                for checkpointing in (False, True):
                    row = {"method": method, "micro_batch_size": micro, "gradient_checkpointing": checkpointing,
                           "tunebench": tunebench_loop(base, recs, method, micro, checkpointing, args, Path(tmp)),
                           "plain_transformers": plain_loop(base, recs, method, micro, checkpointing, args)}
                    result["training"].append(row)
                    print(json.dumps(row), flush=True)
                    gc.collect()  # the configuration's model, optimizer and batches go before the next one
                    torch.cuda.empty_cache() if torch.cuda.is_available() else None
        result["prediction"] = bench_prediction(base, recs[:args.predict_samples], args)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
