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


SWEEP = "@"  # an expanded sweep's method name: <entry>@<value>
PREDICTION_KEYS = {"wise_alpha"}  # applied when predicting: methods differing only here share one tuning run


def expand_sweeps(config: dict, schema: dict) -> None:
    """A method entry may give a list for one scalar setting (e.g. `ratio: [0.01, 0.05]`): it becomes
    one method per value, named <entry>@<value>, in place. Keys that are lists anyway (targets)
    are not sweeps."""
    listed = {k for k, v in schema["$defs"]["tuning"]["properties"].items() if v.get("type") == "array"}
    expanded = {}
    for name, entry in config.get("methods", {}).items():
        swept = [k for k, v in entry.items() if isinstance(v, list) and k not in listed]
        if len(swept) > 1:
            raise ConfigError(f"invalid config:\n  config key methods.{name}: sweeps {swept}; sweep one key per "
                              f"method entry (write one entry per sweep)")
        values = entry[swept[0]] if swept else [None]
        if swept and not values:
            raise ConfigError(f"invalid config:\n  config key methods.{name}.{swept[0]}: an empty sweep")
        for value in values:
            new = f"{name}{SWEEP}{value}" if swept else name
            if new in expanded:
                raise ConfigError(f"invalid config:\n  config key methods.{name}: method {new!r} is defined twice")
            expanded[new] = {**entry, swept[0]: value} if swept else entry
    config["methods"] = expanded


def sweep_entry(method: str) -> str:
    """The config entry a method comes from (itself, unless it was expanded from a sweep)."""
    return method.partition(SWEEP)[0]


def validate(config: dict) -> dict:
    """Check `config`; return it with schema defaults filled in and sweeps expanded (in place).
    Raises ConfigError naming the key."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    expand_sweeps(config, schema)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        raise ConfigError("invalid config:\n" + "\n".join(f"  config key {_key(e.path)}: {e.message}" for e in errors))
    config.setdefault("data_seed", 0)
    config.setdefault("layer_methods_train_projector", False)
    config.setdefault("aggregation", {}).setdefault("o", "sum")
    problems = []

    def known(value, registry, key, what):
        if value not in registry:
            problems.append(f"config key {key}: unknown {what} {value!r}; known: {sorted(registry)}")

    for name, model in config["models"].items():
        known(model["family"], models.FAMILIES, f"models.{name}.family", "model family")
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
    for name in config["methods"]:
        problems += [f"config key methods.{name}.{p}" for p in methods.settings_problems(method_settings(config, name))]
    if problems:
        raise ConfigError("invalid config:\n" + "\n".join(f"  {p}" for p in problems))
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


def training_settings(config: dict, method: str) -> dict:
    return {k: v for k, v in method_settings(config, method).items() if k not in PREDICTION_KEYS}


def tune_method(config: dict, method: str) -> str:
    """The method whose tuning run `method` reuses: the first one in config order with the same
    training settings (so each WiSE-FT alpha predicts from one run)."""
    mine = training_settings(config, method)
    return next(m for m in config["methods"] if training_settings(config, m) == mine)


def tuned_methods(config: dict) -> list[str]:
    """The methods that own a tuning run."""
    return [m for m in config["methods"] if tune_method(config, m) == m]


def primary_metric(config: dict, dataset: str) -> str:
    entry = config["datasets"][dataset]
    return entry.get("primary", PRIMARY[entry["metric"]])


def eval_sets(config: dict, method: str, dataset: str) -> list[str]:
    """What a run is evaluated on: the zero-shot base on every set, a tuned model on its own
    downstream set and every upstream set."""
    if method == "zeroshot":
        return list(config["downstream"]) + list(config["upstream"])
    return [dataset] + list(config["upstream"])
