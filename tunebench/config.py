"""Study configuration: validation against the schema, cross-references, and resolved settings.

The schema catches unknown keys and wrong types; `validate` adds the checks a schema cannot make
(every name a config refers to exists), and names the offending key in every message.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from .data import formats, sources, world
from .evaluation import metrics
from .methods import registry as methods
from .models import families

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"
PRIMARY = {"vqa_accuracy": "accuracy", "exact_match": "accuracy", "choice_accuracy": "accuracy",
           "yesno_pairs": "accuracy", "cider": "cider", "mme": "total", "pathvqa": "accuracy"}
LAYER_KINDS = {"full", "top", "last"}


class ConfigError(ValueError):
    pass


def unknown(value, registry, key: str, what: str) -> list[str]:
    """The problem with `value` if it is not in `registry`, naming the config key."""
    return [] if value in registry else [f"config key {key}: unknown {what} {value!r}; known: {sorted(registry)}"]


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
    config.setdefault("checkpoint_every", 50)
    config.setdefault("keep_tuned_weights", True)
    problems = []

    def known(value, registry, key, what):
        problems.extend(unknown(value, registry, key, what))

    for name, model in config["models"].items():
        known(model["family"], families.FAMILIES, f"models.{name}.family", "model family")
        if model["source"] == "hf" and "path" not in model:
            problems.append(f"config key models.{name}.path: required for an hf model (an HF id or a local directory)")
        fam = families.FAMILIES.get(model["family"])
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
    replay = any(method_settings(config, m, model).get("replay", 0) > 0 for m in config["methods"]
                 for model in config["models"])
    for name, entry in config["datasets"].items():
        # Train splits are read for tuning (downstream) and for replay (upstream).
        needs_train = name in config["downstream"] or replay
        problems += dataset_problems(name, entry, needs_train)
    for role in ("upstream", "downstream"):
        for i, name in enumerate(config[role]):
            known(name, config["datasets"], f"{role}.{i}", "dataset")
    overlap = set(config["upstream"]) & set(config["downstream"])
    if overlap:
        problems.append(f"config keys upstream/downstream: {sorted(overlap)} are in both")
    for name, entry in config["methods"].items():
        known(entry["kind"], methods.METHODS, f"methods.{name}.kind", "method kind")
        for model in config["models"]:
            settings = method_settings(config, name, model)
            if "steps" not in settings and "epochs" not in settings:
                problems.append(f"config key methods.{name}: neither steps nor epochs set (for model {model!r})")
            problems += [f"config key methods.{name}.{p}" for p in methods.settings_problems(settings)]
            fam = families.FAMILIES.get(config["models"][model]["family"])
            if fam:
                problems += [f"config key methods.{name}.{p} (model {model!r})"
                             for p in methods.family_problems(settings, fam)]
    for model_name, model in config["models"].items():
        for method in model.get("methods", {}):
            known(method, config["methods"], f"models.{model_name}.methods", "method")
    if problems:
        raise ConfigError("invalid config:\n" + "\n".join(f"  {p}" for p in problems))
    return config


def load(path: str | Path) -> dict:
    return validate(yaml.safe_load(Path(path).read_text()))


def dataset_problems(name: str, entry: dict, needs_train: bool = True) -> list[str]:
    """What is wrong with one dataset entry: unknown names, missing per-source keys."""
    problems = []
    key = f"config key datasets.{name}"
    problems += unknown(entry["metric"], metrics.METRICS, f"datasets.{name}.metric", "metric")
    if "format" in entry:
        problems += unknown(entry["format"], formats.FORMATS, f"datasets.{name}.format", "dataset format")
    if entry.get("source") == "synthetic":
        for field in ("task", "train_images", "test_images"):
            if field not in entry:
                problems.append(f"{key}.{field}: required for a synthetic dataset")
        if "task" in entry:
            problems += unknown(entry["task"], world.TASKS, f"datasets.{name}.task", "synthetic task")
        return problems
    if "source" in entry:
        return problems + [f"{key}.source: {entry['source']!r} is not a whole-dataset source; "
                           f"give train: and test: sources ({sorted(sources.SOURCES)})"]
    for split in sources.SPLITS:
        spec = entry.get(split)
        if spec is None:
            if split == "test" or needs_train:
                problems.append(f"{key}.{split}: required (the source of the {split} split)")
        elif spec["source"] not in sources.SOURCES or spec["source"] == "synthetic":
            problems.append(f"{key}.{split}.source: unknown source {spec['source']!r}; "
                            f"known: {sorted(set(sources.SOURCES) - {'synthetic'})}")
        elif spec["source"] in ("hf", "hf_disk") and "format" not in entry:
            problems.append(f"{key}.format: required for source {spec['source']!r} (how its rows convert)")
        elif spec["source"] in ("llava", "local") and "format" not in entry and "task_type" not in entry:
            problems.append(f"{key}.task_type: required for source {spec['source']!r} without a format")
    return problems


def method_settings(config: dict, method: str, model: str | None = None) -> dict:
    """Everything that defines one method's tuning runs: the shared defaults, overridden by the
    method's entry, then by the model's `tuning` and its `methods.<method>` (per-model lr)."""
    entry = config["methods"][method]
    settings = {**config["tuning"], **entry}
    if model is not None:
        spec = config["models"][model]
        settings.update({**spec.get("tuning", {}), **spec.get("methods", {}).get(method, {})})
    if entry["kind"] in LAYER_KINDS:
        settings.setdefault("train_projector", config["layer_methods_train_projector"])
    return settings


def training_settings(config: dict, method: str, model: str | None = None) -> dict:
    return {k: v for k, v in method_settings(config, method, model).items() if k not in PREDICTION_KEYS}


def tune_method(config: dict, method: str) -> str:
    """The method whose tuning run `method` reuses: the first one in config order with the same
    training settings (so each WiSE-FT alpha predicts from one run)."""
    mine = training_settings(config, method)
    return next(m for m in config["methods"] if training_settings(config, m) == mine)


def primary_metric(config: dict, dataset: str) -> str:
    entry = config["datasets"][dataset]
    return entry.get("primary", PRIMARY[entry["metric"]])


def scale(config: dict, dataset: str) -> float:
    """The factor a dataset's primary score is multiplied by before it enters E, F and O."""
    return float(config["datasets"][dataset].get("scale", 1.0))


def eval_sets(config: dict, method: str, dataset: str) -> list[str]:
    """What a run is evaluated on: a zero-shot run (the base model) on the one set it is named
    after, a tuned model on its own downstream set and every upstream set."""
    if method == "zeroshot":
        return [dataset]
    return [dataset] + list(config["upstream"])
