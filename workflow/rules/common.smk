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
