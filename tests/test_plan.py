"""The config (schema, names) and the resolved plan built from it: settings with every default
filled in, run sharing per model, each rule's slice, and the errors that name the key."""

import copy
from pathlib import Path

import pytest
import yaml

from tunebench import config as cfg
from tunebench import plan as study_plan
from tunebench.methods import registry as methods

ROOT = Path(__file__).resolve().parent.parent
MODEL = "tiny_llava_ov"


@pytest.fixture
def default():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.fixture
def paper():
    return yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())


def build(config) -> study_plan.Plan:
    return study_plan.build(copy.deepcopy(config))


def test_schema_defaults_are_filled_in_by_validation(default):
    c = cfg.validate(copy.deepcopy(default))
    assert c["aggregation"]["o"] == "sum" and c["checkpoint_every"] == 50 and c["data_seed"] == 0
    assert c["aggregation"] | {"o": None} == {"o": None, "ci": 0.95, "resamples": 2000, "resample_seed": 0,
                                             "normalise": "none"}
    assert c["models"][MODEL]["precision"] == "fp32" and c["datasets"]["big_colour"]["scale"] == 1
    assert c["tuning"]["weight_decay"] == 0 and c["tuning"]["group_by_length"] == 0
    # a method's entry gets no schema defaults of its own: they would hide the shared tuning block's
    assert "warmup" not in c["methods"]["lora"]


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c.update(unknown_key=1), "config key <top level>: Additional properties are not allowed ('unknown_key'"),
    (lambda c: c["methods"]["lora"].update(lr="fast"), "config key methods.lora.lr: 'fast' is not of type 'number'"),
    (lambda c: c["methods"]["lora"].update(rank=8), "config key methods.lora: Additional properties are not allowed ('rank'"),
    (lambda c: c["methods"]["lora"].update(kind="lorax"), "config key methods.lora.kind: 'lorax' is not one of ['adapter'"),
    (lambda c: c["methods"]["full"].update(r=8), "config key methods.full.r: not a setting of kind 'full'"),
    (lambda c: c["upstream"].append("vqa_v9"), "config key upstream.4: unknown dataset 'vqa_v9'"),
    (lambda c: c["datasets"]["more_than_two"].update(metric="bleu"), "config key datasets.more_than_two.metric: unknown metric 'bleu'"),
    (lambda c: c["datasets"]["big_colour"].update(primary="f1"), "config key datasets.big_colour.primary: metric 'exact_match' reports no 'f1'"),
    (lambda c: c["models"][MODEL].update(family="vila9"), "config key models.tiny_llava_ov.family: unknown model family 'vila9'"),
    (lambda c: c.update(seeds="0"), "config key seeds: '0' is not of type 'array'"),
    (lambda c: c["downstream"].append("shapes_vqa"), "['shapes_vqa'] are in both"),
    (lambda c: c["tuning"].pop("batch_size"), "config key methods.lora: no batch_size for model 'tiny_llava_ov'"),
])
def test_bad_config_names_the_key(default, mutate, message):
    mutate(default)
    with pytest.raises(cfg.ConfigError) as err:
        build(default)
    assert message in str(err.value)


def test_the_paper_grid_resolves_per_model_learning_rates(paper):
    p = build(paper)
    assert len(p.downstream) == 6 and len(p.upstream) == 6
    assert set(p.methods) == {"lora", "dora", "full", "top", "last"}
    # LLaVA 1e-5 everywhere; VILA 1e-4, but Full-ST 1e-5 (REFERENCE.md section 1).
    assert {m: p.settings[("llava_ov_7b", m)]["lr"] for m in p.methods} == dict.fromkeys(p.methods, 1e-5)
    assert p.settings[("vila_3b", "lora")]["lr"] == 1e-4 and p.settings[("vila_3b", "full")]["lr"] == 1e-5
    assert p.settings[("vila_3b", "top")]["epochs"] == 3 and p.settings[("vila_3b", "top")]["k"] == 2
    assert p.cell_job("vila_3b", "full", "scienceqa")["settings"]["lr"] == 1e-5  # what the cell records
    assert p.cell_job("llava_ov_7b", "lora", "scienceqa")["scale"]["mme"] * 2800 == pytest.approx(100.0)
    assert p.primary("mme") == "total"


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c["datasets"]["scienceqa"].pop("train"), "config key datasets.scienceqa.train: required"),
    (lambda c: c["datasets"]["mme"].pop("test"), "config key datasets.mme.test: required"),
    (lambda c: c["datasets"]["gqa"].update(format="gqa2"), "config key datasets.gqa.format: unknown dataset format 'gqa2'"),
    (lambda c: c["datasets"]["pathvqa"].pop("format"), "config key datasets.pathvqa.format: required for source 'hf'"),
    (lambda c: c["datasets"]["chd"].pop("task_type"), "config key datasets.chd.task_type: required for source 'local'"),
    (lambda c: c["datasets"]["chd"]["test"].update(source="s3"), "config key datasets.chd.test.source: 's3' is not one of"),
    (lambda c: c["datasets"]["okvqa"].update(source="hf"), "config key datasets.okvqa.source: 'synthetic' was expected"),
    (lambda c: c["tuning"].pop("epochs"), "config key methods.lora: no steps or epochs for model 'llava_ov_7b'"),
    (lambda c: c["models"]["vila_3b"]["methods"].update(fulll={"lr": 1.0}), "config key models.vila_3b.methods: unknown method 'fulll'"),
    # replay reads the upstream train splits, which then need a source
    (lambda c: c["tuning"].update(replay=0.1), "config key datasets.okvqa.train: required"),
])
def test_bad_dataset_entries_name_the_key(paper, mutate, message):
    mutate(paper)
    with pytest.raises(cfg.ConfigError) as err:
        build(paper)
    assert message in str(err.value)


def test_method_settings_layer_registry_defaults_shared_tuning_entry_and_model(default):
    default["tuning"]["r"] = 32  # a kind's own setting in the shared block applies to that kind alone
    default["models"][MODEL]["methods"] = {"last": {"lr": 5e-3}}
    p = build(default)
    last, lora = p.settings[(MODEL, "last")], p.settings[(MODEL, "lora")]
    assert last["lr"] == 5e-3 and last["batch_size"] == default["tuning"]["batch_size"]
    assert last["train_projector"] is False and "r" not in last  # the study-wide layer_methods_train_projector
    assert lora["r"] == 8 and lora["dropout"] == 0.0  # the entry's r; dropout from the registry
    assert p.settings[(MODEL, "top")]["k"] == 2 and p.settings[(MODEL, "full")]["weight_decay"] == 0
    assert p.tune_job(MODEL, "last", "big_colour", 0)["settings"] == last
    assert p.saves(MODEL, "lora") == "adapter" and p.saves(MODEL, "last") == "tensors"


def test_a_sweep_line_expands_into_one_method_per_value(default):
    default["methods"] = {"lora": {"kind": "lora", "lr": 1e-2},
                          "sparse_grad": {"kind": "sparse", "mask": "gradient", "lr": 1e-3, "ratio": [0.01, 0.05]},
                          "lora_wise": {"kind": "lora", "lr": 1e-2, "wise_alpha": [0.25, 0.5]}}
    p = build(default)
    assert p.methods == ["lora", "sparse_grad@0.01", "sparse_grad@0.05", "lora_wise@0.25", "lora_wise@0.5"]
    assert p.settings[(MODEL, "sparse_grad@0.05")]["ratio"] == 0.05
    assert p.settings[(MODEL, "lora_wise@0.5")]["wise_alpha"] == 0.5
    # WiSE-FT alphas predict from lora's run; each ratio is its own run.
    assert {m: p.run_of[(MODEL, m)] for m in p.methods} == {
        "lora": "lora", "sparse_grad@0.01": "sparse_grad@0.01", "sparse_grad@0.05": "sparse_grad@0.05",
        "lora_wise@0.25": "lora", "lora_wise@0.5": "lora"}
    assert p.runs("adapter") == ["lora"] and p.runs("tensors") == ["sparse_grad@0.01", "sparse_grad@0.05"]
    assert cfg.validate(copy.deepcopy(p.config))["methods"] == p.config["methods"]  # validating again changes nothing


def test_run_sharing_is_decided_per_model(default):
    """A WiSE-FT entry shares a run only where the model gives both methods the same training settings."""
    default["models"]["other"] = {**default["models"][MODEL], "methods": {"last": {"lr": 5e-3}}}
    default["methods"]["last_wise"] = {"kind": "last", "lr": 2.0e-3, "wise_alpha": 0.5}
    p = build(default)
    assert p.run_of[(MODEL, "last_wise")] == "last"
    assert p.run_of[("other", "last_wise")] == "last_wise"  # other's last trains at 5e-3, last_wise at 2e-3
    assert p.run_dir("other", "last_wise", "big_colour", 0).endswith("tune/other/last_wise/big_colour/seed0")
    assert "last_wise" in p.runs("tensors")


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
        build(default)
    assert message in str(err.value)


def test_every_registered_method_kind_declares_how_it_saves_and_its_settings_schema():
    schema = cfg.schema()["$defs"]["tuning"]["properties"]
    for kind, method in methods.METHODS.items():
        assert method.saves in ("adapter", "tensors"), kind
        assert set(method.settings) <= set(schema), kind
    assert schema["kind"]["enum"] == sorted(methods.METHODS)


def test_slices_hold_only_what_shapes_each_stage(default):
    p = build(default)
    prepare = p.prepare_job("big_colour", "test")
    assert set(prepare["entry"]) == {"source", "task", "train_images", "test_images", "skip_bad_rows",
                                     "max_image_pixels"}
    assert set(p.score_job(["big_colour"])["big_colour"]) == {"metric", "primary", "protocol", "format", "resamples",
                                                              "resample_seed"}
    cell = p.cell_job(MODEL, "lora", "big_colour")
    assert (cell["ci"], cell["resample_seed"], cell["normalise"]) == (0.95, 0, "none")
    assert cell["full_scale"] == {"big_colour": 100.0, "shapes_vqa": 100.0, "shapes_yesno": 100.0,
                                  "shapes_choice": 100.0, "shapes_caption": 1000.0}  # the cell's sets
    assert p.predict_job(MODEL, study_plan.ZEROSHOT, "big_colour")["max_new_tokens"] == {"big_colour": None}
    # What loading a tuned model reads of its method: not what only shaped its tuned weights (lr, steps).
    assert p.predict_job(MODEL, "lora", "big_colour")["method"] == {
        "kind": "lora", "r": 8, "alpha": 16, "dropout": 0.0, "targets": ["q_proj", "v_proj"]}


def test_a_methods_replay_fraction_is_honoured_in_its_batches(default):
    from tunebench.stages import tune as tune_stage
    from tunebench.train import batches as batching

    default["methods"]["lora_replay"] = {"kind": "lora", "lr": 1e-2, "replay": 0.3}
    p = build(default)
    mix = tune_stage.tuning_mix(p.settings[(MODEL, "lora_replay")], "big_any")
    assert mix == {"big_any": 0.7, "replay": 0.3}
    assert tune_stage.tuning_mix({"replay": 0}, "big_any") == {"big_any": 1.0}
    batches = batching.Batches({"big_any": range(0, 100), "replay": range(100, 200)}, [batching.Phase(5, mix)], 30, 0)
    assert all(sum(i >= 100 for i in batch) == 9 for batch in batches)


def test_config_files_merge_as_snakemake_merges_them():
    p = study_plan.load(ROOT / "config" / "config.yaml", ROOT / "config" / "beyond.yaml")
    assert {"lora", "full", "pissa", "sparse_grad@0.01", "full_wise@0.25"} <= set(p.methods)
    assert p.run_of[(MODEL, "full_wise@0.5")] == "full"


def test_a_target_read_as_a_config_file_is_named(tmp_path):
    cell = tmp_path / "results" / "cells" / "m" / "lora" / "d.json"
    cell.parent.mkdir(parents=True)
    cell.write_text('{"model": "m", "method": "lora", "seeds": {}}')
    cfg.check_config_files([str(ROOT / "config" / "config.yaml")])
    with pytest.raises(cfg.ConfigError) as err:
        cfg.check_config_files([str(ROOT / "config" / "config.yaml"), str(cell)])
    assert f"{cell} is not a tunebench config file" in str(err.value) and "--configfile=FILE" in str(err.value)


def test_normalising_by_full_scale_needs_every_set_to_have_one(default):
    config = copy.deepcopy(default)
    config["aggregation"] = {"normalise": "range"}
    assert build(config).cell_job(MODEL, "lora", "big_colour")["normalise"] == "range"
    config["datasets"]["more_than_two"]["primary"] = "score_total"  # a sum over however many categories
    with pytest.raises(cfg.ConfigError, match="datasets.more_than_two.primary: 'score_total' has no fixed full scale"):
        build(config)
