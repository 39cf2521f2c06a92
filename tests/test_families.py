"""Every family x every method on a tiny random model of that family's exact architecture, saved
with save_pretrained and loaded through the path a real checkpoint takes (loading.load)."""

import copy
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from tunebench import config as study_config
from tunebench import plan
from tunebench.data import world
from tunebench.evaluation import prediction
from tunebench.methods import registry as methods
from tunebench.methods import weights
from tunebench.models import families, inputs, loading, tiny
from tunebench.train import batches as batching
from tunebench.train import loop as training
from tunebench.train.sharding import full_tensors

FAMILIES = sorted(tiny.BUILDERS) + ["vila"]
# Settings for every method kind in the registry (small: tiny models). A kind missing here fails
# its test below, which names what to add.
METHODS = {
    "lora": {"r": 4, "alpha": 8, "targets": ["q_proj", "v_proj"]},
    "dora": {"r": 4, "targets": ["q_proj"]},
    "pissa": {"r": 4, "targets": ["q_proj", "v_proj"]},
    "vera": {"r": 4, "targets": ["q_proj", "v_proj"]},
    "oft": {"block_size": 8, "targets": ["q_proj", "v_proj"]},
    "ia3": {"targets": ["k_proj", "v_proj", "down_proj"]},
    "prompt": {"virtual_tokens": 3},
    "adapter": {"bottleneck": 4},
    "attention": {},
    "mlp_gate_up": {},
    "sparse": {"mask": "gradient", "ratio": 0.1},  # gradient: the mask runs the family's forward/backward
    "full": {},
    "top": {"k": 2},
    "last": {"train_projector": True},
    "projector": {},
}
# peft tuners: the name marker of their tensors and how many each targeted module gets.
PEFT_TENSORS = {"lora": ("lora_", 2), "dora": ("lora_", 3), "pissa": ("lora_", 2), "vera": ("vera_lambda_", 2),
                "oft": ("oft_", 1), "ia3": ("ia3_", 1)}
# Decoder-block projections the submodule methods select (weights and biases; sparse: weights only).
PROJECTIONS = {"attention": {"q_proj", "k_proj", "v_proj", "o_proj"}, "mlp_gate_up": {"gate_proj", "up_proj"},
               "sparse": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}}
# What each family's prompt looks like around the question, and how its answers end.
CHAT_FORMAT = {
    "llava_onevision": ("<|im_start|>user\n<image>", "<|im_end|>\n<|im_start|>assistant\n", "<|im_end|>"),
    "qwen2_vl": ("<|im_start|>user\n<|vision_start|><|image_pad|>", "<|im_end|>\n<|im_start|>assistant\n", "<|im_end|>"),
    "qwen2_5_vl": ("<|im_start|>user\n<|vision_start|><|image_pad|>", "<|im_end|>\n<|im_start|>assistant\n", "<|im_end|>"),
    "idefics3": ("<|im_start|>User:<fake_token_around_image><global-img><image>", "<end_of_utterance>\nAssistant:", "<end_of_utterance>"),
    "smolvlm": ("<|im_start|>User:<fake_token_around_image><global-img><image>", "<end_of_utterance>\nAssistant:", "<end_of_utterance>"),
    "vila": ("<|im_start|>user\n<|vision_start|><image>", "<|im_end|>\n<|im_start|>assistant\n", "<|im_end|>"),
}
VILA_CODE = Path(__file__).parent / "tiny_vila" / "modeling_tiny_vila.py"


@pytest.fixture(scope="module")
def records():
    return world.generate("attribute", 4, seed=0, split="train")


def _texts(records):
    return [r["question"] for r in records] + [a for r in records for a in r["answers"]]


def save_tiny_vila(texts, out: Path) -> Path:
    """A custom-code checkpoint: config.json's auto_map points at a modeling file in the directory."""
    from transformers import LlavaProcessor, SiglipImageProcessorPil

    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(VILA_CODE, out)
    sys.path.insert(0, str(out))
    try:
        import modeling_tiny_vila as code
    finally:
        sys.path.remove(str(out))
    tokens = {"image_token": "<image>", "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"}
    tok = tiny.tokenizer(texts, tokens, eos="<|im_end|>")
    torch.manual_seed(0)
    config = code.TinyVilaConfig(
        vision={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        text=tiny._text_config("qwen2", tok),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        auto_map={"AutoConfig": "modeling_tiny_vila.TinyVilaConfig",
                  "AutoModelForImageTextToText": "modeling_tiny_vila.TinyVilaForConditionalGeneration"})
    code.TinyVilaForConditionalGeneration(config).save_pretrained(out)
    template = families.FAMILIES["vila"].chat_template.replace("<|image_pad|>", "<image>")
    LlavaProcessor(image_processor=SiglipImageProcessorPil(size={"height": 32, "width": 32}), tokenizer=tok,
                   patch_size=8, vision_feature_select_strategy="full", chat_template=template).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def checkpoints(records, tmp_path_factory):
    """One saved tiny checkpoint per family, made on first use."""
    made = {}

    def get(family):
        if family not in made:
            out = tmp_path_factory.mktemp(family)
            made[family] = save_tiny_vila(_texts(records), out) if family == "vila" else tiny.save_tiny(family, _texts(records), out)
        return made[family]
    return get


def load(family, path):
    return loading.load(path, families.family(family), trust_remote_code=family == "vila")


@pytest.fixture(scope="module")
def loaded(checkpoints, records):
    """Per family, loaded once: a copy of the model (tuning changes it), its processor, the encoded
    records, a batch of the first two and the untuned model's logits on it."""
    made = {}

    def get(family):
        if family not in made:
            model, processor = load(family, checkpoints(family))
            data = inputs.Batched(records, processor, with_targets=True)
            batch = data[[0, 1]]
            batch.pop("labels")
            made[family] = model, processor, data, batch, _logits(model, batch)
        model, *rest = made[family]
        return copy.deepcopy(model), *rest
    return get


def _under(names, *prefixes) -> set[str]:
    return {n for n in names if any(n.startswith(p + ".") for p in prefixes)}


def _projections(names, fam, targets, weights_only=False) -> set[str]:
    """Parameters of the named projections inside the decoder blocks."""
    return {n for n in _under(names, fam.decoder_layers)
            if n.split(".")[-2] in targets and (n.endswith(".weight") or not weights_only)}


def _defined_trainable(kind, fam, model, n_layers) -> set[str]:
    """What `kind` may train, derived here from the family's layout (not from methods.py)."""
    names = [n for n, _ in model.named_parameters()]
    layers = fam.decoder_layers
    if kind in PEFT_TENSORS:  # the tuner's own tensors, on the targeted modules of the language model only
        marker, per_module = PEFT_TENSORS[kind]
        targets = set(METHODS[kind]["targets"])
        defined = {n for n in names if marker in n and f".{fam.language_model}." in n
                   and set(n.split(".")) & targets}
        assert len(defined) == n_layers * len(targets) * per_module, sorted(defined)
        return defined
    if kind == "prompt":
        return {"prompt_encoder.default.embedding.weight"}
    if kind == "adapter":  # down and up, weight and bias, per block
        defined = {n for n in _under(names, layers) if ".mlp.adapter." in n}
        assert len(defined) == n_layers * 4, sorted(defined)
        return defined
    if kind in PROJECTIONS:
        return _projections(names, fam, PROJECTIONS[kind], weights_only=kind == "sparse")
    return {"full": _under(names, layers),
            "top": _under(names, f"{layers}.{n_layers - 2}", f"{layers}.{n_layers - 1}"),
            "last": _under(names, f"{layers}.{n_layers - 1}", fam.projector),
            "projector": _under(names, fam.projector)}[kind]


def _logits(model, batch):
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize("kind", sorted(methods.METHODS))
@pytest.mark.parametrize("family", FAMILIES)
def test_every_method_trains_one_step_and_its_result_reloads(family, kind, checkpoints, loaded, tmp_path):
    assert kind in METHODS, f"method kind {kind!r} has no settings here: add them to METHODS in {__file__}"
    fam = families.family(family)
    settings = {"kind": kind, **METHODS[kind]}
    model, processor, data, batch, untuned = loaded(family)
    n_layers = families.decoder_layer_count(model, fam)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    if kind == "prompt" and not fam.images_from_embeddings:
        with pytest.raises(ValueError, match="without seeing the images"):
            methods.apply(model, fam, settings)
        return

    model, expected = methods.apply(model, fam, settings, training.losses_on(data, [[2, 3]]))
    assert methods.trainable_names(model) == expected == _defined_trainable(kind, fam, model, n_layers)
    batches = batching.Batches({"d": range(len(data))}, [batching.Phase(1, {"d": 1.0})], 2, seed=0)
    stats = training.train(model, data, batches, lr=1e-2, warmup=0, log_path=tmp_path / "log.jsonl")
    assert stats["steps"] == 1 and torch.isfinite(torch.tensor(stats["final_loss"]))
    methods.check_trainable(model, expected, kind)
    masks = getattr(model, "sparse_masks", {})
    tuned = _logits(model, batch)
    if kind == "prompt":  # the answers still see the images behind the virtual tokens
        assert not torch.allclose(_logits(model, {**batch, "pixel_values": batch["pixel_values"].flip(0)}), tuned)
    # as the tune stage saves it: the tensors it gathers (every process's shards) handed to the save
    weights.save_tuned(model, expected, tmp_path / "tuned",
                       state=full_tensors(model, weights.tensors_to_save(model, expected)))

    spec = {"family": family, "source": "hf", "path": str(checkpoints(family)), "trust_remote_code": family == "vila",
            "precision": "fp32", "attn_implementation": "auto"}
    reloaded, _ = weights.load_tuned(spec, spec["path"], tmp_path / "tuned", settings)
    base = reloaded.get_base_model() if kind == "prompt" else reloaded
    after = {n: p.detach() for n, p in base.named_parameters()}
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert set(after) - set(before) == (expected if kind == "adapter" else set())
    if kind in PEFT_TENSORS:  # merged: every targeted weight of the language model moved, nothing else
        targets = _under(_projections(before, fam, METHODS[kind]["targets"]), fam.language_model)
        target_weights = {n for n in targets if n.endswith(".weight")}
        assert target_weights <= changed <= (targets if kind == "ia3" else target_weights)  # IA3 also rescales biases
    elif kind in ("prompt", "adapter"):  # the base stays as it was; the added tensors are the tuned ones
        assert not changed
        tuned_params, reloaded_params = dict(model.named_parameters()), dict(reloaded.named_parameters())
        assert all(torch.equal(reloaded_params[n], tuned_params[n]) for n in expected)
    else:
        assert changed and changed <= expected
        for n, mask in masks.items():  # sparse: the masked entries are the base model's
            assert torch.equal(after[n][~mask], before[n][~mask]) and not torch.equal(after[n][mask], before[n][mask])
    again = _logits(reloaded, batch)
    assert torch.allclose(again, tuned, atol=1e-4)
    assert not torch.allclose(again[:, -untuned.shape[1]:], untuned, atol=1e-4)  # the tuning is in the reload


@pytest.mark.parametrize("family", FAMILIES)
def test_prompts_and_answers_use_the_familys_chat_format(family, checkpoints, records):
    model, processor = load(family, checkpoints(family))
    start, end, end_of_turn = CHAT_FORMAT[family]
    sample = inputs.Batched(records[:2], processor, with_targets=True).samples([0])[0]
    prompt = processor.tokenizer.decode(sample.input_ids[:sample.prompt_length])
    assert prompt.startswith(start) and prompt.endswith(records[0]["question"] + end)
    answer = processor.tokenizer.decode(sample.input_ids[sample.prompt_length:])
    assert answer.strip() == inputs.target_text(records[0]) + end_of_turn
    outputs = prediction.generate(model, processor, records, batch_size=3, max_new_tokens=3)
    assert len(outputs) == len(records) and all(isinstance(o, str) for o in outputs)
    # batched, left-padded generation gives what one-by-one generation gives
    assert outputs == [prediction.generate(model, processor, [r], batch_size=1, max_new_tokens=3)[0] for r in records]


def test_custom_code_checkpoints_load_only_with_the_opt_in(checkpoints):
    path = checkpoints("vila")
    with pytest.raises(loading.RemoteCodeRefused, match="trust_remote_code: true"):
        loading.load(path, families.family("vila"))
    model, _ = loading.load(path, families.family("vila"), trust_remote_code=True)
    assert type(model).__name__ == "TinyVilaForConditionalGeneration"
    assert json.loads((path / "config.json").read_text())["auto_map"]


def test_hf_models_entries_are_checked():
    config = study_config.load("config/config.yaml")
    config["models"]["vila3b"] = {"family": "vila", "source": "hf"}
    config["models"]["qwen"] = {"family": "qwen2_vl", "source": "hf", "path": "Qwen/Qwen2-VL-2B-Instruct",
                                "trust_remote_code": True}
    with pytest.raises(study_config.ConfigError, match="models.vila3b.path") as err:
        study_config.validate(config)
    assert "models.qwen.trust_remote_code" in str(err.value)


def test_a_method_a_family_cannot_run_is_refused_when_the_config_is_read():
    config = study_config.load("config/config.yaml")
    config["models"]["vila3b"] = {"family": "vila", "source": "hf", "path": "some/vila", "trust_remote_code": True}
    config["methods"]["prompt8"] = {"kind": "prompt", "virtual_tokens": 8, "lr": 1e-3}
    with pytest.raises(study_config.ConfigError, match=r"methods\.prompt8\.kind: prompt tuning .* \(model 'vila3b'\)"):
        plan.build(config)


@pytest.mark.parametrize("family", ["qwen2_vl", "idefics3"])
def test_bf16_autocast_and_gradient_checkpointing_train(family, checkpoints, records, tmp_path):
    from accelerate.state import AcceleratorState

    # accelerate fixes the precision once per process (a real run trains once); tests train many times
    AcceleratorState._reset_state(reset_partial_state=True)
    model, processor = load(family, checkpoints(family))
    model, expected = methods.apply(model, families.family(family), {"kind": "lora", **METHODS["lora"]})
    data = inputs.Batched(records, processor, with_targets=True)
    batches = batching.Batches({"d": range(len(data))}, [batching.Phase(2, {"d": 1.0})], 2, seed=0)
    stats = training.train(model, data, batches, lr=1e-2, warmup=0,
                           log_path=tmp_path / "log.jsonl", precision="bf16", gradient_checkpointing=True)
    assert model.is_gradient_checkpointing and stats["precision"] == "bf16"
    assert torch.isfinite(torch.tensor(stats["final_loss"]))
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if n in expected)  # fp32 master weights
    AcceleratorState._reset_state(reset_partial_state=True)
