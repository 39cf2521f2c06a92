"""The study's model-bound steps, one function per workflow rule: pretraining the embedded base
model, tuning, and generating predictions. Every run records what it really did."""

from __future__ import annotations

import platform
import random
import re
import time
from importlib.metadata import version
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from . import datasets, methods, modeling, models, prediction, training, world
from .config import method_settings, training_settings
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
    settings = training_settings(config, method)
    fam = models.family(config["models"][model_name]["family"])
    training.seed_everything(seed)
    model, processor = modeling.load(base_dir)
    pad_id = processor.tokenizer.pad_token_id
    parts = {dataset: training.encode(datasets.read_split(train_path), processor, True)}
    mix = tuning_mix(settings, dataset)
    if "replay" in mix:
        replay = [r for rs in _records(replay_paths).values() for r in rs]
        # Encode only as many upstream rows as the run can draw: encoding dominates short runs.
        per_batch = training.batch_counts(mix, settings["batch_size"])["replay"]
        replay = random.Random(seed).sample(replay, min(len(replay), per_batch * settings["steps"]))
        parts["replay"] = training.encode(replay, processor, True)
    data, pools = training.concat(parts)

    def probe_losses(model):
        """The tuning loss on a few batches of the tuning mix, drawn apart from the tuning batches."""
        probe = training.Batches(pools, [training.Phase(settings.get("mask_batches", 4), mix)],
                                 settings["batch_size"], seed + 1)
        for indices in probe:
            batch = training.collate(data, indices, pad_id)
            labels = batch.pop("labels")
            yield training.batch_loss(model, batch, labels)

    model, expected = methods.apply(model, fam, settings, probe_losses)
    batches = training.Batches(pools, [training.Phase(settings["steps"], mix)], settings["batch_size"], seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = methods.parameter_counts(model)
    diverged = None
    try:
        stats = training.train(model, data, batches, pad_id, settings["lr"],
                               settings.get("warmup", 0), out_dir / "train_log.jsonl",
                               max_grad_norm=settings.get("max_grad_norm", 1.0),
                               weight_decay=settings.get("weight_decay", 0.0),
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


def tuning_mix(settings: dict, dataset: str) -> dict[str, float]:
    """Each tuning batch's pools: the downstream set and, with `replay`, that fraction of upstream data."""
    replay = settings.get("replay", 0.0)
    return {dataset: 1.0 - replay, "replay": replay} if replay > 0 else {dataset: 1.0}


def save_tuned(model, trained: set[str], out_dir: Path) -> None:
    """Adapters in peft's format; selective methods as the tensors they changed (the base is kept once).
    An adapter whose initialisation rewrote base weights (PiSSA) is saved merged, as the weights it
    changed, since its adapter alone would not apply to the saved base."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    rewrote_base = isinstance(getattr(getattr(model, "peft_config", {}).get("default"), "init_lora_weights", None), str)
    if rewrote_base:
        changed = {re.sub(r"^base_model\.model\.|\.lora_[AB]\..*$", "", n) + ".weight" for n in trained}
        model, trained = model.merge_and_unload(), changed
    if hasattr(model, "peft_config"):  # a peft-wrapped model saves its adapter alone
        model.save_pretrained(out_dir)
    else:
        state = model.state_dict()
        save_file({n: state[n].contiguous() for n in sorted(trained)}, str(Path(out_dir) / TUNED_WEIGHTS))


def load_tuned(base_dir: Path, tune_dir: Path | None, fam: models.Family | None = None, settings: dict | None = None):
    """The base model with a tuned run applied. `settings` (the method's) re-creates modules the
    method added and, with `wise_alpha`, interpolates base and tuned weights (WiSE-FT)."""
    model, processor = modeling.load(base_dir)
    if tune_dir is None:
        return model, processor
    settings = settings or {}
    alpha = settings.get("wise_alpha")
    base = {n: t.clone() for n, t in model.state_dict().items()} if alpha is not None else None
    tune_dir = Path(tune_dir)
    if (tune_dir / "adapter_config.json").exists():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, tune_dir)
        if not model.peft_config["default"].is_prompt_learning:
            model = model.merge_and_unload()  # merged, so generation runs at the base model's speed
    else:
        if settings:
            methods.attach_modules(model, fam, settings)
        tuned = load_file(str(tune_dir / TUNED_WEIGHTS))
        missing = set(tuned) - set(model.state_dict())
        if missing:
            raise KeyError(f"{tune_dir / TUNED_WEIGHTS}: tensors not in the base model: {sorted(missing)[:5]}")
        model.load_state_dict(tuned, strict=False)
    if alpha is not None:
        wise(model, base, alpha)
    return model, processor


@torch.no_grad()
def wise(model, base: dict[str, torch.Tensor], alpha: float) -> None:
    """WiSE-FT: every weight becomes (1 - alpha) base + alpha tuned (lerp is exact at 0 and 1)."""
    state = model.state_dict()
    if set(state) != set(base):
        raise KeyError(f"WiSE-FT: the tuned model's tensors differ from the base model's: "
                       f"{sorted(set(state) ^ set(base))[:5]}")
    for name, tensor in state.items():
        if tensor.is_floating_point():
            tensor.copy_(torch.lerp(base[name], tensor, alpha))


# ---- prediction -----------------------------------------------------------------------------

def predict(config: dict, model_name: str, method: str | None, base_dir: Path, tune_dir: Path | None,
            test_paths: dict[str, Path], outputs: dict[str, Path]) -> None:
    fam = models.family(config["models"][model_name]["family"])
    settings = method_settings(config, method) if tune_dir is not None else None
    model, processor = load_tuned(base_dir, tune_dir, fam, settings)
    batch_size = config["models"][model_name].get("predict_batch_size", 64)
    for name, path in test_paths.items():
        start = time.perf_counter()
        rows = prediction.predict(model, processor, datasets.read_split(path), batch_size)
        write_jsonl(rows, outputs[name])
        print(f"predict {name}: {len(rows)} samples in {time.perf_counter() - start:.1f}s")
