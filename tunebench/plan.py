"""The resolved plan: the one place a study's config is interpreted.

Built once when the workflow loads (and by `tunebench status`), from the validated config: for every
model x method, the method's settings with every default filled in (schema defaults by validation,
method defaults from the method's registry entry, then the shared `tuning` block, the method's
entry, the model's `tuning` and its `methods.<name>`); the tuning run each method predicts from
(shared per model); how each run's tensors are saved; and every path. Each rule hands its jobs a
slice of it (`*_job`), holding exactly the settings that shape that job's outputs, so a slice is also
the job's rerun trigger. Light: no torch.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

from . import config as study_config
from . import numerics, paths
from .data import digest, sources
from .evaluation import metrics
from .methods import registry as methods
from .models import families

# Applied when predicting, not when tuning: methods differing only here share one tuning run.
PREDICTION_KEYS = ("wise_alpha",)
# What loading a model for tuning or prediction reads from its models entry.
LOAD_KEYS = ("family", "source", "path", "trust_remote_code", "precision", "attn_implementation")
# Dataset keys read only by scoring and aggregation, or only by prediction: never a reason to prepare again.
EVAL_KEYS = ("metric", "primary", "scale", "max_new_tokens", "protocol")
ZEROSHOT = "zeroshot"
ZEROSHOT_SETS = "all"  # the zero-shot run's folder: one prediction job per model and seed, every eval set
ADAPTER_DIR = "adapter"
WEIGHTS_FILE = "tuned_weights.safetensors"


def canonical(value) -> str:
    """A slice as Snakemake compares params (by repr): sorted keys, so reordering a config reruns nothing."""
    return json.dumps(value, sort_keys=True)


class Plan:
    def __init__(self, config: dict):
        """`config`: validated (tunebench.config.validate)."""
        self.config = config
        self.study = config["study"]
        self.root = paths.results_dir(config)
        self.models = list(config["models"])
        self.methods = list(config["methods"])
        self.upstream = list(config["upstream"])
        self.downstream = list(config["downstream"])
        self.seeds = list(config["seeds"])
        self.settings = {(model, method): self._resolve(model, method) for model in self.models for method in self.methods}
        self._check()

    # ---- resolution ------------------------------------------------------------------------

    def _resolve(self, model: str, method: str) -> dict:
        entry = self.config["methods"][method]
        spec = self.config["models"][model]
        own = methods.METHODS[entry["kind"]].settings
        layered = {}
        for layer in (self.config["tuning"], entry, spec.get("tuning", {}), spec.get("methods", {}).get(method, {})):
            layered.update(layer)
        # A kind's own settings apply to it alone: a shared `r` is LoRA's, not Full-ST's.
        kept = {k: v for k, v in layered.items() if k not in methods.setting_schemas() or k in own}
        return methods.resolved(kept, self.config["layer_methods_train_projector"])

    def training_settings(self, model: str, method: str) -> dict:
        return {k: v for k, v in self.settings[(model, method)].items() if k not in PREDICTION_KEYS}

    @cached_property
    def run_of(self) -> dict[tuple[str, str], str]:
        """The method whose tuning run each method predicts from, per model: the first in config order
        with the same training settings for that model (each WiSE-FT alpha predicts from one run)."""
        return {(model, method): next(m for m in self.methods
                                      if self.training_settings(model, m) == self.training_settings(model, method))
                for model in self.models for method in self.methods}

    def saves(self, model: str, method: str) -> str:
        """How the run `method` uses saves its tensors: "adapter" (a directory) or "tensors" (one file)."""
        return methods.METHODS[self.settings[(model, self.run_of[(model, method)])]["kind"]].saves

    def runs(self, saves: str) -> list[str]:
        """Every method that owns a tuning run of some model and saves it as `saves`."""
        owners = dict.fromkeys(self.run_of.values())
        return [m for m in owners if any(self.run_of[(model, m)] == m and self.saves(model, m) == saves
                                         for model in self.models)]

    def _check(self) -> None:
        problems = []
        replay = False
        for (model, method), settings in self.settings.items():
            key = f"config key methods.{method}"
            missing = [k for k in ("lr", "batch_size") if k not in settings]
            if "steps" not in settings and "epochs" not in settings:
                missing.append("steps or epochs")
            problems += [f"{key}: no {k} for model {model!r} (set it in tuning:, the method or the model)" for k in missing]
            problems += [f"{key}.{p}" for p in methods.settings_problems(settings)]
            fam = families.FAMILIES[self.config["models"][model]["family"]]
            problems += [f"{key}.{p} (model {model!r})" for p in methods.family_problems(settings, fam)]
            replay |= settings["replay"] > 0
        # Train splits are read for tuning (downstream) and for replay (upstream).
        for name in self.downstream + (self.upstream if replay else []):
            entry = self.config["datasets"][name]
            if entry.get("source") != "synthetic" and "train" not in entry:
                problems.append(f"config key datasets.{name}.train: required (the source of the train split: "
                                f"{'tuning' if name in self.downstream else 'replay'} reads it)")
        study_config.fail(problems)

    # ---- paths ---------------------------------------------------------------------------

    def data(self, dataset: str, split: str) -> str:
        return paths.data(self.root, dataset, split)

    def is_embedded(self, model: str) -> bool:
        return self.config["models"][model]["source"] == "embedded"

    def base_input(self, model: str, seed) -> list[str]:
        """The base model a job needs as a file: the embedded model is built by the workflow; an hf
        model is read from its path by the job itself (so planning never touches the network)."""
        return [paths.base_dir(self.root, model, seed)] if self.is_embedded(model) else []

    def base_location(self, model: str, seed) -> str:
        """Where a job loads the base model from: the pretrained embedded dir, or an HF id / local dir."""
        return paths.base_dir(self.root, model, seed) if self.is_embedded(model) else self.config["models"][model]["path"]

    def run_dir(self, model: str, method: str, dataset: str, seed) -> str:
        """The tuning run `method` predicts from (its own, or the one it shares)."""
        return paths.tune_dir(self.root, model, self.run_of[(model, method)], dataset, seed)

    def tuned_path(self, model: str, method: str, dataset: str, seed) -> str:
        name = ADAPTER_DIR if self.saves(model, method) == "adapter" else WEIGHTS_FILE
        return f"{self.run_dir(model, method, dataset, seed)}/{name}"

    def run_json(self, model: str, method: str, dataset: str, seed) -> str:
        """What a tuning run did; written last, so it marks a finished run."""
        return f"{self.run_dir(model, method, dataset, seed)}/run.json"

    def eval_sets(self, run: str, dataset: str) -> list[str]:
        """The zero-shot run (`dataset` ZEROSHOT_SETS) is evaluated on every downstream and upstream
        set; a tuned model on its own downstream set and every upstream set."""
        return list(dict.fromkeys(self.downstream + self.upstream)) if run == ZEROSHOT else [dataset] + self.upstream

    def predictions(self, model: str, run: str, dataset: str, seed) -> list[str]:
        folder = paths.predictions_dir(self.root, model, run, dataset, seed)
        return [f"{folder}/{name}.jsonl" for name in self.eval_sets(run, dataset)]

    def scores(self, model: str, run: str, dataset: str, seed) -> str:
        return paths.scores_path(self.root, model, run, dataset, seed)

    def zeroshot_predictions(self, model: str, seed) -> list[str]:
        """One zero-shot job per model and seed answers every eval set (one model load): adding a
        set asks the base model every set again, then rescores them, but retrains nothing."""
        return self.predictions(model, ZEROSHOT, ZEROSHOT_SETS, seed)

    def zeroshot_scores(self, model: str, seed) -> str:
        return self.scores(model, ZEROSHOT, ZEROSHOT_SETS, seed)

    def cell_path(self, model: str, method: str, dataset: str) -> str:
        return paths.cell_path(self.root, model, method, dataset)

    def cell_paths(self, model: str) -> list[str]:
        return [self.cell_path(model, m, d) for m in self.methods for d in self.downstream]

    def all_outputs(self) -> list[str]:
        return [p for model in self.models for outputs in (paths.table_outputs(self.root, model),
                                                            paths.report_outputs(self.root, model))
                for p in outputs.values()]

    # ---- each rule's slice ---------------------------------------------------------------

    def replay_sets(self, model: str, method: str) -> list[str]:
        return self.upstream if self.settings[(model, method)]["replay"] > 0 else []

    def _load(self, model: str) -> dict:
        spec = self.config["models"][model]
        return {k: spec[k] for k in LOAD_KEYS if k in spec}

    def prepare_job(self, dataset: str, split: str) -> dict:
        entry = self.config["datasets"][dataset]
        spec = sources.split_spec(dataset, entry, split)
        local = [] if spec.get("source") == "synthetic" else sources.local_files(spec)
        return {"dataset": dataset, "split": split, "data_seed": self.config["data_seed"],
                "entry": {k: v for k, v in entry.items() if k not in EVAL_KEYS},
                "local_data": digest.tree_digest(local) if local else None}

    def cpu_numerics(self) -> dict:
        """What a model job's CPU numerics are (tunebench.numerics): they shape its floats."""
        return numerics.settings(self.config["cpu_numerics"])

    def pretrain_job(self, model: str, seed) -> dict:
        spec = self.config["models"][model]
        return {"model": model, "seed": int(seed), "architecture": spec["architecture"], "pretrain": spec["pretrain"],
                "upstream": self.upstream, "cpu_numerics": self.cpu_numerics()}

    def tune_job(self, model: str, method: str, dataset: str, seed) -> dict:
        spec = self.config["models"][model]
        return {"model": model, "method": method, "dataset": dataset, "seed": int(seed),
                "load": self._load(model), "gradient_checkpointing": spec["gradient_checkpointing"],
                "settings": self.training_settings(model, method), "saves": self.saves(model, method),
                "replay": self.replay_sets(model, method), "cpu_numerics": self.cpu_numerics()}

    def predict_job(self, model: str, method: str | None, sets: list[str]) -> dict:
        """`method` None: the base model (zero-shot)."""
        spec = self.config["models"][model]
        lengths = {name: self.config["datasets"][name].get("max_new_tokens") for name in sets}
        return {"model": model, "load": self._load(model), "batch_size": spec["predict_batch_size"],
                "max_new_tokens": lengths, "cpu_numerics": self.cpu_numerics(),
                "method": None if method is None else self.settings[(model, method)]}

    def score_job(self, sets: list[str]) -> dict:
        """What scoring reads of each set: its metric, the key that enters E/F/O, how option letters are
        read, and its format (which says what a source may lack)."""
        return {name: {"metric": self.config["datasets"][name]["metric"], "primary": self.primary(name),
                       "protocol": self.config["datasets"][name]["protocol"],
                       "format": self.config["datasets"][name].get("format")}
                for name in sets}

    def primary(self, dataset: str) -> str:
        entry = self.config["datasets"][dataset]
        return entry.get("primary", metrics.METRICS[entry["metric"]].primary)

    def cell_job(self, model: str, method: str, dataset: str) -> dict:
        sets = [dataset] + self.upstream
        return {"model": model, "method": method, "dataset": dataset, "upstream": self.upstream, "seeds": self.seeds,
                "scale": {name: self.config["datasets"][name]["scale"] for name in sets},
                "metric": {name: f"{self.config['datasets'][name]['metric']}.{self.primary(name)}" for name in sets},
                "o": self.config["aggregation"]["o"], "settings": self.settings[(model, method)],
                "run": self.run_of[(model, method)], "study": self.study, "data_seed": self.config["data_seed"],
                "load": self._load(model)}

    def table_job(self, model: str) -> dict:
        return {"model": model, "study": self.study, "seeds": self.seeds, "upstream": self.upstream,
                "replay": self.config["tuning"]["replay"]}

    def title(self, model: str) -> str:
        return f"{self.study}: {model}"

    def figures_job(self, model: str) -> dict:
        return {"model": model, "title": self.title(model), "seeds": self.seeds,
                "train_logs": {f"{m}/{d}": {str(s): f"{self.run_dir(model, m, d, s)}/train_log.jsonl"
                                            for s in self.seeds}
                               for m in self.methods for d in self.downstream}}



def build(config: dict) -> Plan:
    """Validate `config` (in place: defaults filled, sweeps expanded) and resolve it."""
    return Plan(study_config.validate(config))


def load(*config_files: str | Path) -> Plan:
    return Plan(study_config.load(*config_files))


def checkpoint_every(config: dict) -> int:
    """How often a job checkpoints: how it runs, not what it computes, so never a rerun trigger; a
    job reads it from the validated config Snakemake hands every script."""
    return config["checkpoint_every"]
