"""Where every result of a study lives: one layout, shared by the workflow rules and `tunebench status`.
Every function takes the study's results directory first (`results_dir(config)`)."""

from __future__ import annotations

import re


def results_dir(config: dict) -> str:
    return f"results/{config['study']}"


def data(root: str, dataset: str, split: str) -> str:
    return f"{root}/data/{dataset}/{split}.parquet"


def base_dir(root: str, model: str, seed) -> str:
    return f"{root}/base/{model}/seed{seed}"


def tune_dir(root: str, model: str, method: str, dataset: str, seed) -> str:
    return f"{root}/tune/{model}/{method}/{dataset}/seed{seed}"


def run_prefix(model: str, method: str, dataset: str, seed) -> str:
    """Where a run's predictions and scores go; the zero-shot base is the run zeroshot/all."""
    return f"{model}/{method}/{dataset}/seed{seed}"


def predictions_dir(root: str, model: str, method: str, dataset: str, seed) -> str:
    return f"{root}/predictions/{run_prefix(model, method, dataset, seed)}"


def scores_path(root: str, model: str, method: str, dataset: str, seed) -> str:
    return f"{root}/scores/{run_prefix(model, method, dataset, seed)}.json"


def cell_path(root: str, model: str, method: str, dataset: str) -> str:
    return f"{root}/cells/{model}/{method}/{dataset}.json"


def table_outputs(root: str, model: str) -> dict[str, str]:
    tables = {ext: f"{root}/tables/{model}.{ext}" for ext in ("md", "csv", "tex", "html")}
    return {**tables, "provenance": f"{root}/tables/{model}.provenance.json",
            "plot": f"{root}/plots/{model}_tradeoff.png", "plot_svg": f"{root}/plots/{model}_tradeoff.svg"}


def report_outputs(root: str, model: str) -> dict[str, str]:
    """The figures and pages only the report shows."""
    folder = f"{root}/report/{model}"
    return {"scores": f"{folder}/scores.png", "scores_svg": f"{folder}/scores.svg", "loss_sets": f"{folder}/loss_by_set", "loss": f"{folder}/loss",
            "cells": f"{folder}/cells.html", "predictions": f"{folder}/predictions.html"}


def landing(root: str) -> str:
    """The report's front page (reStructuredText), every model's results."""
    return f"{root}/report/landing.rst"


# What each job kind writes, as the layout above spells it: names never hold a '/' (the schema's
# name pattern), so a path names its job.
_NAME = r"[^/]+"
_WRITTEN_BY = {
    "prepare": rf"data/(?P<dataset>{_NAME})/(?P<split>train|test)\.(?:parquet|manifest\.json)",
    "pretrain": rf"base/(?P<model>{_NAME})/seed(?P<seed>\d+)",
    "tune": rf"tune/(?P<model>{_NAME})/(?P<method>{_NAME})/(?P<dataset>{_NAME})/seed(?P<seed>\d+)/{_NAME}",
    "predict": rf"predictions/(?P<model>{_NAME})/(?P<run>{_NAME})/(?P<dataset>{_NAME})/seed(?P<seed>\d+)/{_NAME}\.jsonl",
    "score": rf"scores/(?P<model>{_NAME})/(?P<run>{_NAME})/(?P<dataset>{_NAME})/seed(?P<seed>\d+)\.json",
    "cell": rf"cells/(?P<model>{_NAME})/(?P<method>{_NAME})/(?P<dataset>{_NAME})\.json",
}


def written_by(root: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The job kind that writes `path` and its key (model, method, dataset, seed, ...); None for a
    path no job of the study writes."""
    prefix = f"{root}/"
    if not str(path).startswith(prefix):
        return None
    rest = str(path)[len(prefix):]
    for kind, pattern in _WRITTEN_BY.items():
        found = re.fullmatch(pattern, rest)
        if found:
            return kind, found.groupdict()
    return None
