"""The study's model-bound steps, one function per workflow rule: pretraining the embedded base
model, tuning, and generating predictions. Every run records what it really did."""

from __future__ import annotations

import platform
import random
import time
from importlib.metadata import version
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from . import datasets, methods, modeling, models, prediction, training, world
from .config import method_settings
from .files import write_json, write_jsonl

LIBRARIES = ("torch", "transformers", "peft", "accelerate", "tokenizers", "polars", "pycocoevalcap")
TUNED_WEIGHTS = "tuned_weights.safetensors"


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": {lib: version(lib) for lib in LIBRARIES},
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _records(paths: dict[str, Path]) -> dict[str, list[dict]]:
    return {name: datasets.read_split(path) for name, path in paths.items()}


# ---- the embedded base model ----------------------------------------------------------------

def pretrain(config: dict, model_name: str, seed: int, train_paths: dict[str, Path], out_dir: Path) -> None:
    """Train a tokenizer and a tiny LLaVA-OneVision from scratch on the upstream train splits."""
    spec = config["models"][model_name]
    arch, settings = spec["architecture"], spec["pretrain"]
    training.seed_everything(seed)
    train = _records(train_paths)
    texts = [r["question"] for rs in train.values() for r in rs] + [a for rs in train.values() for r in rs for a in r["answers"]]
    words = list(world.COLOURS) + list(world.SHAPES) + ["yes", "no", "big", "small"] + list(world.LETTERS)
    tokenizer = modeling.train_tokenizer(texts, words, arch["vocab_size"])
    model, processor = modeling.build_embedded(tokenizer, arch, seed)
    data, pools = training.concat({name: training.encode(rs, processor, True) for name, rs in train.items()})
    curriculum = settings.get("curriculum", [])
    phases = [training.Phase(p["steps"], {d: 1.0 for d in p["datasets"]}) for p in curriculum]
    rest = settings["steps"] - sum(p.steps for p in phases)
    phases.append(training.Phase(rest, {d: 1.0 for d in train}))
    batches = training.Batches(pools, phases, settings["batch_size"], seed)
    out_dir = Path(out_dir)
    stats = training.train(model, data, batches, tokenizer.pad_token_id, settings["lr"], settings.get("warmup", 0),
                           out_dir / "train_log.jsonl", desc=f"pretrain {model_name} seed {seed}")
    modeling.save(model, processor, out_dir)
    write_json({"model": model_name, "seed": seed, "settings": settings, "architecture": arch,
                "total_params": sum(p.numel() for p in model.parameters()), **stats,
                "environment": environment()}, out_dir / "run.json")


# ---- tuning ---------------------------------------------------------------------------------

def tune(config: dict, model_name: str, method: str, dataset: str, seed: int, base_dir: Path,
         train_path: Path, replay_paths: dict[str, Path], out_dir: Path) -> None:
    settings = method_settings(config, method)
    spec = config["models"][model_name]
    fam = models.family(spec["family"])
    training.seed_everything(seed)
    model, processor = load_base(spec, base_dir, training=True)
    model, expected = methods.apply(model, fam, settings)
    parts = {dataset: training.encode(datasets.read_split(train_path), processor, True)}
    mix = {dataset: 1.0 - settings.get("replay", 0.0)}
    if settings.get("replay", 0.0) > 0:
        mix["replay"] = settings["replay"]
        replay = [r for rs in _records(replay_paths).values() for r in rs]
        # Encode only as many upstream rows as the run can draw: encoding dominates short runs.
        per_batch = training.batch_counts(mix, settings["batch_size"])["replay"]
        replay = random.Random(seed).sample(replay, min(len(replay), per_batch * settings["steps"]))
        parts["replay"] = training.encode(replay, processor, True)
    data, pools = training.concat(parts)
    batches = training.Batches(pools, [training.Phase(settings["steps"], mix)], settings["batch_size"], seed)
    if settings.get("group_by_length", 0) > 1:
        batches = training.LengthGrouped(batches, [len(ids) for ids in data.input_ids], settings["group_by_length"], seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = methods.parameter_counts(model)
    diverged = None
    try:
        stats = training.train(model, data, batches, processor.tokenizer.pad_token_id, settings["lr"],
                               settings.get("warmup", 0), out_dir / "train_log.jsonl",
                               max_grad_norm=settings.get("max_grad_norm", 1.0),
                               weight_decay=settings.get("weight_decay", 0.0),
                               precision=spec.get("precision", "fp32"),
                               gradient_checkpointing=spec.get("gradient_checkpointing", False),
                               desc=f"tune {model_name}/{method}/{dataset} seed {seed}")
    except training.Diverged as err:
        diverged = {"step": err.step, "reason": str(err)}
        stats = {"train_seconds": None, "peak_memory_mb": training.peak_memory_mb()}
    # The trainable set is checked again after training: nothing may have been unfrozen on the way.
    methods.check_trainable(model, expected, settings["kind"])
    save_tuned(model, expected, out_dir)
    write_json({"model": model_name, "method": method, "dataset": dataset, "seed": seed, "settings": settings,
                "trainable_params": counts["trainable_params"], "total_params": counts["total_params"],
                "trainable": counts["trainable"], "diverged": diverged, **stats,
                "environment": environment()}, out_dir / "run.json")


def save_tuned(model, trained: set[str], out_dir: Path) -> None:
    """Adapters in peft's format; selective methods as the tensors they changed (the base is kept once)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    if hasattr(model, "peft_config"):  # a peft-wrapped model saves its adapter alone
        model.save_pretrained(out_dir)
    else:
        state = model.state_dict()
        save_file({n: state[n].contiguous() for n in sorted(trained)}, str(Path(out_dir) / TUNED_WEIGHTS))


def load_base(spec: dict, base_dir: Path, training: bool = False):
    """A models entry's base model: the embedded one the workflow pretrained into base_dir, or the
    HF checkpoint (id or local directory) the entry names. Training keeps fp32 weights (and
    autocasts to `precision`); prediction loads the weights in `precision`."""
    path = spec["path"] if spec["source"] == "hf" else base_dir
    dtype = modeling.DTYPES["fp32" if training else spec.get("precision", "fp32")]
    return modeling.load(path, models.family(spec["family"]), dtype=dtype,
                         attn_implementation=modeling.attention(spec.get("attn_implementation", "auto")),
                         trust_remote_code=spec.get("trust_remote_code", False))


def load_tuned(spec: dict, base_dir: Path, tune_dir: Path | None):
    model, processor = load_base(spec, base_dir)
    if tune_dir is None:
        return model, processor
    tune_dir = Path(tune_dir)
    if (tune_dir / "adapter_config.json").exists():
        from peft import PeftModel

        # Merged, so generation runs at the base model's speed.
        return PeftModel.from_pretrained(model, tune_dir).merge_and_unload(), processor
    tuned = load_file(str(tune_dir / TUNED_WEIGHTS))
    missing = set(tuned) - set(model.state_dict())
    if missing:
        raise KeyError(f"{tune_dir / TUNED_WEIGHTS}: tensors not in the base model: {sorted(missing)[:5]}")
    model.load_state_dict(tuned, strict=False)
    return model, processor


# ---- prediction -----------------------------------------------------------------------------

def predict(config: dict, model_name: str, base_dir: Path, tune_dir: Path | None,
            test_paths: dict[str, Path], outputs: dict[str, Path]) -> None:
    spec = config["models"][model_name]
    model, processor = load_tuned(spec, base_dir, tune_dir)
    if torch.cuda.is_available():
        model.to("cuda")
    batch_size = spec.get("predict_batch_size", 64)
    for name, path in test_paths.items():
        start = time.perf_counter()
        rows = prediction.predict(model, processor, datasets.read_split(path), batch_size)
        write_jsonl(rows, outputs[name])
        print(f"predict {name}: {len(rows)} samples in {time.perf_counter() - start:.1f}s")


