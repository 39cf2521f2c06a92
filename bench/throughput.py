"""Training and prediction throughput of one model family and method, on this machine.

    python bench/throughput.py --family qwen2_vl --method lora                      # a tiny random model
    python bench/throughput.py --family llava_onevision --preset llava-ov-0.5b      # real sizes, random weights
    python bench/throughput.py --preset llava-ov-0.5b --scale 0.05                  # the same, reduced
    python bench/throughput.py --family llava_onevision --model llava-hf/llava-onevision-qwen2-0.5b-ov-hf

Training goes through tunebench.train.loop.train (the study's loop): samples/s, tokens/s (non-padding
tokens, image tokens included) and MFU, the achieved share of --peak-tflops (or the GPU's known
dense bf16 peak). FLOPs are estimated as (4 x all parameters + 2 x trainable parameters) per token:
a forward and an activation-gradient pass through the whole model, weight gradients only for what
trains; attention's sequence-squared term and the vision tower running on patches rather than
tokens are ignored, so MFU is approximate. Prediction goes through tunebench.prediction.generate
(length-sorted, left-padded, greedy with KV cache), batched and one by one on the same records.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from tunebench.data import world
from tunebench.evaluation import prediction
from tunebench.methods import registry as methods
from tunebench.models import families, inputs, loading, presets, tiny
from tunebench.train import batches as batching
from tunebench.train import loop as training

# dense bf16 tensor-core peaks (TFLOPS), from the vendors' data sheets
GPU_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}
METHOD_SETTINGS = {"lora": {"r": 8, "alpha": 16}, "dora": {"r": 8, "alpha": 16}, "top": {"k": 2}}


def peak_tflops(given: float | None) -> float | None:
    if given:
        return given
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return next((v for k, v in GPU_PEAK_TFLOPS.items() if k in name), None)
    return None


def load(args, texts: list[str], workdir: Path):
    """The model through loading.load, as the study loads it (a tiny or preset model is saved first)."""
    fam = families.family(presets.PRESETS[args.preset].family if args.preset else args.family)
    path = args.model
    if path is None:
        model, processor = (presets.build(args.preset, texts, args.scale) if args.preset
                            else tiny.build(args.family, texts))
        loading.save(model, processor, workdir / "base")
        path = workdir / "base"
    return loading.load(path, fam, attn_implementation=loading.attention(args.attn),
                         trust_remote_code=args.trust_remote_code)


def bench_training(args, records, workdir: Path) -> dict:
    texts = [r["question"] for r in records] + [a for r in records for a in r["answers"]]
    model, processor = load(args, texts, workdir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    fam = families.family(presets.PRESETS[args.preset].family if args.preset else args.family)
    model, _ = methods.apply(model, fam, {"kind": args.method, **METHOD_SETTINGS.get(args.method, {})})
    counts = methods.parameter_counts(model)
    data = inputs.Batched(records, processor, with_targets=True)
    run = lambda steps, seed: training.train(
        model, data, batching.Batches({"d": range(len(data))}, [batching.Phase(steps, {"d": 1.0})], args.batch_size, seed),
        lr=1e-5, warmup=0, log_path=workdir / f"log{seed}.jsonl", precision=args.precision,
        gradient_checkpointing=args.gradient_checkpointing, micro_batch_size=args.micro_batch_size,
        num_workers=args.num_workers, desc="bench")
    run(args.warmup_steps, seed=1)  # first steps pay for allocation and kernel choice
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    stats = run(args.steps, seed=2)
    batches = batching.Batches({"d": range(len(data))}, [batching.Phase(args.steps, {"d": 1.0})], args.batch_size, 2)
    lengths = data.lengths()
    tokens = sum(lengths[i] for batch in batches for i in batch)
    seconds = stats["train_seconds"]
    flops = (4 * counts["total_params"] + 2 * counts["trainable_params"]) * tokens
    peak = peak_tflops(args.peak_tflops)
    return {"device": device, "total_params": counts["total_params"], "trainable_params": counts["trainable_params"],
            "steps": args.steps, "batch_size": args.batch_size, "train_seconds": seconds,
            "samples_per_s": round(args.steps * args.batch_size / seconds, 3), "tokens_per_s": round(tokens / seconds, 1),
            "mean_tokens_per_sample": round(tokens / (args.steps * args.batch_size), 1),
            "achieved_tflops": round(flops / seconds / 1e12, 4), "peak_tflops": peak,
            "mfu": round(flops / seconds / 1e12 / peak, 4) if peak else None,
            "micro_batch_size": stats["micro_batch_size"], "oom_halvings": stats["oom_halvings"],
            "peak_memory_mb": stats["peak_memory_mb"]}, model, processor


def bench_prediction(args, model, processor, records) -> dict:
    if torch.cuda.is_available():
        model.to("cuda")
    result = {"samples": len(records), "max_new_tokens": args.max_new_tokens}
    outputs = {}
    for name, batch_size in (("batched", args.predict_batch_size), ("one_by_one", 1)):
        start = time.perf_counter()
        outputs[name] = prediction.generate(model, processor, records, batch_size, args.max_new_tokens)
        seconds = time.perf_counter() - start
        result[name] = {"batch_size": batch_size, "seconds": round(seconds, 2), "samples_per_s": round(len(records) / seconds, 2)}
    result["speedup"] = round(result["one_by_one"]["seconds"] / result["batched"]["seconds"], 2)
    result["same_outputs"] = outputs["batched"] == outputs["one_by_one"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="llava_onevision", choices=sorted(families.FAMILIES))
    parser.add_argument("--method", default="lora", choices=sorted(methods.METHODS))
    parser.add_argument("--model", help="an HF id or local checkpoint directory (default: a tiny random model)")
    parser.add_argument("--preset", choices=sorted(presets.PRESETS), help="a real-architecture model with random weights")
    parser.add_argument("--scale", type=float, default=1.0, help="the preset's depth and width factor")
    parser.add_argument("--micro-batch-size", type=int, help="per forward pass (default: the whole batch)")
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader workers running the processor")
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--samples", type=int, default=64, help="records to predict")
    parser.add_argument("--predict-batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--attn", default="auto", choices=["auto", "sdpa", "eager", "flash_attention_2"])
    parser.add_argument("--peak-tflops", type=float, help="the device's peak (default: known GPUs' dense bf16 peak)")
    args = parser.parse_args()
    train_records = world.generate("caption", max(args.batch_size, 32), seed=0, split="train")
    test_records = world.generate("attribute", args.samples, seed=1, split="test")
    with tempfile.TemporaryDirectory() as tmp:
        train, model, processor = bench_training(args, train_records, Path(tmp))
        predict = bench_prediction(args, model, processor, test_records)
    print(json.dumps({"args": vars(args), "torch_threads": torch.get_num_threads(), "training": train,
                      "prediction": predict}, indent=1))


if __name__ == "__main__":
    main()
