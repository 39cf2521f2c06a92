import copy

import pytest
import torch

from tunebench.evaluation import prediction
from tunebench.methods import registry as methods
from tunebench.methods import weights
from tunebench.models import families, inputs, loading
from tunebench.train import batches as batching
from tunebench.train import loop as training

FAMILY = families.family("llava_onevision")
# A models entry as the plan hands it to loading (schema defaults filled in).
SPEC = {"family": "llava_onevision", "source": "embedded", "trust_remote_code": False, "precision": "fp32",
        "attn_implementation": "auto"}
LAYERS = "model.language_model.layers"


def names(model, prefix):
    return {n for n, _ in model.named_parameters() if n.startswith(prefix + ".")}


@pytest.mark.parametrize("kind,layers", [("full", [0, 1, 2, 3]), ("top", [2, 3]), ("last", [3])])
def test_layer_methods_train_exactly_their_decoder_blocks(tiny_model, kind, layers):
    model, _ = tiny_model
    model, expected = methods.apply(model, FAMILY, {"kind": kind, "k": 2})
    want = set().union(*(names(model, f"{LAYERS}.{i}") for i in layers))
    assert methods.trainable_names(model) == expected == want


def test_layer_methods_switch_adds_the_projector(tiny_model):
    model, _ = tiny_model
    model, expected = methods.apply(model, FAMILY, {"kind": "last", "train_projector": True})
    assert expected == names(model, f"{LAYERS}.3") | names(model, "model.multi_modal_projector")


def test_projector_method_trains_only_the_projector(tiny_model):
    model, _ = tiny_model
    model, expected = methods.apply(model, FAMILY, {"kind": "projector"})
    assert methods.trainable_names(model) == names(model, "model.multi_modal_projector")
    assert expected and all("multi_modal_projector" in n for n in expected)


@pytest.mark.parametrize("kind", ["lora", "dora"])
def test_lora_trains_only_adapters_of_the_language_models_targets(tiny_model, kind):
    model, _ = tiny_model
    model, _ = methods.apply(model, FAMILY, {"kind": kind, "r": 4, "alpha": 8, "targets": ["q_proj", "v_proj"]})
    trainable = methods.trainable_names(model)
    # 4 layers x (q, v) x (A, B), plus DoRA's magnitude vector per module.
    assert len(trainable) == 4 * 2 * (3 if kind == "dora" else 2)
    assert all("lora_" in n and ".language_model.layers." in n for n in trainable)
    assert all(("q_proj" in n) or ("v_proj" in n) for n in trainable)
    assert not any("vision_tower" in n for n in trainable)  # the vision tower also has q/v projections


def test_a_method_that_unfreezes_base_weights_fails_loudly(tiny_model):
    model, _ = tiny_model
    model, expected = methods.apply(model, FAMILY, {"kind": "lora", "targets": ["q_proj"]})
    next(p for n, p in model.named_parameters() if "lm_head" in n).requires_grad_(True)
    with pytest.raises(methods.TrainableSetError, match="lm_head"):
        methods.check_trainable(model, expected, "lora")


def test_top_k_out_of_range_is_refused(tiny_model):
    model, _ = tiny_model
    with pytest.raises(ValueError, match="k=9"):
        methods.apply(model, FAMILY, {"kind": "top", "k": 9})


# ---- methods beyond the paper ----------------------------------------------------------------

def _trainable_modules(trainable, markers):
    """Which named projections carry the trainable tensors."""
    return {m for n in trainable for m in markers if f".{m}." in n}


@pytest.mark.parametrize("kind,marker,targets,count", [
    ("pissa", "lora_", {"q_proj", "v_proj"}, 4 * 2 * 2),
    ("vera", "vera_lambda_", {"q_proj", "v_proj"}, 4 * 2 * 2),
    ("oft", "oft_", {"q_proj", "v_proj"}, 4 * 2),
    ("ia3", "ia3_", {"k_proj", "v_proj", "down_proj"}, 4 * 3),
])
def test_peft_methods_train_only_their_tensors_in_the_language_model(tiny_model, kind, marker, targets, count):
    model, _ = tiny_model
    model, expected = methods.apply(model, FAMILY, {"kind": kind, "r": 4})
    trainable = methods.trainable_names(model)
    assert trainable == expected and len(trainable) == count
    assert all(marker in n and ".language_model.layers." in n for n in trainable)
    assert _trainable_modules(trainable, methods.ALL_PROJECTIONS) == targets


def test_prompt_tuning_trains_only_virtual_tokens_and_keeps_the_image_positions(tiny_model, tiny_records):
    model, processor = tiny_model
    model, expected = methods.apply(model, FAMILY, {"kind": "prompt", "virtual_tokens": 5})
    assert methods.trainable_names(model) == expected == {"prompt_encoder.default.embedding.weight"}
    batch = inputs.Batched(tiny_records["big_colour"][:2], processor, with_targets=True)[[0, 1]]
    labels = batch.pop("labels")
    # LLaVA raises if the image tokens it finds differ in number from the image features.
    logits = model(**batch).logits
    assert logits.shape[1] == labels.shape[1] + 5
    other_images = model(**{**batch, "pixel_values": batch["pixel_values"].flip(0)}).logits
    assert not torch.allclose(logits, other_images)  # the answers still see the images
    # Generation runs through the virtual tokens too: its first greedy token is the forward pass's.
    prompts = inputs.Batched(tiny_records["big_colour"][:2], processor, with_targets=False)[[0, 1]]
    generated = model.generate(**prompts, max_new_tokens=2, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id)
    width = prompts["input_ids"].shape[1]
    assert torch.equal(generated[:, :width], prompts["input_ids"])
    assert torch.equal(generated[:, width], model(**prompts).logits[:, -1].argmax(-1))


def test_bottleneck_adapter_trains_only_adapters_and_starts_as_the_identity(tiny_model, tiny_records):
    model, processor = tiny_model
    batch = inputs.Batched(tiny_records["big_colour"][:2], processor, with_targets=True)[[0, 1]]
    batch.pop("labels")
    before = model(**batch).logits
    model, expected = methods.apply(model, FAMILY, {"kind": "adapter", "bottleneck": 4})
    trainable = methods.trainable_names(model)
    assert trainable == expected and len(trainable) == 4 * 4  # down/up weight and bias per block
    assert all(n.startswith(LAYERS) and ".mlp.adapter." in n for n in trainable)
    assert torch.equal(model(**batch).logits, before)


@pytest.mark.parametrize("kind,targets", [("attention", {"q_proj", "k_proj", "v_proj", "o_proj"}),
                                          ("mlp_gate_up", {"gate_proj", "up_proj"})])
def test_submodule_selective_methods(tiny_model, kind, targets):
    model, _ = tiny_model
    model, expected = methods.apply(model, FAMILY, {"kind": kind})
    trainable = methods.trainable_names(model)
    assert trainable == expected and all(n.startswith(LAYERS) for n in trainable)
    assert _trainable_modules(trainable, methods.ALL_PROJECTIONS) == targets
    for layer in range(4):  # every block, weights and (where the projection has one) biases
        for t in targets:
            assert f"{LAYERS}.{layer}.{'self_attn' if kind == 'attention' else 'mlp'}.{t}.weight" in trainable
    if kind == "attention":
        assert f"{LAYERS}.0.self_attn.q_proj.bias" in trainable


def _train(model, processor, records, tmp_path, steps=3, **kwargs):
    data = inputs.Batched(records, processor, with_targets=True)
    batches = batching.Batches({"d": range(len(data))}, [batching.Phase(steps, {"d": 1.0})], 4, seed=0)
    training.train(model, data, batches, lr=1e-2, warmup=0,
                   log_path=tmp_path / "log.jsonl", **kwargs)


def _probe_losses(processor, records):
    return training.losses_on(inputs.Batched(records, processor, with_targets=True), ([0, 1, 2], [3, 4, 5]))


@pytest.mark.parametrize("mask", ["random", "magnitude", "gradient"])
def test_sparse_tuning_changes_only_unmasked_entries(tiny_model, tiny_records, tmp_path, mask):
    model, processor = tiny_model
    records = tiny_records["big_colour"]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    unmasked = copy.deepcopy(model)  # measures the raw gradients, without the method's masking hooks
    losses = _probe_losses(processor, records)
    model, expected = methods.apply(model, FAMILY, {"kind": "sparse", "mask": mask, "ratio": 0.1}, losses)
    assert methods.trainable_names(model) == expected == set(model.sparse_masks)
    assert len(expected) == 4 * 7  # every projection weight of every block
    for n, m in model.sparse_masks.items():
        assert m.sum().item() == round(0.1 * m.numel())
    counts = methods.parameter_counts(model)["trainable"]
    assert counts == {n: round(0.1 * m.numel()) for n, m in model.sparse_masks.items()}
    if mask == "magnitude":  # the smallest weights are the trained ones
        assert all(before[n][m].abs().max() <= before[n][~m].abs().min() for n, m in model.sparse_masks.items())
    if mask == "gradient":  # the entries with the largest accumulated |gradient| are the trained ones
        params = dict(unmasked.named_parameters())
        scores = {n: torch.zeros_like(before[n]) for n in expected}
        for loss in losses(unmasked):  # |gradient| per batch, summed over the batches
            unmasked.zero_grad()
            loss.backward()
            for n in scores:
                scores[n] += params[n].grad.abs()
        assert all(scores[n][m].min() >= scores[n][~m].max() for n, m in model.sparse_masks.items())
    _train(model, processor, records, tmp_path, steps=4)
    params = dict(model.named_parameters())
    for n, m in model.sparse_masks.items():
        after = params[n].detach()
        assert torch.equal(after[~m], before[n][~m]), f"{n}: a masked entry moved"
        assert not torch.equal(after[m], before[n][m]), f"{n}: no trained entry moved"
    untouched = set(before) - expected
    assert all(torch.equal(before[n], params[n].detach()) for n in untouched)


def test_sparse_tuning_refuses_weight_decay(tiny_model):
    model, _ = tiny_model
    with pytest.raises(ValueError, match="weight_decay"):
        methods.apply(model, FAMILY, {"kind": "sparse", "ratio": 0.1, "weight_decay": 0.01})


@pytest.mark.parametrize("kind", ["lora", "last"])
def test_wise_ft_at_alpha_0_is_the_base_and_at_alpha_1_the_tuned_model(tiny_model, tiny_records, tmp_path, kind):
    model, processor = tiny_model
    loading.save(model, processor, tmp_path / "base")
    settings = {"kind": kind, "r": 4}
    model, expected = methods.apply(model, FAMILY, settings)
    records = tiny_records["big_colour"]
    _train(model, processor, records, tmp_path)
    weights.save_tuned(model, expected, tmp_path / "tuned")

    def outputs(alpha):
        loaded, _ = weights.load_tuned(SPEC, tmp_path / "base", None if alpha is None else tmp_path / "tuned",
                                    {**settings, "wise_alpha": alpha})
        return loaded.state_dict(), prediction.generate(loaded, processor, records, batch_size=4, max_new_tokens=6)

    base, tuned = outputs(None), weights.load_tuned(SPEC, tmp_path / "base", tmp_path / "tuned", settings)[0]
    tuned = tuned.state_dict(), prediction.generate(tuned, processor, records, batch_size=4, max_new_tokens=6)
    assert base[1] != tuned[1]  # tuning changed the answers, so the two checks below can fail
    for alpha, want in ((0.0, base), (1.0, tuned)):
        state, answers = outputs(alpha)
        assert all(torch.equal(state[n], want[0][n]) for n in want[0]) and answers == want[1]
    halfway = outputs(0.5)[0]
    changed = next(n for n in tuned[0] if not torch.equal(tuned[0][n], base[0][n]))
    assert torch.allclose(halfway[changed], (base[0][changed] + tuned[0][changed]) / 2, atol=1e-6)
