import re
from pathlib import Path

from tunebench import paths, plan, progress, study_progress
from tunebench.fingerprint import code_fingerprint

# The one interpretation of the config: every rule below reads this plan, never the raw config.
PLAN = plan.build(config)
# Every job inherits the libraries' quiet settings; the main process prints study-level progress.
progress.quiet_libraries()
if workflow.is_main_process:
    study_progress.follow(PLAN.study)
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


# Each rule's inputs, from the plan: the rule's `input` and what its `made_from` param digests.
def pretrain_inputs(w):
    return PLAN.pretrain_inputs(w.model, w.seed)


def tune_inputs(w):
    return PLAN.tune_inputs(w.model, w.method, w.dataset, w.seed)


def zeroshot_inputs(w):
    return PLAN.predict_inputs(w.model, plan.ZEROSHOT, w.name, w.seed)


def predict_inputs(w):
    return PLAN.predict_inputs(w.model, w.method, w.dataset, w.seed)


def score_inputs(w):
    return PLAN.score_inputs(w.model, w.run, w.train, w.seed)


def cell_inputs(w):
    return PLAN.cell_inputs(w.model, w.method, w.dataset)


def cells(w):
    return {"cells": PLAN.cell_paths(w.model)}


def figures_inputs(w):
    return PLAN.figures_inputs(w.model)


def made_from(inputs_of):
    """A job's `made_from` param: the rerun triggers of the jobs that wrote its inputs
    (tunebench.plan.Plan.made_from). From the wildcards, not from Snakemake's `input`: Snakemake
    leaves params derived from input out of its rerun triggers."""
    return lambda w: PLAN.made_from(inputs_of(w))


def report_page():
    """What `snakemake --report` opens on: the study's results once every cell and the front page
    (rule `landing`) are built, else a page saying the study is unfinished."""
    landing = Path(paths.landing(R)).resolve()
    cells = [Path(p) for m in MODELS for p in PLAN.cell_paths(m)]
    finished = landing.exists() and all(p.exists() for p in cells)
    return str(landing) if finished else "workflow/report/unfinished.rst"


def table_report(path, caption, category, kind):
    return report(
        path,
        caption=f"../report/{caption}.rst",
        category=category,
        labels={"model": "{model}", "file": kind},
    )
