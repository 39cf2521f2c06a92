"""The resolved plan: the one place a study's config is interpreted.

Built once when the workflow loads (and by `tunebench status`), from the validated config: for every
model x method, the method's settings with every default filled in (schema defaults by validation,
method defaults from the method's registry entry, then the shared `tuning` block, the method's
entry, the model's `tuning` and its `methods.<name>`); the tuning run each method predicts from
(shared per model); how each run's tensors are saved; and every path. Each rule hands its jobs a
slice of it (`*_job`), holding exactly the settings that shape that job's outputs, and its inputs
(`*_inputs`). A job's rerun trigger is its slice, its stage's code fingerprint and the triggers of the
jobs that wrote its inputs (`made_from`), so a change anywhere upstream reaches every job after it.
Light: no torch.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from . import config as study_config
from . import numerics, paths
from .data import digest, sources
from .evaluation import metrics
from .fingerprint import code_fingerprint
from .methods import registry as methods
from .models import families
from .slices import canonical, digest_of  # noqa: F401 (canonical: the workflow's params, as plan.canonical)

# Applied when predicting, not when tuning: methods differing only here share one tuning run.
PREDICTION_KEYS = ("wise_alpha",)
# What loading a model for tuning or prediction reads from its models entry.
LOAD_KEYS = ("family", "source", "path", "trust_remote_code", "precision", "attn_implementation")
# Dataset keys read only by scoring and aggregation, or only by prediction: never a reason to prepare again.
EVAL_KEYS = ("metric", "primary", "scale", "max_new_tokens", "protocol")
ZEROSHOT = "zeroshot"
ADAPTER_DIR = "adapter"
WEIGHTS_FILE = "tuned_weights.safetensors"

# The stage whose code fingerprint each kind of job carries.
STAGE_OF = {"prepare": "prepare", "pretrain": "pretrain", "tune": "tune", "predict": "predict", "score": "score",
            "cell": "aggregate"}


def job_digest(code: str, job: dict, made_from: str) -> str:
    """A job's rerun trigger in one digest: its stage's code, its slice and what wrote its inputs."""
    return digest_of([code, job, made_from])


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
        self._triggers: dict[tuple, str] = {}

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
        if self.config["aggregation"]["normalise"] == "range":
            problems += [f"config key datasets.{name}.primary: {self.primary(name)!r} has no fixed full scale, so "
                         "aggregation.normalise: range cannot put it in % of one; pick another primary or normalise"
                         for name in self.downstream + self.upstream if self.full_scale(name) is None]
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
        """A zero-shot run is evaluated on the one set it is named after; a tuned model on its own
        downstream set and every upstream set."""
        return [dataset] if run == ZEROSHOT else [dataset] + self.upstream

    def predictions(self, model: str, run: str, dataset: str, seed) -> list[str]:
        folder = paths.predictions_dir(self.root, model, run, dataset, seed)
        return [f"{folder}/{name}.jsonl" for name in self.eval_sets(run, dataset)]

    def scores(self, model: str, run: str, dataset: str, seed) -> str:
        return paths.scores_path(self.root, model, run, dataset, seed)

    def zeroshot_scores(self, model: str, seed, datasets: list[str]) -> list[str]:
        """One zero-shot run per eval set: adding a dataset evaluates the base model on that set alone."""
        return [self.scores(model, ZEROSHOT, name, seed) for name in datasets]

    def cell_path(self, model: str, method: str, dataset: str) -> str:
        return paths.cell_path(self.root, model, method, dataset)

    def cell_paths(self, model: str) -> list[str]:
        return [self.cell_path(model, m, d) for m in self.methods for d in self.downstream]

    def all_outputs(self) -> list[str]:
        return [p for model in self.models for outputs in (paths.table_outputs(self.root, model),
                                                            paths.report_outputs(self.root, model))
                for p in outputs.values()] + [paths.landing(self.root)]

    # ---- each rule's inputs --------------------------------------------------------------

    def pretrain_inputs(self, model: str, seed) -> dict:
        return {"train": [self.data(name, "train") for name in self.upstream]}

    def tune_inputs(self, model: str, method: str, dataset: str, seed) -> dict:
        return {"base": self.base_input(model, seed), "train": self.data(dataset, "train"),
                "replay": [self.data(name, "train") for name in self.replay_sets(model, method)]}

    def predict_inputs(self, model: str, run: str, dataset: str, seed) -> dict:
        """`run`: a method (its tuned model), or ZEROSHOT (the base model on `dataset`)."""
        inputs = {"base": self.base_input(model, seed),
                  "tests": [self.data(name, "test") for name in self.eval_sets(run, dataset)]}
        if run != ZEROSHOT:
            inputs |= {"tuned": self.tuned_path(model, run, dataset, seed), "run": self.run_json(model, run, dataset, seed)}
        return inputs

    def score_inputs(self, model: str, run: str, dataset: str, seed) -> dict:
        inputs = {"predictions": self.predictions(model, run, dataset, seed),
                  "tests": [self.data(name, "test") for name in self.eval_sets(run, dataset)]}
        if run != ZEROSHOT:  # a tuned run's run.json says whether it diverged (then there is nothing to score)
            inputs["run"] = self.run_json(model, run, dataset, seed)
        return inputs

    def cell_inputs(self, model: str, method: str, dataset: str) -> dict:
        sets = [dataset] + self.upstream
        replay = [self.data(name, "train") for name in self.replay_sets(model, method)]
        return {"base_scores": [p for seed in self.seeds for p in self.zeroshot_scores(model, seed, sets)],
                "tuned_scores": [self.scores(model, method, dataset, seed) for seed in self.seeds],
                "runs": [self.run_json(model, method, dataset, seed) for seed in self.seeds],
                "base": [path for seed in self.seeds for path in self.base_input(model, seed)],
                # Every dataset file the cell's runs read: hashed into its provenance.
                "data": [self.data(dataset, "train")] + replay + [self.data(name, "test") for name in sets]}

    def figures_inputs(self, model: str) -> dict:
        return {"cells": self.cell_paths(model),
                "runs": sorted({self.run_json(model, m, d, s) for m in self.methods for d in self.downstream
                                for s in self.seeds}),
                "samples": sorted({path for sets in self.sample_files(model).values() for files in sets.values()
                                   for path in files.values()})}

    # ---- rerun triggers ------------------------------------------------------------------

    def _job(self, kind: str, key: dict) -> tuple[dict, dict]:
        """(slice, inputs) of one job, as its rule builds them."""
        if kind == "prepare":
            return self.prepare_job(key["dataset"], key["split"]), {}
        if kind == "pretrain":
            return self.pretrain_job(key["model"], key["seed"]), self.pretrain_inputs(key["model"], key["seed"])
        if kind == "tune":
            args = key["model"], key["method"], key["dataset"], key["seed"]
            return self.tune_job(*args), self.tune_inputs(*args)
        if kind == "predict":
            return (self.predict_job(key["model"], key["run"], key["dataset"]),
                    self.predict_inputs(key["model"], key["run"], key["dataset"], key["seed"]))
        if kind == "score":
            return (self.score_job(self.eval_sets(key["run"], key["dataset"])),
                    self.score_inputs(key["model"], key["run"], key["dataset"], key["seed"]))
        args = key["model"], key["method"], key["dataset"]
        return self.cell_job(*args), self.cell_inputs(*args)

    def trigger(self, kind: str, **key) -> str:
        """One job's rerun trigger (`job_digest`): its stage's code, its slice and, recursively, the
        triggers of the jobs that wrote its inputs. `kind` and `key` as `paths.written_by` gives them."""
        memo = (kind, tuple(sorted(key.items())))
        if memo not in self._triggers:
            job, inputs = self._job(kind, key)
            self._triggers[memo] = job_digest(code_fingerprint(STAGE_OF[kind]), job, self.made_from(inputs))
        return self._triggers[memo]

    def made_from(self, inputs) -> str:
        """One digest over the triggers of the jobs that wrote `inputs` (a `*_inputs` mapping, or a list
        of paths). In a rule's params it closes the chain: a change upstream reruns the rule
        even where a killed or temporary input is gone and its old output would otherwise stand."""
        values = inputs.values() if isinstance(inputs, dict) else [inputs]
        files = [str(p) for v in values for p in ([v] if isinstance(v, str) else v)]
        jobs = {(kind, tuple(sorted(key.items())))
                for kind, key in filter(None, (paths.written_by(self.root, f) for f in files))}
        return digest_of(sorted(self.trigger(kind, **dict(key)) for kind, key in jobs))

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
                "micro_batch_size": spec.get("micro_batch_size"), "distributed": spec["distributed"],
                "settings": self.training_settings(model, method), "saves": self.saves(model, method),
                "replay": self.replay_sets(model, method), "cpu_numerics": self.cpu_numerics()}

    def prediction_settings(self, model: str, method: str) -> dict:
        """What loading a tuned model reads of its method: the kind, its own settings (modules it adds)
        and WiSE-FT's alpha. The rest shaped the tuned weights, which are the prediction's input."""
        settings = self.settings[(model, method)]
        own = methods.METHODS[settings["kind"]].settings
        return {k: v for k, v in settings.items() if k == "kind" or k in own or k in PREDICTION_KEYS}

    def predict_job(self, model: str, run: str, dataset: str) -> dict:
        """`run`: a method, or ZEROSHOT (the base model on `dataset` alone)."""
        spec = self.config["models"][model]
        lengths = {name: self.config["datasets"][name].get("max_new_tokens") for name in self.eval_sets(run, dataset)}
        return {"model": model, "load": self._load(model), "batch_size": spec["predict_batch_size"],
                "max_new_tokens": lengths, "cpu_numerics": self.cpu_numerics(),
                "method": None if run == ZEROSHOT else self.prediction_settings(model, run)}

    def score_job(self, sets: list[str]) -> dict:
        """What scoring reads of each set: its metric, the key that enters E/F/O, how option letters are
        read, its format (which says what a source may lack), and how many resamples of the test set
        to score, from which seed (the same for every run: what pairs them)."""
        aggregation = self.config["aggregation"]
        return {name: {"metric": self.config["datasets"][name]["metric"], "primary": self.primary(name),
                       "protocol": self.config["datasets"][name]["protocol"],
                       "format": self.config["datasets"][name].get("format"),
                       "resamples": aggregation["resamples"], "resample_seed": aggregation["resample_seed"]}
                for name in sets}

    def primary(self, dataset: str) -> str:
        entry = self.config["datasets"][dataset]
        return entry.get("primary", metrics.METRICS[entry["metric"]].primary)

    def full_scale(self, dataset: str) -> float | None:
        """The most a set's primary score can be, in the points that enter E/F/O (times its scale)."""
        entry = self.config["datasets"][dataset]
        top = metrics.METRICS[entry["metric"]].maximum(self.primary(dataset))
        return None if top is None else top * entry["scale"]

    def _statistics(self) -> dict:
        """What a cell's intervals depend on beyond its scores: their level, the seed of the seed-level
        weights (the resamples' own), and how sets' changes enter E/F/O. Cells record them, and the
        table and figures read them there."""
        aggregation = self.config["aggregation"]
        return {"ci": aggregation["ci"], "resample_seed": aggregation["resample_seed"],
                "normalise": aggregation["normalise"]}

    def cell_job(self, model: str, method: str, dataset: str) -> dict:
        sets = [dataset] + self.upstream
        return {"model": model, "method": method, "dataset": dataset, "upstream": self.upstream, "seeds": self.seeds,
                "scale": {name: self.config["datasets"][name]["scale"] for name in sets},
                "metric": {name: f"{self.config['datasets'][name]['metric']}.{self.primary(name)}" for name in sets},
                "full_scale": {name: self.full_scale(name) for name in sets},
                "o": self.config["aggregation"]["o"], **self._statistics(), "settings": self.settings[(model, method)],
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
                               for m in self.methods for d in self.downstream},
                "samples": self.sample_files(model), "scoring": self.score_job(self.downstream + self.upstream)}

    def sample_files(self, model: str) -> dict[str, dict[str, dict[str, str]]]:
        """Per cell (`<method>/<dataset>`) and eval set: its test split and the first seed's zero-shot
        and tuned predictions, which the report samples."""
        seed = self.seeds[0]
        return {f"{m}/{d}": {name: {"test": self.data(name, "test"),
                                    "zeroshot": self.predictions(model, ZEROSHOT, name, seed)[0], "tuned": tuned}
                             for name, tuned in zip(self.eval_sets(m, d), self.predictions(model, m, d, seed))}
                for m in self.methods for d in self.downstream}

    def landing_job(self) -> dict:
        return {"study": self.study, "models": self.models, "downstream": self.downstream}


def build(config: dict) -> Plan:
    """Validate `config` (in place: defaults filled, sweeps expanded) and resolve it."""
    return Plan(study_config.validate(config))


def load(*config_files: str | Path) -> Plan:
    return Plan(study_config.load(*config_files))


# How a job runs or reports, not what it computes: never a rerun trigger, so no slice holds them; a
# job reads them from the validated config Snakemake hands every script.

def job_control(config: dict, model: str) -> dict:
    """How a model job runs: how often it checkpoints, how many processes run the processor ahead of
    the model, and the experiment trackers a tuning run logs to (`tunebench.tracking`; None when off)."""
    spec = config["tracking"]
    return {"checkpoint_every": config["checkpoint_every"], "num_workers": config["models"][model]["num_workers"],
            "tracking": {**spec, "study": config["study"]} if spec["trackers"] else None}


def progress(config: dict) -> dict:
    """How often a job off a terminal prints a progress line (`tunebench.progress.logged`)."""
    return config["progress"]
