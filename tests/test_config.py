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
    (lambda c: c["datasets"]["big_any"].update(metric="bleu"), "config key datasets.big_any.metric: unknown metric 'bleu'"),
    (lambda c: c["models"]["tiny_llava_ov"].update(family="vila9"), "config key models.tiny_llava_ov.family: unknown model family 'vila9'"),
    (lambda c: c.update(seeds="0"), "config key seeds: '0' is not of type 'array'"),
    (lambda c: c["downstream"].append("shapes_vqa"), "['shapes_vqa'] are in both"),
])
def test_bad_config_names_the_key(default, mutate, message):
    mutate(default)
    with pytest.raises(cfg.ConfigError) as err:
        cfg.validate(default)
    assert message in str(err.value)


def test_method_settings_override_the_shared_tuning_defaults(default):
    c = cfg.validate(default)
    c["methods"]["last"]["steps"] = 7
    settings = cfg.method_settings(c, "last")
    assert settings["steps"] == 7 and settings["batch_size"] == c["tuning"]["batch_size"]
    assert settings["train_projector"] is False
    assert "train_projector" not in cfg.method_settings(c, "lora")
