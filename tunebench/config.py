"""Study configuration: the schema (with its defaults filled in), method sweeps, and every name a
config refers to. `tunebench.plan` builds the resolved plan from what this returns.

The schema catches unknown keys and wrong types; `validate` adds the checks a schema cannot make
(every name a config refers to exists, every number finite), and names the offending key in every
message. Config files are read strictly: a key given twice in one mapping is refused (YAML would keep
the last one silently).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import jsonschema
import yaml

from .data import formats, sources, world
from .evaluation import metrics
from .methods import registry as methods
from .models import families

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"
SWEEP = "@"  # an expanded sweep's method name: <entry>@<value>


class ConfigError(ValueError):
    pass


def schema() -> dict:
    """The config schema, with each method kind's settings and the kinds themselves from the registry."""
    loaded = yaml.safe_load(SCHEMA_PATH.read_text())
    loaded["$defs"]["tuning"]["properties"].update(methods.setting_schemas())
    loaded["$defs"]["tuning"]["properties"]["kind"] = {"enum": sorted(methods.METHODS)}
    return loaded


def _filling_defaults(validator_class):
    """A validator that also writes each property's schema default into the instance (the recipe
    from the jsonschema FAQ): defaults live in the schema alone."""
    check_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, props, instance, schema_node):
        if isinstance(instance, dict):
            for name, sub in props.items():
                if "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))  # never the schema's own object
        yield from check_properties(validator, props, instance, schema_node)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


Validator = _filling_defaults(jsonschema.Draft202012Validator)


def unknown(value, registry, key: str, what: str) -> list[str]:
    """The problem with `value` if it is not in `registry`, naming the config key."""
    return [] if value in registry else [f"config key {key}: unknown {what} {value!r}; known: {sorted(registry)}"]


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def fail(problems: list[str]) -> None:
    if problems:
        raise ConfigError("invalid config:\n" + "\n".join(f"  {p}" for p in problems))


def expand_sweeps(config: dict, listed: set[str]) -> None:
    """A method entry may give a list for one scalar setting (e.g. `ratio: [0.01, 0.05]`): it becomes
    one method per value, named <entry>@<value>, in place. Keys that are lists anyway (`listed`:
    targets) are not sweeps."""
    expanded = {}
    for name, entry in config.get("methods", {}).items():
        swept = [k for k, v in entry.items() if isinstance(v, list) and k not in listed]
        if len(swept) > 1:
            fail([f"config key methods.{name}: sweeps {swept}; sweep one key per method entry "
                  f"(write one entry per sweep)"])
        values = entry[swept[0]] if swept else [None]
        if swept and not values:
            fail([f"config key methods.{name}.{swept[0]}: an empty sweep"])
        for value in values:
            new = f"{name}{SWEEP}{value}" if swept else name
            if new in expanded:
                fail([f"config key methods.{name}: method {new!r} is defined twice"])
            expanded[new] = {**entry, swept[0]: value} if swept else entry
    config["methods"] = expanded


def sweep_entry(method: str) -> str:
    """The config entry a method comes from (itself, unless it was expanded from a sweep)."""
    return method.partition(SWEEP)[0]


def non_finite(value, path: tuple = ()) -> list[str]:
    """Every NaN or infinity in a config: YAML reads .nan and .inf as numbers, and no range in the
    schema refuses NaN (every comparison with it is false)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [f"config key {_key(path)}: {value} is not a finite number"]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in non_finite(item, (*path, key))]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in non_finite(item, (*path, i))]
    return []


def validate(config: dict) -> dict:
    """Check `config`; return it with schema defaults filled in and sweeps expanded (in place).
    Raises ConfigError naming the key."""
    fail(non_finite(config))
    spec = schema()
    expand_sweeps(config, {k for k, v in spec["$defs"]["tuning"]["properties"].items() if v.get("type") == "array"})
    errors = sorted(Validator(spec).iter_errors(config), key=lambda e: list(e.path))
    fail([f"config key {_key(e.path)}: {e.message}" for e in errors])
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
        for method in model.get("methods", {}):
            known(method, config["methods"], f"models.{name}.methods", "method")
    for role in ("upstream", "downstream"):
        for i, name in enumerate(config[role]):
            known(name, config["datasets"], f"{role}.{i}", "dataset")
    overlap = set(config["upstream"]) & set(config["downstream"])
    if overlap:
        problems.append(f"config keys upstream/downstream: {sorted(overlap)} are in both")
    for name, entry in config["datasets"].items():
        problems += dataset_problems(name, entry)
    for name, entry in config["methods"].items():
        own = methods.METHODS[entry["kind"]].settings
        problems += [f"config key methods.{name}.{key}: not a setting of kind {entry['kind']!r} "
                     f"(its settings: {sorted(own) or 'none'})"
                     for key in sorted(set(entry) & set(methods.setting_schemas()) - set(own))]
    fail(problems)
    return config


def load(*paths: str | Path) -> dict:
    """The config files merged as Snakemake merges them (later files override keys), validated."""
    merged: dict = {}
    for path in paths:
        merge(merged, read_config_file(path) or {})
    return validate(merged)


def duplicate_keys(path: str | Path) -> list[str]:
    """Every key given twice in one mapping of a YAML file, with both lines."""
    problems = []

    def walk(node, where: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            lines: dict[tuple, int] = {}
            for key, value in node.value:
                name = (key.tag, key.value) if isinstance(key, yaml.ScalarNode) else None
                line = key.start_mark.line + 1
                if name in lines:
                    problems.append(f"{path}: key {_key((*where, key.value))} is given twice, on lines "
                                    f"{lines[name]} and {line} (YAML would keep the last one and drop the first)")
                elif name is not None:
                    lines[name] = line
                walk(value, (*where, getattr(key, "value", "?")))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*where, i))

    walk(yaml.compose(Path(path).read_text(), Loader=yaml.SafeLoader), ())
    return problems


def read_config_file(path: str | Path):
    """A config file's content, read strictly: a duplicate key or malformed YAML is a ConfigError
    naming the file."""
    try:
        problems = duplicate_keys(path)
        loaded = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if problems:
        raise ConfigError("\n".join(problems))
    return loaded


def merge(base: dict, update: dict) -> dict:
    """Snakemake's config-file merge: nested mappings merge key by key, other values replace."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def dataset_problems(name: str, entry: dict) -> list[str]:
    """What is wrong with one dataset entry: unknown names, missing per-source keys. A train split
    is checked where given; the plan checks that the sets that need one (tuning, replay) have it."""
    problems = []
    key = f"config key datasets.{name}"
    metric = metrics.METRICS.get(entry["metric"])
    problems += unknown(entry["metric"], metrics.METRICS, f"datasets.{name}.metric", "metric")
    if metric and not metric.reports(entry.get("primary", metric.primary)):
        problems.append(f"{key}.primary: metric {entry['metric']!r} reports no {entry.get('primary', metric.primary)!r}; "
                        f"it reports {list(metric.keys)} (and <key>/<category> per category)")
    if "format" in entry:
        problems += unknown(entry["format"], formats.FORMATS, f"datasets.{name}.format", "dataset format")
    if entry.get("source") == "synthetic":
        for field in ("task", "train_images", "test_images"):
            if field not in entry:
                problems.append(f"{key}.{field}: required for a synthetic dataset")
        if "task" in entry:
            problems += unknown(entry["task"], world.TASKS, f"datasets.{name}.task", "synthetic task")
        return problems
    for split in sources.SPLITS:
        spec = entry.get(split)
        if spec is None:
            if split == "test":
                problems.append(f"{key}.{split}: required (the source of the {split} split)")
        elif spec["source"] in ("hf", "hf_disk") and "format" not in entry:
            problems.append(f"{key}.format: required for source {spec['source']!r} (how its rows convert)")
        elif spec["source"] in ("llava", "local") and "format" not in entry and "task_type" not in entry:
            problems.append(f"{key}.task_type: required for source {spec['source']!r} without a format")
    return problems


def check_config_files(paths: list[str]) -> None:
    """Read again, strictly, the config files Snakemake was given (it reads them itself, keeping the
    last of duplicate keys); and refuse a config file that is no study config, before its keys give
    baffling schema errors: Snakemake reads every argument after --configfile as a config file,
    targets included."""
    allowed = set(yaml.safe_load(SCHEMA_PATH.read_text())["properties"])
    for path in paths:
        loaded = read_config_file(path)
        strange = sorted(set(loaded) - allowed) if isinstance(loaded, dict) else ["<not a mapping>"]
        if strange:
            raise ConfigError(
                f"{path} is not a tunebench config file (keys {strange[:5]} are not config keys). Snakemake "
                f"reads every argument after --configfile as a config file, so a target written after it is "
                f"taken for one: write --configfile=FILE, or put the targets before --configfile")
