import json

from tunebench.config import eval_sets, method_settings
from tunebench.fingerprint import code_fingerprint
from tunebench.methods import ADAPTER_KINDS

R = f"results/{config['study']}"
MODELS = list(config["models"])
METHODS = list(config["methods"])
UPSTREAM = list(config["upstream"])
DOWNSTREAM = list(config["downstream"])
SEEDS = list(config["seeds"])
ADAPTER_METHODS = [m for m in METHODS if config["methods"][m]["kind"] in ADAPTER_KINDS]
WEIGHT_METHODS = [m for m in METHODS if m not in ADAPTER_METHODS]


def canonical(settings):
    """Params are rerun triggers compared by repr: sort keys so reordering a config reruns nothing."""
    return json.dumps(settings, sort_keys=True)


def one_of(names):
    return "|".join(names)


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


ADAPTER_DIR = "adapter"
WEIGHTS_FILE = "tuned_weights.safetensors"


def tuned_path(model, method, dataset, seed):
    """A run's tuned tensors: its adapter directory, or the file of the weights it changed."""
    return f"{tune_dir(model, method, dataset, seed)}/{ADAPTER_DIR if method in ADAPTER_METHODS else WEIGHTS_FILE}"


def run_json(model, method, dataset, seed):
    """What a tuning run did; written last, so it marks a finished run."""
    return f"{tune_dir(model, method, dataset, seed)}/run.json"


def run_prefix(model, method, dataset, seed):
    """Where a run's predictions and scores go; zero-shot runs are zeroshot/<eval set>, one per set,
    so adding a dataset evaluates the base model on that set alone."""
    return f"{model}/{method}/{dataset}/seed{seed}"


def zeroshot_scores(model, seed, datasets):
    return [f"{R}/scores/{model}/zeroshot/{name}/seed{seed}.json" for name in datasets]


def cell_path(model, method, dataset):
    return f"{R}/cells/{model}/{method}/{dataset}.json"


def table_outputs(model):
    return [f"{R}/tables/{model}.{ext}" for ext in ("md", "csv", "tex")] + [f"{R}/plots/{model}_tradeoff.png"]


def all_outputs():
    return [p for model in MODELS for p in table_outputs(model)]
