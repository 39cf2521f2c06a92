import pytest
import torch

from tunebench import methods, modeling, models, runs, training

FAMILY = models.family("llava_onevision")
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


@pytest.mark.parametrize("kind", ["lora", "last"])
def test_training_changes_only_the_trainable_set_and_reloads(tiny_model, tiny_records, tmp_path, kind):
    model, processor = tiny_model
    modeling.save(model, processor, tmp_path / "base")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model, expected = methods.apply(model, FAMILY, {"kind": kind, "targets": ["q_proj", "v_proj"]})
    data = training.encode(tiny_records["big_colour"], processor, with_targets=True)
    batches = training.Batches({"d": range(len(data))}, [training.Phase(3, {"d": 1.0})], 4, seed=0)
    training.train(model, data, batches, processor.tokenizer.pad_token_id, lr=1e-2, warmup=0,
                   log_path=tmp_path / "log.jsonl")
    runs.save_tuned(model, expected, tmp_path / "tuned")
    spec = {"family": "llava_onevision", "source": "embedded"}
    reloaded, _ = runs.load_tuned(spec, tmp_path / "base", tmp_path / "tuned")
    after = dict(reloaded.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n].detach())}
    if kind == "last":
        assert changed == expected
    else:  # merged LoRA moves exactly the targeted q/v weights of the language model
        assert changed and all(".language_model." in n and n.endswith(("q_proj.weight", "v_proj.weight"))
                               for n in changed)
