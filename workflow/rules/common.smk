import json
import re

from tunebench.config import eval_sets, method_settings, training_settings, tune_method, tuned_methods

R = f"results/{config['study']}"
MODELS = list(config["models"])
METHODS = list(config["methods"])
TUNED = tuned_methods(config)  # methods that own a tuning run (WiSE-FT alphas share one)
UPSTREAM = list(config["upstream"])
DOWNSTREAM = list(config["downstream"])
SEEDS = list(config["seeds"])


def canonical(settings):
    """Params are rerun triggers compared by repr: sort keys so reordering a config reruns nothing."""
    return json.dumps(settings, sort_keys=True)


def one_of(names):
    return "|".join(map(re.escape, names))


wildcard_constraints:
    model=one_of(MODELS),
    method=one_of(METHODS),
    dataset=one_of(DOWNSTREAM),
    seed=r"\d+",


def data(dataset, split):
    return f"{R}/data/{dataset}/{split}.parquet"


def base_dir(model, seed):
    return f"{R}/base/{model}/seed{seed}"


def tune_dir(model, method, dataset, seed):
    return f"{R}/tune/{model}/{method}/{dataset}/seed{seed}"


def run_prefix(model, method, dataset, seed):
    """Where a run's predictions and scores go; the zero-shot base is the run zeroshot/all."""
    return f"{model}/{method}/{dataset}/seed{seed}"


def cell_path(model, method, dataset):
    return f"{R}/cells/{model}/{method}/{dataset}.json"


def table_outputs(model):
    return [f"{R}/tables/{model}.{ext}" for ext in ("md", "csv", "tex")] + [f"{R}/plots/{model}_tradeoff.png"]


def all_outputs():
    return [p for model in MODELS for p in table_outputs(model)]
