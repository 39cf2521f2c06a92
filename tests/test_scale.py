"""Training and prediction at real scale, shrunk: micro-batches with gradient accumulation, halving
on out-of-memory, sharded (FSDP2) training over 2 gloo processes, sharded prediction."""

import copy
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import transformers
from safetensors.torch import load_file
from workflow_helpers import saved_model_plan

from tunebench import plan as study_plan
from tunebench.data import records, schema, sources
from tunebench.methods import registry as methods
from tunebench.models import families, inputs, loading
from tunebench.stages import predict as predict_stage
from tunebench.stages import tune as tune_stage
from tunebench.train import batches as batching
from tunebench.train import loop as training
from tunebench.train.checkpoint import checkpoint_path
from tunebench.train.memory import OutOfMemory

FAMILY = families.family("llava_onevision")
STEPS = 6
def _oom(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected by the test)")


def _failing_above(cls, method: str, largest: int, monkeypatch):
    """`cls.method` runs out of memory (as CUDA reports it) on batches of more than `largest` samples."""
    real = getattr(cls, method)

    def limited(self, *args, **kwargs):
        if kwargs["input_ids"].shape[0] > largest:
            _oom()
        return real(self, *args, **kwargs)
    monkeypatch.setattr(cls, method, limited)


@pytest.fixture
def mixed_lengths(tiny_records):
    """Short answers (one letter) and captions (a sentence): micro-batches hold unequal answer tokens."""
    return tiny_records["count_choice"][:3] + tiny_records["caption"][:3]


def _one_step(model, processor, recs, tmp_path, micro, **kwargs):
    model, _ = methods.apply(copy.deepcopy(model), FAMILY, {"kind": "full"})
    data = inputs.Batched(recs, processor, with_targets=True)
    batches = batching.Batches({"d": range(len(recs))}, [batching.Phase(1, {"d": 1.0})], len(recs), seed=0)
    stats = training.train(model, data, batches, lr=1e-2, warmup=0, log_path=tmp_path / f"log{micro}.jsonl",
                           max_grad_norm=0, micro_batch_size=micro, **kwargs)
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}, stats


def test_micro_batches_give_the_update_of_one_global_batch(tiny_model, mixed_lengths, tmp_path):
    model, processor = tiny_model
    whole, whole_stats = _one_step(model, processor, mixed_lengths, tmp_path, micro=6)
    assert whole_stats["accumulation_steps"] == 1
    for micro, steps in ((4, 2), (1, 6)):  # 4 + 2 samples (uneven), and one at a time
        accumulated, stats = _one_step(model, processor, mixed_lengths, tmp_path, micro=micro)
        assert stats["micro_batch_size"] == micro and stats["accumulation_steps"] == steps
        assert stats["final_loss"] == pytest.approx(whole_stats["final_loss"], rel=1e-5)
        # AdamW's first step moves each entry by about lr (1e-2) times the sign of its gradient, so a
        # wrongly weighted micro-batch moves many entries by ~1e-2; fp32 noise moves a few by ~1e-6.
        for name, tensor in whole.items():
            assert torch.allclose(accumulated[name], tensor, atol=1e-5, rtol=0), name


def test_the_loss_is_the_mean_over_samples_of_each_samples_mean_over_answer_tokens(tiny_model, mixed_lengths):
    model, processor = tiny_model
    batch = inputs.Batched(mixed_lengths, processor, with_targets=True)[list(range(6))]
    labels = batch.pop("labels")
    logits = model(**batch).logits
    per_sample = training.sample_losses(logits, labels)
    token_counts = (labels[:, 1:] != -100).sum(1)
    assert len(set(token_counts.tolist())) > 1  # uneven answers: token-mean and sample-mean differ
    by_hand = [torch.nn.functional.cross_entropy(logits[i, :-1][labels[i, 1:] != -100], labels[i, 1:][labels[i, 1:] != -100])
               for i in range(6)]
    assert torch.allclose(per_sample, torch.stack(by_hand), atol=1e-6)


def test_an_out_of_memory_micro_batch_is_halved_and_the_run_goes_on(tiny_model, mixed_lengths, tmp_path, monkeypatch):
    model, processor = tiny_model
    expected, _ = _one_step(model, processor, mixed_lengths, tmp_path, micro=1)
    _failing_above(transformers.LlavaOnevisionForConditionalGeneration, "forward", 1, monkeypatch)
    weights, stats = _one_step(model, processor, mixed_lengths, tmp_path, micro=6)
    assert stats["micro_batch_size"] == 1 and stats["accumulation_steps"] == 6
    assert [(h["from"], h["to"]) for h in stats["oom_halvings"]] == [(6, 3), (3, 1)]
    assert all(torch.allclose(weights[n], expected[n], atol=1e-5, rtol=0) for n in expected)


def test_out_of_memory_at_micro_batch_1_fails_clearly(tiny_model, mixed_lengths, tmp_path, monkeypatch):
    model, processor = tiny_model
    monkeypatch.setattr(transformers.LlavaOnevisionForConditionalGeneration, "forward", _oom)
    with pytest.raises(OutOfMemory, match="out of memory at micro-batch 1 .*step 1"):
        _one_step(model, processor, mixed_lengths, tmp_path, micro=2)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_records):
    """A saved tiny base model, a downstream train split and a 13-record test split, as the workflow has them."""
    from conftest import build_tiny_model  # noqa: PLC0415

    root = tmp_path_factory.mktemp("scale")
    model, processor = build_tiny_model(tiny_records)
    loading.save(model, processor, root / "base")
    entry = {"source": "synthetic", "task": "big_count_choice", "metric": "choice_accuracy",
             "train_images": 24, "test_images": 13}
    for split in ("train", "test"):
        frame, _manifest = sources.prepare("big_count", entry, split, 0)
        schema.write_split(frame, root / f"{split}.parquet")
    return root


def _tune_args(saved: Path, name: str, method: str, checkpoint_every: int = 0, **model) -> dict:
    run = saved / name
    tuned = run / ("adapter" if method == "lora" else "tuned_weights.safetensors")
    plan = saved_model_plan(saved / "base", model, checkpoint_every=checkpoint_every, steps=STEPS)
    return {"job": plan.tune_job("tiny", method, "big_count", 0), "base": str(saved / "base"),
            "train_path": str(saved / "train.parquet"), "replay_paths": {}, "tuned_path": str(tuned),
            "run_path": str(run / "run.json"), "control": study_plan.job_control(plan.config, "tiny"),
            "code": "tune-code"}


def _result(args: dict) -> dict:
    run = Path(args["run_path"])
    log = [json.loads(line) for line in (run.parent / "train_log.jsonl").read_text().splitlines()]
    tuned = Path(args["tuned_path"])
    weights = load_file(tuned / "adapter_model.safetensors" if tuned.is_dir() else tuned)
    return {"run": json.loads(run.read_text()), "losses": [r["loss"] for r in log], "weights": weights}


@pytest.mark.parametrize("method", ["top", "lora"])
def test_two_fsdp_processes_train_as_one_process_does(saved, method):
    one = _tune_args(saved, f"one-{method}", method)
    tune_stage.run(one, processes=1, threads=1)
    two = _tune_args(saved, f"fsdp-{method}", method, distributed="fsdp", micro_batch_size=2)
    tune_stage.run(two, processes=2, threads=1)
    one, two = _result(one), _result(two)
    assert two["run"]["distributed"] == "fsdp" and two["run"]["num_processes"] == 2
    assert two["run"]["micro_batch_size"] == 2 and two["run"]["accumulation_steps"] == 2  # 3 samples per process
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-4, abs=1e-5)
    assert two["weights"].keys() == one["weights"].keys() and two["run"]["trainable"] == one["run"]["trainable"]
    for name, tensor in one["weights"].items():  # gathered whole from the shards
        assert two["weights"][name].shape == tensor.shape
        assert torch.allclose(two["weights"][name], tensor, rtol=1e-3, atol=1e-5), name


def _predict_args(saved: Path, name: str, batch_size: int) -> dict:
    plan = saved_model_plan(saved / "base", {"predict_batch_size": batch_size})
    return {"job": plan.predict_job("tiny", study_plan.ZEROSHOT, "big_count"), "base": str(saved / "base"), "tuned": None,
            "run_path": None, "test_paths": {"big_count": str(saved / "test.parquet")},
            "outputs": {"big_count": str(saved / name / "big_count.jsonl")},
            "control": study_plan.job_control(plan.config, "tiny")}


def test_two_process_sharded_prediction_writes_one_process_file_byte_for_byte(saved):
    one, two = _predict_args(saved, "predict-one", 4), _predict_args(saved, "predict-two", 4)
    predict_stage.run(one, processes=1, threads=1)
    predict_stage.run(two, processes=2, threads=1)  # 4 batches of 4: 2 each, the last short
    written = Path(two["outputs"]["big_count"]).read_bytes()
    assert written == Path(one["outputs"]["big_count"]).read_bytes()
    assert [json.loads(line)["id"] for line in written.decode().splitlines()] == \
        [r["id"] for r in schema.read_split(saved / "test.parquet")]
    assert json.loads((Path(two["outputs"]["big_count"]).parent / "run.json").read_text())["num_processes"] == 2


def test_an_out_of_memory_prediction_batch_is_halved_and_recorded(saved, monkeypatch):
    whole = _predict_args(saved, "predict-whole", 8)
    predict_stage.predict(**whole)
    _failing_above(transformers.LlavaOnevisionForConditionalGeneration, "generate", 2, monkeypatch)
    halved = _predict_args(saved, "predict-halved", 8)
    predict_stage.predict(**halved)
    assert Path(halved["outputs"]["big_count"]).read_text() == Path(whole["outputs"]["big_count"]).read_text()
    run = json.loads((Path(halved["outputs"]["big_count"]).parent / "run.json").read_text())
    assert run["final_batch_size"] == 2 and [(h["from"], h["to"]) for h in run["oom_halvings"]] == [(8, 4), (4, 2)]


def test_a_tuning_run_records_its_halvings_in_run_json(saved, monkeypatch):
    _failing_above(transformers.LlavaOnevisionForConditionalGeneration, "forward", 2, monkeypatch)
    args = _tune_args(saved, "oom-top", "top", micro_batch_size=6)
    tune_stage.tune(**args)
    run = json.loads(Path(args["run_path"]).read_text())
    assert run["micro_batch_size"] == 1 and run["accumulation_steps"] == 6  # 6 -> 3 -> 1
    assert [h["at"] for h in run["oom_halvings"]] == ["step 1", "step 1"]
    assert run["global_batch_size"] == 6 and run["num_processes"] == 1 and run["peak_rss_mb"] > 0


def test_records_stream_from_parquet_one_row_group_at_a_time(saved):
    split = records.FromParquet(saved / "test.parquet")
    rows = schema.read_split(saved / "test.parquet")
    assert len(split) == len(rows) == 13 and [split[i] for i in range(13)] == rows
    # every size as the image's own header gives it, read from the file's metadata, not the images
    assert "image" not in split.texts[0] and split.sizes == [records.image_size(r["image"]) for r in rows]
    assert pq.ParquetFile(saved / "test.parquet").metadata.num_row_groups == 2  # 8 + 5 rows


def test_a_split_without_its_image_sizes_or_with_wrong_ones_is_refused_by_name(saved, tmp_path):
    table = pq.read_table(saved / "test.parquet")
    bare = tmp_path / "bare.parquet"
    pq.write_table(table.replace_schema_metadata({}), bare)  # the same rows, written by another tool
    with pytest.raises(ValueError, match=rf"{bare}: no tunebench.image_sizes in its Parquet metadata"):
        records.FromParquet(bare)
    short = tmp_path / "short.parquet"
    pq.write_table(table.replace_schema_metadata({schema.IMAGE_SIZES_KEY: json.dumps([[48, 48]] * 12)}), short)
    with pytest.raises(ValueError, match=rf"{short}: its tunebench.image_sizes metadata is not one .* its 13 rows"):
        records.FromParquet(short)


SHIM = '''
import os
import torch
import transformers

real = transformers.LlavaOnevisionForConditionalGeneration.forward
large = []


def limited(self, *args, **kwargs):
    # From its third micro-batch of more than one sample on (step 3: after the checkpoint of step 2),
    # process 1 runs out of memory; process 0 then waits in a collective.
    if os.environ.get("RANK") == "1" and kwargs["input_ids"].shape[0] > 1:
        large.append(1)
        if len(large) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected by the test)")
    return real(self, *args, **kwargs)


transformers.LlavaOnevisionForConditionalGeneration.forward = limited
'''


def test_a_multi_process_run_out_of_memory_restarts_its_processes_at_half_the_micro_batch_from_its_checkpoint(
        saved, tmp_path, monkeypatch):
    one = _tune_args(saved, "oom-one", "top")
    tune_stage.run(one, processes=1, threads=1)
    (tmp_path / "sitecustomize.py").write_text(SHIM)  # every Python process started from here loads it
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{Path(__file__).resolve().parent.parent}")
    args = _tune_args(saved, "oom-two", "top", checkpoint_every=2, micro_batch_size=3, distributed="fsdp")
    tune_stage.run(args, processes=2, threads=1)
    one, two = _result(one), _result(args)
    assert two["run"]["micro_batch_size"] == 1 and two["run"]["accumulation_steps"] == 3
    assert [(h["at"], h["from"], h["to"]) for h in two["run"]["oom_halvings"]] == [("step 3", 3, 1)]
    assert two["run"]["resumed_from_step"] == 2 and two["run"]["distributed"] == "fsdp"  # a sharded checkpoint
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-4, abs=1e-5)
    assert not training.relaunch_note(checkpoint_path(Path(args["run_path"]).parent)).exists()
