import copy
from pathlib import Path

import pytest
import yaml

from tunebench import config as cfg

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def default():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_the_default_config_is_valid(default):
    assert cfg.validate(copy.deepcopy(default))["aggregation"]["o"] == "sum"


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c.update(unknown_key=1), "config key <top level>: Additional properties are not allowed ('unknown_key'"),
    (lambda c: c["methods"]["lora"].update(lr="fast"), "config key methods.lora.lr: 'fast' is not of type 'number'"),
    (lambda c: c["methods"]["lora"].update(rank=8), "config key methods.lora: Additional properties are not allowed ('rank'"),
    (lambda c: c["methods"]["lora"].update(kind="lorax"), "config key methods.lora.kind: unknown method kind 'lorax'"),
    (lambda c: c["upstream"].append("vqa_v9"), "config key upstream.4: unknown dataset 'vqa_v9'"),
    (lambda c: c["datasets"]["more_than_two"].update(metric="bleu"), "config key datasets.more_than_two.metric: unknown metric 'bleu'"),
    (lambda c: c["models"]["tiny_llava_ov"].update(family="vila9"), "config key models.tiny_llava_ov.family: unknown model family 'vila9'"),
    (lambda c: c.update(seeds="0"), "config key seeds: '0' is not of type 'array'"),
    (lambda c: c["downstream"].append("shapes_vqa"), "['shapes_vqa'] are in both"),
])
def test_bad_config_names_the_key(default, mutate, message):
    mutate(default)
    with pytest.raises(cfg.ConfigError) as err:
        cfg.validate(default)
    assert message in str(err.value)


def test_the_paper_config_is_valid_with_per_model_learning_rates():
    c = cfg.load(ROOT / "config" / "paper.yaml")
    assert len(c["downstream"]) == 6 and len(c["upstream"]) == 6
    assert set(c["methods"]) == {"lora", "dora", "full", "top", "last"}
    # LLaVA 1e-5 everywhere; VILA 1e-4, but Full-ST 1e-5 (REFERENCE.md section 1).
    assert {m: cfg.method_settings(c, m, "llava_ov_7b")["lr"] for m in c["methods"]} == dict.fromkeys(c["methods"], 1e-5)
    assert cfg.method_settings(c, "lora", "vila_3b")["lr"] == 1e-4
    assert cfg.method_settings(c, "full", "vila_3b")["lr"] == 1e-5
    assert cfg.method_settings(c, "top", "vila_3b")["epochs"] == 3 and cfg.method_settings(c, "top", "vila_3b")["k"] == 2
    assert cfg.scale(c, "mme") * 2800 == pytest.approx(100.0) and cfg.primary_metric(c, "mme") == "total"


@pytest.fixture
def paper():
    return yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c["datasets"]["scienceqa"].pop("train"), "config key datasets.scienceqa.train: required"),
    (lambda c: c["datasets"]["mme"].pop("test"), "config key datasets.mme.test: required"),
    (lambda c: c["datasets"]["gqa"].update(format="gqa2"), "config key datasets.gqa.format: unknown dataset format 'gqa2'"),
    (lambda c: c["datasets"]["pathvqa"].pop("format"), "config key datasets.pathvqa.format: required for source 'hf'"),
    (lambda c: c["datasets"]["chd"].pop("task_type"), "config key datasets.chd.task_type: required for source 'local'"),
    (lambda c: c["datasets"]["chd"]["test"].update(source="s3"), "config key datasets.chd.test.source: 's3' is not one of"),
    (lambda c: c["datasets"]["okvqa"].update(source="hf"), "config key datasets.okvqa.source: 'synthetic' was expected"),
    (lambda c: c["tuning"].pop("epochs"), "config key methods.lora: neither steps nor epochs set"),
    (lambda c: c["models"]["vila_3b"]["methods"].update(fulll={"lr": 1.0}), "config key models.vila_3b.methods: unknown method 'fulll'"),
    # replay reads the upstream train splits, which then need a source
    (lambda c: c["tuning"].update(replay=0.1), "config key datasets.okvqa.train: required"),
])
def test_bad_dataset_entries_name_the_key(paper, mutate, message):
    mutate(paper)
    with pytest.raises(cfg.ConfigError) as err:
        cfg.validate(paper)
    assert message in str(err.value)


def test_method_settings_override_the_shared_tuning_defaults(default):
    c = cfg.validate(default)
    c["methods"]["last"]["steps"] = 7
    settings = cfg.method_settings(c, "last")
    assert settings["steps"] == 7 and settings["batch_size"] == c["tuning"]["batch_size"]
    assert settings["train_projector"] is False
    assert "train_projector" not in cfg.method_settings(c, "lora")


def test_a_sweep_line_expands_into_one_method_per_value(default):
    default["methods"] = {"lora": {"kind": "lora", "lr": 1e-2},
                          "sparse_grad": {"kind": "sparse", "mask": "gradient", "lr": 1e-3, "ratio": [0.01, 0.05]},
                          "lora_wise": {"kind": "lora", "lr": 1e-2, "wise_alpha": [0.25, 0.5]}}
    c = cfg.validate(default)
    assert list(c["methods"]) == ["lora", "sparse_grad@0.01", "sparse_grad@0.05", "lora_wise@0.25", "lora_wise@0.5"]
    assert cfg.method_settings(c, "sparse_grad@0.05")["ratio"] == 0.05
    assert cfg.method_settings(c, "lora_wise@0.5")["wise_alpha"] == 0.5
    # WiSE-FT alphas predict from lora's run; each ratio is its own run.
    assert {m: cfg.tune_method(c, m) for m in c["methods"]} == {
        "lora": "lora", "sparse_grad@0.01": "sparse_grad@0.01", "sparse_grad@0.05": "sparse_grad@0.05",
        "lora_wise@0.25": "lora", "lora_wise@0.5": "lora"}
    assert [m for m in c["methods"] if cfg.tune_method(c, m) == m] == ["lora", "sparse_grad@0.01", "sparse_grad@0.05"]
    assert cfg.validate(c)["methods"] == c["methods"]  # validating again changes nothing


@pytest.mark.parametrize("entry,message", [
    ({"kind": "sparse", "ratio": [0.1, 0.2], "lr": [1e-3, 1e-2]}, "sweep one key per method entry"),
    ({"kind": "sparse", "lr": 1e-3, "ratio": []}, "methods.m.ratio: an empty sweep"),
    ({"kind": "sparse", "lr": 1e-3}, "methods.m.ratio: required for a sparse method"),
    ({"kind": "sparse", "lr": 1e-3, "ratio": 0.1, "weight_decay": 0.1}, "methods.m.weight_decay: must be 0"),
    ({"kind": "prompt", "lr": 1e-3, "wise_alpha": 0.5}, "methods.m.wise_alpha: WiSE-FT needs"),
    ({"kind": "sparse", "lr": 1e-3, "ratio": [0.1, 2]}, "methods.m@2.ratio: 2 is greater than the maximum"),
])
def test_bad_method_settings_name_the_key(default, entry, message):
    default["methods"] = {"m": entry}
    with pytest.raises(cfg.ConfigError) as err:
        cfg.validate(default)
    assert message in str(err.value)


def test_a_methods_replay_fraction_is_honoured_in_its_batches(default):
    from tunebench.stages import tune as tune_stage
    from tunebench.train import batches as batching

    default["methods"]["lora_replay"] = {"kind": "lora", "lr": 1e-2, "replay": 0.3}
    c = cfg.validate(default)
    mix = tune_stage.tuning_mix(cfg.method_settings(c, "lora_replay"), "big_any")
    assert mix == {"big_any": 0.7, "replay": 0.3}
    assert tune_stage.tuning_mix({"replay": 0}, "big_any") == {"big_any": 1.0}
    batches = batching.Batches({"big_any": range(0, 100), "replay": range(100, 200)}, [batching.Phase(5, mix)], 30, 0)
    assert all(sum(i >= 100 for i in batch) == 9 for batch in batches)
