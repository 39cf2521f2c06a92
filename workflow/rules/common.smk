import re

from tunebench import paths, plan
from tunebench.fingerprint import code_fingerprint

# The one interpretation of the config: every rule below reads this plan, never the raw config.
PLAN = plan.build(config)
R = PLAN.root
MODELS, METHODS, SEEDS = PLAN.models, PLAN.methods, PLAN.seeds
UPSTREAM, DOWNSTREAM = PLAN.upstream, PLAN.downstream
canonical = plan.canonical
# The software every job runs (used with --software-deployment-method conda; pip installs the same).
ENV = "../../envs/tunebench.yaml"


def one_of(names):
    return "|".join(map(re.escape, names)) or "(?!)"  # no names: match nothing


wildcard_constraints:
    model=one_of(MODELS),
    method=one_of(METHODS),
    dataset=one_of(DOWNSTREAM),
    seed=r"\d+",


def log(rule, name):
    """Each job's own log: its stderr, and the error that ended it (`tunebench status` names it)."""
    return f"{R}/logs/{rule}/{name}.log"


def replay_inputs(w):
    return [PLAN.data(name, "train") for name in PLAN.replay_sets(w.model, w.method)]


def cell_data(w):
    """Every dataset file a cell's runs read: hashed into its provenance."""
    replay = [PLAN.data(name, "train") for name in PLAN.replay_sets(w.model, w.method)]
    return (
        [PLAN.data(w.dataset, "train")]
        + replay
        + [PLAN.data(name, "test") for name in [w.dataset] + UPSTREAM]
    )


def table_report(path, caption, category, kind):
    return report(
        path,
        caption=f"../report/{caption}.rst",
        category=category,
        labels={"model": "{model}", "file": kind},
    )
