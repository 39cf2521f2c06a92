"""Study configuration: validation against the schema, cross-references, and resolved settings.

The schema catches unknown keys and wrong types; `validate` adds the checks a schema cannot make
(every name a config refers to exists), and names the offending key in every message.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from . import datasets, metrics, methods, models, world

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"
PRIMARY = {"vqa_accuracy": "accuracy", "exact_match": "accuracy", "choice_accuracy": "accuracy",
           "yesno_pairs": "accuracy", "cider": "cider"}
LAYER_KINDS = {"full", "top", "last"}


class ConfigError(ValueError):
    pass


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def validate(config: dict) -> dict:
    """Check `config`; return it with schema defaults filled in. Raises ConfigError naming the key."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        raise ConfigError("invalid config:\n" + "\n".join(f"  config key {_key(e.path)}: {e.message}" for e in errors))
    problems = []

    def known(value, registry, key, what):
        if value not in registry:
            problems.append(f"config key {key}: unknown {what} {value!r}; known: {sorted(registry)}")

    for name, model in config["models"].items():
        known(model["family"], models.FAMILIES, f"models.{name}.family", "model family")
        if model["source"] == "hf" and "path" not in model:
            problems.append(f"config key models.{name}.path: required for an hf model (an HF id or a local directory)")
        fam = models.FAMILIES.get(model["family"])
        if model.get("trust_remote_code") and fam and not fam.remote_code:
            problems.append(f"config key models.{name}.trust_remote_code: family {model['family']!r} is native to "
                            "transformers and runs no checkpoint code; leave it off")
        if model["source"] == "embedded":
            for field in ("architecture", "pretrain"):
                if field not in model:
                    problems.append(f"config key models.{name}.{field}: required for an embedded model")
            for i, phase in enumerate(model.get("pretrain", {}).get("curriculum", [])):
                for d in phase["datasets"]:
                    if d not in config["upstream"]:
                        problems.append(f"config key models.{name}.pretrain.curriculum.{i}.datasets: "
                                        f"{d!r} is not an upstream dataset")
    for name, entry in config["datasets"].items():
        known(entry["source"], datasets.SOURCES, f"datasets.{name}.source", "dataset source")
        known(entry["metric"], metrics.METRICS, f"datasets.{name}.metric", "metric")
        if entry["source"] == "synthetic":
            for field in ("task", "train_images", "test_images"):
                if field not in entry:
                    problems.append(f"config key datasets.{name}.{field}: required for a synthetic dataset")
            if "task" in entry:
                known(entry["task"], world.TASKS, f"datasets.{name}.task", "synthetic task")
    for role in ("upstream", "downstream"):
        for i, name in enumerate(config[role]):
            known(name, config["datasets"], f"{role}.{i}", "dataset")
    overlap = set(config["upstream"]) & set(config["downstream"])
    if overlap:
        problems.append(f"config keys upstream/downstream: {sorted(overlap)} are in both")
    for name, entry in config["methods"].items():
        known(entry["kind"], methods.METHODS, f"methods.{name}.kind", "method kind")
    if problems:
        raise ConfigError("invalid config:\n" + "\n".join(f"  {p}" for p in problems))
    config.setdefault("data_seed", 0)
    config.setdefault("layer_methods_train_projector", False)
    config.setdefault("aggregation", {}).setdefault("o", "sum")
    return config


def load(path: str | Path) -> dict:
    return validate(yaml.safe_load(Path(path).read_text()))


def method_settings(config: dict, method: str) -> dict:
    """Everything that defines one method's tuning runs: the shared defaults overridden by its entry."""
    entry = config["methods"][method]
    settings = {**config["tuning"], **entry}
    if entry["kind"] in LAYER_KINDS:
        settings.setdefault("train_projector", config["layer_methods_train_projector"])
    return settings


def primary_metric(config: dict, dataset: str) -> str:
    entry = config["datasets"][dataset]
    return entry.get("primary", PRIMARY[entry["metric"]])


def eval_sets(config: dict, method: str, dataset: str) -> list[str]:
    """What a run is evaluated on: the zero-shot base on every set, a tuned model on its own
    downstream set and every upstream set."""
    if method == "zeroshot":
        return list(config["downstream"]) + list(config["upstream"])
    return [dataset] + list(config["upstream"])
