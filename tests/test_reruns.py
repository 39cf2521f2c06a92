"""Rerun triggers follow behaviour: what `snakemake -n` plans after the finished small study when code,
config or local data change. A comment never reruns a GPU-hour; a changed metric never retrains."""

import os
import shutil
from pathlib import Path

import yaml
from workflow_helpers import SMALL, copy_of_repo, planned_jobs, snakemake

from tunebench.evaluation import metrics

AFTER_CELLS = ["all", "cell", "figures", "tables", "tradeoff"]


def rules(jobs) -> list[str]:
    return sorted({rule for rule, _ in jobs})


def planned_with(study, tmp_path, edit) -> list[tuple[str, dict]]:
    """The jobs planned on the finished study by a copy of the code that `edit(repo)` changed."""
    repo = copy_of_repo(tmp_path / "repo")
    edit(repo)
    return planned_jobs(snakemake(study[0], "-n", root=repo))


def test_an_unchanged_copy_of_the_code_plans_nothing(study, tmp_path):
    assert planned_with(study, tmp_path, lambda repo: None) == []


def test_comments_docstrings_and_formatting_in_every_package_module_rerun_nothing(study, tmp_path):
    def reword(repo):
        modules = list((repo / "tunebench").rglob("*.py"))
        assert len(modules) > 30
        for path in modules:
            text = path.read_text()
            if text.startswith('"""'):
                text = '"""Reworded. ' + text[3:]
            # comments, and more blank lines between definitions
            text = "# an edited comment\n" + text.replace("\ndef ", "\n\n# a comment\ndef ") + "\n\n# the end\n"
            path.write_text(text)

    assert planned_with(study, tmp_path, reword) == []


def test_a_reworded_summary_line_reruns_nothing(study, tmp_path):
    def reword(repo):
        progress = repo / "tunebench" / "progress.py"
        text = progress.read_text()
        assert "final loss" in text and "trainable parameters" in text
        progress.write_text(text.replace("final loss", "loss at the end").replace("trainable parameters", "trained"))

    assert planned_with(study, tmp_path, reword) == []


def test_a_metric_code_change_rescores_without_tuning_or_generating(study, tmp_path):
    def change(repo):
        metrics = repo / "tunebench" / "evaluation" / "metrics.py"
        metrics.write_text(metrics.read_text().replace("return text.lower().translate(", "return text.casefold().translate("))

    assert rules(planned_with(study, tmp_path, change)) == sorted(["score"] + AFTER_CELLS)


def test_a_plotting_code_change_redraws_only_the_figures(study, tmp_path):
    def change(repo):
        figures = repo / "tunebench" / "results" / "figures.py"
        figures.write_text(figures.read_text().replace("dpi=150", "dpi=120"))

    assert rules(planned_with(study, tmp_path, change)) == ["all", "figures", "tradeoff"]


def test_a_tuning_code_change_reruns_tuning_and_what_follows_only(study, tmp_path):
    def change(repo):
        tune = repo / "tunebench" / "stages" / "tune.py"
        tune.write_text(tune.read_text().replace("settings, seed, dataset = dict(job[\"settings\"]), job[\"seed\"], job[\"dataset\"]",
                                                 "settings, dataset, seed = dict(job[\"settings\"]), job[\"dataset\"], job[\"seed\"]"))

    jobs = planned_with(study, tmp_path, change)
    assert rules(jobs) == sorted(["predict_tuned", "score", "tune", "tune_weights"] + AFTER_CELLS)
    assert all(w["run"] != "zeroshot" for rule, w in jobs if rule == "score")
    assert len([1 for rule, _ in jobs if rule.startswith("tune")]) == 3  # every tuning run, nothing before


def test_a_fixed_label_in_a_local_dataset_reruns_that_dataset_and_what_follows(study, tmp_path):
    workdir = tmp_path / "study"
    shutil.copytree(study[0], workdir, symlinks=True)
    test_split = workdir / "data" / "own" / "test.jsonl"
    test_split.write_text(test_split.read_text())  # rewritten, same content: nothing to do
    assert planned_jobs(snakemake(workdir, "-n")) == []
    lines = test_split.read_text().splitlines()
    row = yaml.safe_load(lines[0])
    lines[0] = lines[0].replace(f'"answer": "{row["answer"]}"', '"answer": "mauve"')
    test_split.write_text("\n".join(lines) + "\n")
    jobs = planned_jobs(snakemake(workdir, "-n"))
    assert [w for rule, w in jobs if rule == "prepare"] == [{"name": "own_colour", "split": "test"}]
    # The base model answers every set in one job: it is asked again, once.
    assert [w for rule, w in jobs if rule == "predict_zeroshot"] == [{"model": "tiny", "seed": "0"}]
    # The tuned models answer every set in one job, so each is asked again. The adapter run (lora) is
    # not trained again; the others are only because small.yaml keeps no tuned weights.
    assert rules(jobs) == sorted(["prepare", "predict_zeroshot", "predict_tuned", "score", "tune_weights"] + AFTER_CELLS)


def test_a_datasets_scale_reaches_aggregation_only(study, tmp_path):
    config = yaml.safe_load(SMALL.read_text())
    config["datasets"]["shapes_caption"]["scale"] = 0.5
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    assert rules(planned_jobs(snakemake(study[0], "-n", configfile=changed))) == AFTER_CELLS


def path_with_java_flipped(folder):
    """A PATH on which java is missing if it is on this one, and present (a stub) if it is not."""
    folder.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        for tool in Path(directory).glob("*") if Path(directory).is_dir() else []:
            if tool.name != "java" and not (folder / tool.name).exists():
                (folder / tool.name).symlink_to(tool)
    if not metrics.java_available():
        (folder / "java").write_text("#!/bin/sh\n")
        (folder / "java").chmod(0o755)
    return str(folder)


def test_the_caption_tokenizer_is_a_scoring_rerun_trigger(study, tmp_path):
    """A study resumed where java is (or is not) rescores every set: CIDEr never mixes tokenizers."""
    workdir, _ = study
    jobs = planned_jobs(snakemake(workdir, "-n", env={"PATH": path_with_java_flipped(tmp_path / "bin")}))
    assert rules(jobs) == sorted(["score"] + AFTER_CELLS)
    assert len([1 for rule, _ in jobs if rule == "score"]) == len(list((workdir / "results" / "small" / "scores")
                                                                      .rglob("*.json")))
