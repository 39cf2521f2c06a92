import re

from tunebench import paths, plan
from tunebench.fingerprint import code_fingerprint

# The one interpretation of the config: every rule below reads this plan, never the raw config.
PLAN = plan.build(config)
R = PLAN.root
MODELS, METHODS, SEEDS = PLAN.models, PLAN.methods, PLAN.seeds
UPSTREAM, DOWNSTREAM = PLAN.upstream, PLAN.downstream
canonical = plan.canonical


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
