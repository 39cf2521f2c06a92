"""The study's model-bound steps, one function per workflow rule: pretraining the embedded base
model, tuning, and generating predictions. Every run records what it really did."""

from __future__ import annotations

import math
import random
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from . import datasets, methods, modeling, models, prediction, progress, training, world
from .config import method_settings, training_settings
from .files import atomic_write, read_json, write_json, write_jsonl, write_text
from .provenance import environment


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
    checkpoint = training.checkpoint_path(out_dir)
    stats = training.train(model, data, batches, tokenizer.pad_token_id, settings["lr"], settings.get("warmup", 0),
                           out_dir / "train_log.jsonl", desc=f"pretrain {model_name} seed {seed}",
                           checkpoint=checkpoint, checkpoint_every=config["checkpoint_every"])
    modeling.save(model, processor, out_dir)
    write_json({"model": model_name, "seed": seed, "settings": settings, "architecture": arch,
                "total_params": sum(p.numel() for p in model.parameters()), **stats,
                "environment": environment()}, out_dir / "run.json")
    checkpoint.unlink(missing_ok=True)
    progress.done(f"pretrain {model_name} seed {seed}",
                  f"{stats['steps']} steps, final loss {stats['final_loss']:.3f}, peak {stats['peak_memory_mb']:.0f} MB")


# ---- tuning ---------------------------------------------------------------------------------

def tune(config: dict, model_name: str, method: str, dataset: str, seed: int, base_dir: Path,
         train_path: Path, replay_paths: dict[str, Path], tuned_path: Path, run_path: Path) -> None:
    """One tuning run. Writes the tuned tensors to `tuned_path` (an adapter directory, or the
    selected weights as one safetensors file), then `run_path` (run.json), last: its presence
    means the run finished. A diverged run writes no tensors: an empty placeholder stands at
    `tuned_path` and run.json says at which step the loss stopped being finite."""
    settings = training_settings(config, method, model_name)
    spec = config["models"][model_name]
    fam = models.family(spec["family"])
    training.seed_everything(seed)
    model, processor = load_base(spec, base_dir, training=True)
    pad_id = processor.tokenizer.pad_token_id
    train = datasets.read_split(train_path)
    if "steps" not in settings:  # given in epochs (the paper's 3): passes over this train split
        settings["steps"] = math.ceil(settings["epochs"] * len(train) / settings["batch_size"])
    parts = {dataset: training.encode(train, processor, True)}
    mix = tuning_mix(settings, dataset)
    if "replay" in mix:
        replay = [r for rs in _records(replay_paths).values() for r in rs]
        # Encode only as many upstream rows as the run can draw: encoding dominates short runs.
        per_batch = training.batch_counts(mix, settings["batch_size"])["replay"]
        replay = random.Random(seed).sample(replay, min(len(replay), per_batch * settings["steps"]))
        parts["replay"] = training.encode(replay, processor, True)
    data, pools = training.concat(parts)

    # The tuning loss on a few batches of the tuning mix, drawn apart from the tuning batches.
    probe = training.Batches(pools, [training.Phase(settings.get("mask_batches", 4), mix)],
                             settings["batch_size"], seed + 1)
    model, expected = methods.apply(model, fam, settings, training.losses_on(data, probe, pad_id))
    batches = training.Batches(pools, [training.Phase(settings["steps"], mix)], settings["batch_size"], seed)
    run_dir = Path(run_path).parent
    checkpoint = training.checkpoint_path(run_dir)
    if settings.get("group_by_length", 0) > 1:
        batches = training.LengthGrouped(batches, [len(ids) for ids in data.input_ids], settings["group_by_length"], seed)
    counts = methods.parameter_counts(model)
    diverged = None
    try:
        stats = training.train(model, data, batches, pad_id, settings["lr"],
                               settings.get("warmup", 0), run_dir / "train_log.jsonl",
                               max_grad_norm=settings.get("max_grad_norm", 1.0),
                               weight_decay=settings.get("weight_decay", 0.0),
                               precision=spec.get("precision", "fp32"),
                               gradient_checkpointing=spec.get("gradient_checkpointing", False),
                               desc=f"tune {model_name}/{method}/{dataset} seed {seed}",
                               checkpoint=checkpoint, checkpoint_every=config["checkpoint_every"])
    except training.Diverged as err:
        diverged = {"step": err.step, "reason": str(err)}
        stats = {"train_seconds": None, "peak_memory_mb": training.peak_memory_mb()}
    # The trainable set is checked again after training: nothing may have been unfrozen on the way.
    methods.check_trainable(model, expected, settings["kind"])
    if training.is_main_process():
        save_tuned(model, expected, Path(tuned_path), placeholder=diverged is not None)
        write_json({"model": model_name, "method": method, "dataset": dataset, "seed": seed, "settings": settings,
                    "trainable_params": counts["trainable_params"], "total_params": counts["total_params"],
                    "trainable": counts["trainable"], "diverged": diverged, **stats,
                    "environment": environment()}, run_path)
        checkpoint.unlink(missing_ok=True)
    result = (f"DIVERGED at step {diverged['step']} ({diverged['reason']}); its cell is reported as missing"
              if diverged else
              f"{stats['steps']} steps, final loss {stats['final_loss']:.3f}, peak {stats['peak_memory_mb']:.0f} MB")
    progress.done(f"tune {model_name}/{method}/{dataset} seed {seed}",
                  f"{counts['trainable_params']:,} trainable parameters, {result}")


def tuning_mix(settings: dict, dataset: str) -> dict[str, float]:
    """Each tuning batch's pools: the downstream set and, with `replay`, that fraction of upstream data."""
    replay = settings.get("replay", 0.0)
    return {dataset: 1.0 - replay, "replay": replay} if replay > 0 else {dataset: 1.0}


def save_tuned(model, trained: set[str], path: Path, placeholder: bool = False) -> None:
    """Adapters in peft's format (a directory); selective methods as the tensors they changed (one
    file; the base is kept once). Both appear under their final name only when complete.
    `placeholder` writes an empty one instead (a diverged run has no tensors worth keeping).
    An adapter whose initialisation rewrote base weights (PiSSA) is saved merged, as the weights it
    changed, since its adapter alone would not apply to the saved base."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rewrote_base = isinstance(getattr(getattr(model, "peft_config", {}).get("default"), "init_lora_weights", None), str)
    if rewrote_base and not placeholder:
        changed = {re.sub(r"^base_model\.model\.|\.lora_[AB]\..*$", "", n) + ".weight" for n in trained}
        model, trained = model.merge_and_unload(), changed
    if hasattr(model, "peft_config"):  # a peft-wrapped model saves its adapter alone
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        if not placeholder:
            model.save_pretrained(tmp)
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
    elif placeholder:
        write_text("", path)
    else:
        state = model.state_dict()
        atomic_write(path, lambda tmp: save_file({n: state[n].contiguous() for n in sorted(trained)}, str(tmp)))


def load_base(spec: dict, base: str | Path, training: bool = False):
    """A models entry's base model from `base`: the embedded model's pretrained directory, or the
    HF id / local directory an `hf` entry names. Training keeps fp32 weights (and autocasts to
    `precision`); prediction loads the weights in `precision`."""
    dtype = modeling.DTYPES["fp32" if training else spec.get("precision", "fp32")]
    return modeling.load(base, models.family(spec["family"]), dtype=dtype,
                         attn_implementation=modeling.attention(spec.get("attn_implementation", "auto")),
                         trust_remote_code=spec.get("trust_remote_code", False))


def load_tuned(spec: dict, base: str | Path, tuned: Path | None, settings: dict | None = None):
    """The base model with a tuned run applied. `settings` (the method's) re-creates modules the
    method added and, with `wise_alpha`, interpolates base and tuned weights (WiSE-FT)."""
    model, processor = load_base(spec, base)
    if tuned is None:
        return model, processor
    settings = settings or {}
    alpha = settings.get("wise_alpha")
    base_state = {n: t.clone() for n, t in model.state_dict().items()} if alpha is not None else None
    tuned = Path(tuned)
    if tuned.is_dir():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, tuned)
        if not model.peft_config["default"].is_prompt_learning:
            model = model.merge_and_unload()  # merged, so generation runs at the base model's speed
    else:
        if settings:
            methods.attach_modules(model, models.family(spec["family"]), settings)
        weights = load_file(str(tuned))
        missing = set(weights) - set(model.state_dict())
        if missing:
            raise KeyError(f"{tuned}: tensors not in the base model: {sorted(missing)[:5]}")
        model.load_state_dict(weights, strict=False)
    if alpha is not None:
        wise(model, base_state, alpha)
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

def predict(config: dict, model_name: str, method: str | None, base_dir: Path, tuned: Path | None,
            run_path: Path | None, test_paths: dict[str, Path], outputs: dict[str, Path]) -> None:
    """Greedy answers of the base model (`tuned` None) or a tuned one. A diverged run gets empty
    predictions files: there is no model to ask, and scoring reports it from run.json."""
    run = "/".join(Path(run_path).parent.parts[-4:]) if run_path else f"{model_name}/zero-shot/{Path(base_dir).name}"
    if run_path is not None and read_json(run_path)["diverged"]:
        for path in outputs.values():
            write_jsonl([], path)
        progress.done(f"predict {run}", "no answers: the run diverged")
        return
    spec = config["models"][model_name]
    settings = method_settings(config, method, model_name) if tuned is not None else None
    model, processor = load_tuned(spec, base_dir, tuned, settings)
    if torch.cuda.is_available():
        model.to("cuda")
    batch_size = spec.get("predict_batch_size", 64)
    samples = 0
    for name, path in test_paths.items():
        rows = prediction.predict(model, processor, datasets.read_split(path), batch_size,
                                  config["datasets"][name].get("max_new_tokens"), desc=f"predict {name}")
        write_jsonl(rows, outputs[name])
        samples += len(rows)
    progress.done(f"predict {run}", f"{samples} answers on {len(test_paths)} test sets ({', '.join(test_paths)})")


