import json
import random

import torch
from conftest import TINY_ARCH

from tunebench.data import records
from tunebench.evaluation import prediction
from tunebench.methods import registry as methods
from tunebench.models import embedded, families, inputs
from tunebench.train import batches as batching
from tunebench.train import loop as training


def _tokenizer(tiny_records):
    """The embedded tokenizer trained on the tiny records' questions and answers."""
    records = [r for rs in tiny_records.values() for r in rs]
    texts = [r["question"] for r in records] + [a for r in records for a in r["answers"]]
    return embedded.train_tokenizer(texts, [], TINY_ARCH["vocab_size"])


def _tune_once(tiny_records, tmp_path, seed):
    tokenizer = _tokenizer(tiny_records)
    training.seed_everything(seed)
    model, processor = embedded.build_embedded(tokenizer, TINY_ARCH, seed=seed)
    model, _ = methods.apply(model, families.family("llava_onevision"), {"kind": "top", "k": 2})
    merged = records.Concat({name: records.InMemory(rs) for name, rs in tiny_records.items()})
    data = inputs.Batched(merged, processor, with_targets=True)
    batches = batching.Batches(merged.pools, [batching.Phase(3, {name: 1.0 for name in tiny_records})], 7, seed)
    stats = training.train(model, data, batches, lr=1e-2, warmup=1,
                           log_path=tmp_path / f"log{seed}.jsonl")
    outputs = prediction.generate(model, processor, tiny_records["caption"], batch_size=4, max_new_tokens=5)
    return model.state_dict(), outputs, stats, (tmp_path / f"log{seed}.jsonl").read_text()


def test_the_same_seed_reproduces_weights_predictions_and_losses(tiny_records, tmp_path):
    a, b = _tune_once(tiny_records, tmp_path / "a", 0), _tune_once(tiny_records, tmp_path / "b", 0)
    assert all(torch.equal(a[0][k], b[0][k]) for k in a[0])
    assert a[1] == b[1]
    losses = lambda log: [json.loads(line)["loss"] for line in log.splitlines()]
    assert losses(a[3]) == losses(b[3]) and len(losses(a[3])) == 3


def test_batches_hold_the_mixing_fraction_exactly():
    counts = batching.batch_counts({"down": 0.95, "replay": 0.05}, 32)
    assert counts == {"down": 30, "replay": 2}
    batches = batching.Batches({"down": range(0, 100), "replay": range(100, 120)},
                               [batching.Phase(5, {"down": 0.95, "replay": 0.05})], 32, seed=0)
    for batch in batches:
        assert len(batch) == 32 and sum(i >= 100 for i in batch) == 2


def test_curriculum_phases_draw_only_from_their_pools():
    batches = batching.Batches({"a": range(0, 10), "b": range(10, 20)},
                               [batching.Phase(2, {"a": 1.0}), batching.Phase(2, {"a": 1.0, "b": 1.0})], 8, seed=1)
    drawn = list(batches)
    assert all(i < 10 for batch in drawn[:2] for i in batch)
    assert all(sum(i >= 10 for i in batch) == 4 for batch in drawn[2:])


def test_the_loss_is_on_answer_tokens_only(tiny_model, tiny_records):
    _, processor = tiny_model
    batch = inputs.Batched(tiny_records["big_colour"][:2], processor, with_targets=True)[[0, 1]]
    for row in range(2):
        supervised = batch["labels"][row][batch["labels"][row] != -100].tolist()
        text = processor.tokenizer.decode(supervised)
        assert text == tiny_records["big_colour"][row]["answers"][0] + embedded.END_OF_TURN


def test_length_grouping_keeps_the_samples_and_cuts_padding():
    lengths = [random.Random(i).randint(5, 200) for i in range(64)]
    batches = lambda: batching.Batches({"d": range(64)}, [batching.Phase(8, {"d": 1.0})], 8, seed=0)
    grouped = batching.LengthGrouped(batches(), lengths, group=4, seed=0)
    plain, regrouped = list(batches()), list(grouped)
    assert len(regrouped) == grouped.total_steps == 8 and all(len(b) == 8 for b in regrouped)
    for k in range(0, 8, 4):  # the same samples within each group of 4 batches
        assert sorted(i for b in plain[k:k + 4] for i in b) == sorted(i for b in regrouped[k:k + 4] for i in b)
    padding = lambda bs: sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in bs)
    assert padding(regrouped) < padding(plain) / 2


def test_the_embedded_tokenizer_gives_the_chat_roles_one_token_each(tiny_records):
    tokenizer = _tokenizer(tiny_records)
    for word in ["user", "assistant"]:
        assert len(tokenizer(word, add_special_tokens=False)["input_ids"]) == 1, word
