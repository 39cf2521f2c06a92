import json
import re
from functools import partial

from tunebench import paths
from tunebench.config import eval_sets, method_settings, training_settings, tune_method
from tunebench.fingerprint import code_fingerprint
from tunebench.methods.registry import ADAPTER_KINDS

R = paths.results_dir(config)
MODELS = list(config["models"])
METHODS = list(config["methods"])
# The run each method predicts from: its own, or the one it shares (WiSE-FT alphas share one).
RUN_OF = {m: tune_method(config, m) for m in METHODS}
UPSTREAM = list(config["upstream"])
DOWNSTREAM = list(config["downstream"])
SEEDS = list(config["seeds"])
# The methods that own a tuning run, by what it saves: an adapter, or the weights it changed.
ADAPTER_RUNS = [m for m in dict.fromkeys(RUN_OF.values()) if config["methods"][m]["kind"] in ADAPTER_KINDS]
WEIGHT_RUNS = [m for m in dict.fromkeys(RUN_OF.values()) if m not in ADAPTER_RUNS]


def canonical(settings):
    """Params are rerun triggers compared by repr: sort keys so reordering a config reruns nothing."""
    return json.dumps(settings, sort_keys=True)


def one_of(names):
    return "|".join(map(re.escape, names)) or "(?!)"  # no names: match nothing


def models_from(source):
    return [m for m, spec in config["models"].items() if spec["source"] == source]


wildcard_constraints:
    model=one_of(MODELS),
    method=one_of(METHODS),
    dataset=one_of(DOWNSTREAM),
    seed=r"\d+",


# The layout lives in tunebench.paths (`tunebench status` reads it too); bound here to this study.
data = partial(paths.data, R)
base_dir = partial(paths.base_dir, R)
tune_dir = partial(paths.tune_dir, R)
run_prefix = paths.run_prefix
cell_path = partial(paths.cell_path, R)


def base_input(model, seed):
    """The base model a job needs as a file: the embedded model is built by the workflow; an hf
    model is read from its path by the job itself (so planning never touches the network)."""
    return [base_dir(model, seed)] if config["models"][model]["source"] == "embedded" else []


def base_location(model, seed):
    """Where a job loads the base model from: the pretrained embedded dir, or an HF id / local dir."""
    spec = config["models"][model]
    return base_dir(model, seed) if spec["source"] == "embedded" else spec["path"]


ADAPTER_DIR = "adapter"
WEIGHTS_FILE = "tuned_weights.safetensors"


def tuned_path(model, method, dataset, seed):
    """A method's tuned tensors: its adapter directory, or the file of the weights it changed (a
    WiSE-FT alpha's are those of the run it shares)."""
    run = RUN_OF[method]
    return f"{tune_dir(model, run, dataset, seed)}/{ADAPTER_DIR if run in ADAPTER_RUNS else WEIGHTS_FILE}"


def run_json(model, method, dataset, seed):
    """What a tuning run did; written last, so it marks a finished run."""
    return f"{tune_dir(model, RUN_OF[method], dataset, seed)}/run.json"


def zeroshot_scores(model, seed, datasets):
    """Zero-shot runs are zeroshot/<eval set>, one per set: adding a dataset evaluates the base model on that set alone."""
    return [paths.scores_path(R, model, "zeroshot", name, seed) for name in datasets]


def all_outputs():
    return [p for model in MODELS for outputs in (paths.table_outputs(R, model), paths.report_outputs(R, model))
            for p in outputs.values()]
