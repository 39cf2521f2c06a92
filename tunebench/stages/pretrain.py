"""Stage `pretrain`: the embedded base model, a tokenizer and a tiny LLaVA-OneVision trained from
scratch on the upstream train splits."""

from __future__ import annotations

from pathlib import Path

from .. import progress
from ..data import schema, world
from ..files import write_json
from ..models import embedded, inputs, loading
from ..provenance import environment
from ..train import batches as batching
from ..train import loop as training


def pretrain(job: dict, train_paths: dict[str, Path], out_dir: Path, checkpoint_every: int = 0) -> None:
    """`job`: the plan's pretrain slice (model, seed, architecture, pretraining settings)."""
    arch, settings, seed = job["architecture"], job["pretrain"], job["seed"]
    training.seed_everything(seed)
    train = schema.read_splits(train_paths)
    texts = [r["question"] for rs in train.values() for r in rs] + [a for rs in train.values() for r in rs for a in r["answers"]]
    words = list(world.COLOURS) + list(world.SHAPES) + ["yes", "no", "big", "small"] + list(world.LETTERS)
    tokenizer = embedded.train_tokenizer(texts, words, arch["vocab_size"])
    model, processor = embedded.build_embedded(tokenizer, arch, seed)
    data, pools = inputs.concat({name: inputs.encode(rs, processor, True) for name, rs in train.items()})
    phases = [batching.Phase(p["steps"], {d: 1.0 for d in p["datasets"]}) for p in settings["curriculum"]]
    rest = settings["steps"] - sum(p.steps for p in phases)
    phases.append(batching.Phase(rest, {d: 1.0 for d in train}))
    batches = batching.by_length(batching.Batches(pools, phases, settings["batch_size"], seed),
                                 [len(ids) for ids in data.input_ids], settings["group_by_length"], seed)
    out_dir = Path(out_dir)
    checkpoint = training.checkpoint_path(out_dir)
    stats = training.train(model, data, batches, tokenizer.pad_token_id, settings["lr"], settings["warmup"],
                           out_dir / "train_log.jsonl", desc=f"pretrain {job['model']} seed {seed}",
                           checkpoint=checkpoint, checkpoint_every=checkpoint_every)
    loading.save(model, processor, out_dir)
    write_json({"model": job["model"], "seed": seed, "settings": settings, "architecture": arch,
                "total_params": sum(p.numel() for p in model.parameters()), **stats,
                "environment": environment()}, out_dir / "run.json")
    checkpoint.unlink(missing_ok=True)
    progress.pretrained(job, stats)
