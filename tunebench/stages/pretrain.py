"""Stage `pretrain`: the embedded base model, a tokenizer and a tiny LLaVA-OneVision trained from
scratch on the upstream train splits."""

from __future__ import annotations

from pathlib import Path

from .. import progress
from ..data import records, world
from ..files import write_json
from ..models import embedded, inputs, loading
from ..provenance import environment
from ..train import batches as batching
from ..train import checkpoint as checkpoints
from ..train import loop as training


def pretrain(job: dict, train_paths: dict[str, Path], out_dir: Path, control: dict, code: str) -> None:
    """`job`: the plan's pretrain slice (model, seed, architecture, pretraining settings); `control`:
    how the job runs (checkpoints, data-loading workers), never what it computes; `code`: the stage's
    code fingerprint (with the slice and the inputs' content: the identity a checkpoint must have)."""
    arch, settings, seed = job["architecture"], job["pretrain"], job["seed"]
    training.seed_everything(seed)
    train = records.read(train_paths)
    texts = [r["question"] for rs in train.values() for r in rs.texts] + [a for rs in train.values() for r in rs.texts for a in r["answers"]]
    words = list(world.COLOURS) + list(world.SHAPES) + ["yes", "no", "big", "small"] + list(world.LETTERS)
    tokenizer = embedded.train_tokenizer(texts, words, arch["vocab_size"])
    model, processor = embedded.build_embedded(tokenizer, arch, seed)
    merged = records.Concat(train)
    data, pools = inputs.Batched(merged, processor, with_targets=True), merged.pools
    phases = [batching.Phase(p["steps"], {d: 1.0 for d in p["datasets"]}) for p in settings["curriculum"]]
    rest = settings["steps"] - sum(p.steps for p in phases)
    phases.append(batching.Phase(rest, {d: 1.0 for d in train}))
    batches = batching.by_length(batching.Batches(pools, phases, settings["batch_size"], seed),
                                 data, settings["group_by_length"], seed)
    out_dir = Path(out_dir)
    checkpoint = checkpoints.checkpoint_path(out_dir)
    stats = training.train(model, data, batches, settings["lr"], settings["warmup"], out_dir / "train_log.jsonl",
                           desc=f"pretrain {job['model']} seed {seed}", num_workers=control["num_workers"],
                           checkpoint=checkpoint, checkpoint_every=control["checkpoint_every"],
                           run_identity=checkpoints.identity(job, code, list(train_paths.values())))
    loading.save(model, processor, out_dir)
    write_json({"model": job["model"], "seed": seed, "settings": settings, "architecture": arch,
                "total_params": sum(p.numel() for p in model.parameters()), **stats,
                "environment": environment()}, out_dir / "run.json")
    checkpoint.unlink(missing_ok=True)
    progress.pretrained(job, stats)
