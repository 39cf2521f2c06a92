"""The fault suite: faults a study meets, tried for real (SIGKILLs, edits between runs, extreme values,
planted files, a full disk, a cancelled SLURM job). No finished work is lost, and nothing wrong is
recorded as a result. docs/reliability.md lists them; one section here per fault."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file
from tuning_helpers import (
    DOWNSTREAM,
    TOP,
    finish_tuning,
    kill_after_first_checkpoint,
    start_tuning,
    train_log,
    tune_args,
    tune_job,
)
from workflow_helpers import (
    AFTER_CELLS,
    ROOT,
    SMALL,
    copy_of_repo,
    copy_of_study,
    edited_small,
    kill_job_writing,
    planned_jobs,
    require_slurm,
    rules,
    snakemake,
    start_snakemake,
    status,
    write_own_data,
)

from tunebench import config as study_config
from tunebench import plan as study_plan
from tunebench.data import schema, sources, world
from tunebench.stages import tune as tune_stage
from tunebench.train.checkpoint import checkpoint_path

LORA_RUN = "results/small/tune/tiny/lora/big_count/seed0"


def small_config(tmp_path: Path, edit) -> Path:
    """small.yaml after `edit(config)`, written beside the test under a name of its own."""
    return edited_small(tmp_path / f"edited{uuid.uuid4().hex[:6]}.yaml", edit)


# ---- 1. a checkpoint belongs to one run ----------------------------------------------------------

def test_a_resume_after_a_config_change_starts_over_at_the_new_settings(tuning_inputs):
    """Killed mid-way, its lr changed, started again: the old checkpoint (whose optimizer would
    restore the old lr) is discarded, run.json says why, and the losses are a fresh run's."""
    old = tune_args(tuning_inputs, "lr_changed", tune_job(tuning_inputs / "base", {**TOP, "lr": 1.0e-3}))
    kill_after_first_checkpoint(old)
    new_job = tune_job(tuning_inputs / "base", {**TOP, "lr": 3.0e-3})
    resumed = finish_tuning({**old, "job": new_job})
    fresh = finish_tuning(tune_args(tuning_inputs, "lr_fresh", new_job))
    assert resumed["run"]["resumed_from_step"] is None
    assert resumed["run"]["checkpoint"]["discarded"] == "made for another plan (settings.lr 0.001 -> 0.003)"
    assert [r["loss"] for r in resumed["log"]] == [r["loss"] for r in fresh["log"]]
    assert {r["attempt"] for r in resumed["log"]} == {0}
    assert all((resumed["weights"][k] == fresh["weights"][k]).all() for k in fresh["weights"])


def test_a_resume_from_other_inputs_starts_over(tuning_inputs, tmp_path):
    """The same settings on a re-prepared train split: a checkpoint of the old data is no checkpoint
    of this run."""
    train = tmp_path / "train.parquet"
    shutil.copy(tuning_inputs / "train.parquet", train)
    args = {**tune_args(tuning_inputs, "data_changed"), "train_path": str(train)}
    kill_after_first_checkpoint(args)
    frame, _ = sources.prepare("big_count", DOWNSTREAM, "train", 1)  # another data seed
    schema.write_split(frame, train)
    resumed = finish_tuning(args)
    assert resumed["run"]["resumed_from_step"] is None
    assert resumed["run"]["checkpoint"]["discarded"] == f"made from other inputs ({train})"


# ---- 2. finite or diverged -----------------------------------------------------------------------

@pytest.mark.parametrize("method", [{"kind": "last", "lr": 1.0e30},
                                    {"kind": "lora", "lr": 1.0e30, "r": 4, "alpha": 8, "targets": ["q_proj", "v_proj"]}],
                         ids=["last", "lora"])
def test_a_blow_up_in_the_last_update_is_a_divergence(tuning_inputs, method, capsys):
    """lr 1e30, 2 steps, warmup 1: the first update is 0 and the loss before each is finite; the second
    makes the weights ~1e30 (finite entries whose norm overflows: NaN on a forward pass). The run is
    diverged at step 2, keeps no tensors and shows no result."""
    job = tune_job(tuning_inputs / "base", method, steps=2, warmup=1)
    args = tune_args(tuning_inputs, f"blow_up_{method['kind']}", job)
    tune_stage.tune(**args)
    run = json.loads(Path(args["run_path"]).read_text())
    assert run["diverged"]["step"] == 2
    assert re.fullmatch(r"(trainable tensor \S+|loss after the last update) became .* at step 2", run["diverged"]["reason"])
    tuned = Path(args["tuned_path"])
    assert (not any(tuned.iterdir())) if tuned.is_dir() else tuned.read_bytes() == b""
    assert "DIVERGED at step 2" in capsys.readouterr().err


# ---- 3. rerun triggers that close the chain ------------------------------------------------------

def test_a_killed_prediction_after_a_prediction_code_change_is_predicted_and_scored_again(study, tmp_path):
    """Prediction code edited, the lora prediction job SIGKILLed: its old score file stays, and
    Snakemake would take it as current (its own params did not change); what wrote its inputs did."""
    workdir = copy_of_study(study, tmp_path)
    repo = copy_of_repo(tmp_path / "repo")
    code = repo / "tunebench" / "evaluation" / "prediction.py"
    edited = code.read_text().replace("[text.strip() for text", "[text.strip().upper() for text")
    assert edited != code.read_text()
    code.write_text(edited)
    lora_predictions = study_plan.load(SMALL).predictions("tiny", "lora", "big_count", 0)
    assert kill_job_writing(workdir, "results/small/logs/predict/tiny.lora.big_count.seed0.log",
                            lora_predictions[0], root=repo) != 0
    jobs = planned_jobs(snakemake(workdir, "-n", root=repo))
    lora = {"model": "tiny", "method": "lora", "dataset": "big_count", "seed": "0"}
    assert ("predict_tuned", lora) in jobs
    assert ("score", {"model": "tiny", "run": "lora", "train": "big_count", "seed": "0"}) in jobs
    # 4. status: the lora cell is no result of this code, and a job of its chain failed.
    state, detail = status(workdir, root=repo)["lora"]
    assert state == "failed" and detail.startswith("rule predict_tuned failed") and "built under another plan" in detail


def test_a_generation_length_reaches_prediction_only(study, tmp_path):
    changed = small_config(tmp_path, lambda c: c["datasets"]["shapes_vqa"].update(max_new_tokens=6))
    dry_run = snakemake(study[0], "-n", configfile=changed)
    jobs = planned_jobs(dry_run)
    # tune_weights: small.yaml keeps no tuned weights (temp()), and predicting again needs them.
    assert rules(jobs) == sorted(["predict_zeroshot", "predict_tuned", "score", "tune_weights"] + AFTER_CELLS)
    assert [w["name"] for rule, w in jobs if rule == "predict_zeroshot"] == ["shapes_vqa"]
    reasons = re.findall(r"^rule tune_weights:\n(?:.*\n)*?\s*reason: (.*)$", dry_run, re.M)
    assert reasons and all(reason.startswith("Missing output files") for reason in reasons)


@pytest.mark.parametrize("edit", [lambda c: c["datasets"]["shapes_yesno"].update(primary="accuracy_plus"),
                                  lambda c: c["datasets"]["big_count"].update(metric="exact_match")],
                         ids=["primary", "metric"])
def test_a_datasets_primary_key_and_metric_reach_scoring_and_aggregation_only(study, tmp_path, edit):
    assert rules(planned_jobs(snakemake(study[0], "-n", configfile=small_config(tmp_path, edit)))) == \
        sorted(["score"] + AFTER_CELLS)


# ---- 4. status that cannot lie ---------------------------------------------------------------------

@pytest.mark.parametrize("edit,method,changed", [
    (lambda c: c["methods"]["last"].update(lr=4.0e-3), "last", "settings.lr 0.002 -> 0.004"),
    (lambda c: c["aggregation"].update(o="mean"), "lora", "o 'sum' -> 'mean'"),
], ids=["lr", "o_formula"])
def test_a_cell_built_under_another_plan_is_outdated(study, tmp_path, edit, method, changed):
    workdir = copy_of_study(study, tmp_path)
    cells = status(workdir, small_config(tmp_path, edit))
    state, detail = cells[method]
    # Snakemake's bookkeeping names the first output to rebuild; the cell's recorded plan digest, the key.
    assert state == "outdated" and f"; built under another plan ({changed}); as built: " in detail, detail
    if method == "last":
        assert cells["lora"][0] == "done"


def test_a_lock_is_live_only_while_its_snakemake_runs(study, tmp_path):
    """Snakemake's lock files name no process: one SIGKILLed leaves them. A cell counts as running
    while a Snakemake process works in the directory, and as interrupted once it is gone."""
    workdir = copy_of_study(study, tmp_path)
    longer = small_config(tmp_path, lambda c: c["tuning"].update(steps=5000))  # still running when killed
    run = start_snakemake(workdir, f"{LORA_RUN}/run.json", "--forcerun", "tune", configfile=longer)
    try:
        while not ((workdir / ".snakemake/locks").is_dir() and any((workdir / ".snakemake/incomplete").rglob("*"))):
            assert run.poll() is None, (workdir / "snakemake.out").read_text()[-3000:]
            time.sleep(0.1)
        state, detail = status(workdir, longer)["lora"]
        assert run.poll() is None
        assert state == "running" and detail.startswith("tuning seed 0"), detail
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert any((workdir / ".snakemake/locks").iterdir())  # left behind
    state, detail = status(workdir, longer)["lora"]
    assert state == "failed" and detail.startswith("interrupted") and "--rerun-incomplete" in detail


@contextlib.contextmanager
def full_disk(folder: Path):
    """A full file system (a tmpfs with no byte left) mounted at `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    try:
        with open(folder / "filler", "wb", buffering=0) as filler, contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 4096)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_fails_its_job_leaves_no_temporary_file_and_keeps_the_cell_from_done(study, tmp_path):
    """A change that rescores (big_count's protocol) on a disk with no room for lora's scores: that
    job fails with ENOSPC, no `*.tmp` stays, the other cells rebuild (--keep-going), and lora's old
    cell file is not taken for this plan's result."""
    workdir = copy_of_study(study, tmp_path)
    changed = small_config(tmp_path, lambda c: c["datasets"]["big_count"].update(protocol="llava"))
    scores = workdir / "results/small/scores/tiny/lora/big_count"
    shutil.rmtree(scores)  # so that the failing job frees no room by removing its old output
    with full_disk(scores):
        snakemake(workdir, "--keep-going", configfile=changed, check=False)
        assert not list((workdir / "results").rglob("*.tmp"))
    cells = status(workdir, changed)
    state, detail = cells["lora"]
    assert state == "failed" and "rule score failed: OSError: [Errno 28] No space left on device" in detail
    assert cells["last"][0] == "done"


# ---- 5. safe loading ---------------------------------------------------------------------------------

class Payload:
    """What a planted pickle runs when it is loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_planted_at_a_checkpoint_path_runs_nothing(tuning_inputs, tmp_path):
    marker = tmp_path / "code_ran"
    args = tune_args(tuning_inputs, "planted")
    planted = checkpoint_path(Path(args["run_path"]).parent)
    planted.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"step": 30, "payload": Payload(marker)}, planted)
    finished = start_tuning(args).wait(timeout=300)
    assert not marker.exists()
    assert finished == 0
    result = json.loads(Path(args["run_path"]).read_text())
    assert result["checkpoint"]["discarded"].startswith("it is no checkpoint this code wrote")
    first = train_log(args)[0]
    assert result["resumed_from_step"] is None and (first["step"], first["attempt"]) == (1, 0)


def test_nothing_the_package_reads_is_unpickled():
    """Every tensor file is safetensors; a torch.load, were one added, must say weights_only=True."""
    for path in (ROOT / "tunebench").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from) (pickle|dill|joblib)\b", text, re.M), path
        assert all("weights_only=True" in call for call in re.findall(r"torch\.load\(([^)]*)\)", text)), path


def own_images(tmp_path: Path) -> list[Path]:
    """4 PNG files drawn by the synthetic world, in tmp_path/images."""
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    for r in world.generate("attribute", 4, seed=3, split="test"):
        (folder / f"{r['id']}.png").write_bytes(r["image"])
    return sorted(folder.glob("*.png"))


def own_split(tmp_path: Path, lines: list[str], suffix: str = ".jsonl", **entry) -> dict:
    """A bring-your-own test split of these lines (images in tmp_path/images), as a datasets entry."""
    path = tmp_path / f"test{suffix}"
    path.write_text("\n".join(lines) + "\n")
    return {"task_type": "exact", "metric": "exact_match",
            "test": {"source": "local", "path": str(path), "images": str(tmp_path / "images")}, **entry}


def good_rows(images: list[Path]) -> list[str]:
    return [json.dumps({"id": f"r{i}", "image": p.name, "question": "What color?", "answer": "red"})
            for i, p in enumerate(images)]


def refused(entry: dict) -> str:
    with pytest.raises(sources.DatasetError) as err:
        sources.prepare("own", entry, "test", 0)
    return str(err.value)


@pytest.mark.parametrize("image", ["../secret.png", "/etc/hostname", "sub/../../secret.png"])
def test_an_image_path_outside_the_images_folder_is_refused_naming_the_row(tmp_path, image):
    Image.new("RGB", (4, 4)).save(tmp_path / "secret.png")
    own_images(tmp_path)
    entry = own_split(tmp_path, [json.dumps({"id": "x1", "image": image, "question": "q?", "answer": "a"})])
    assert refused(entry) == (f"dataset 'own', split 'test', row 'x1': image path {image!r} is outside the images "
                              f"folder {str(tmp_path / 'images')!r}")


# ---- 6. config values --------------------------------------------------------------------------------

@pytest.mark.parametrize("edit,message", [
    (lambda c: c["methods"]["last"].update(lr=float("nan")), "config key methods.last.lr: nan is not a finite number"),
    (lambda c: c["methods"]["last"].update(lr=float("inf")), "config key methods.last.lr: inf is not a finite number"),
    (lambda c: c["datasets"]["shapes_caption"].update(scale=float("nan")),
     "config key datasets.shapes_caption.scale: nan is not a finite number"),
    (lambda c: c["tuning"].update(replay=float("nan")), "config key tuning.replay: nan is not a finite number"),
    (lambda c: c["tuning"].pop("batch_size"), "config key methods.lora: no batch_size for model 'tiny'"),
    (lambda c: c.update(study=".."), "config key study: '..' does not match"),  # results/.. is the repository
    (lambda c: c["models"].update({"..": c["models"]["tiny"]}), "config key models: '..' does not match"),
], ids=["lr_nan", "lr_inf", "scale_nan", "replay_nan", "no_batch_size", "study_path", "model_path"])
def test_values_that_would_fail_later_or_silently_are_refused_when_the_config_is_read(edit, message):
    config = yaml.safe_load(SMALL.read_text())
    edit(config)
    with pytest.raises(study_config.ConfigError) as err:
        study_plan.build(config)
    assert message in str(err.value)


def test_a_duplicate_key_in_a_config_file_is_refused_naming_the_file_the_key_and_both_lines(tmp_path):
    text = SMALL.read_text() + "tuning: {steps: 8}\n"  # a second tuning block: YAML would drop the first's keys
    configfile = tmp_path / "twice.yaml"
    configfile.write_text(text)
    first = text.splitlines().index(next(line for line in text.splitlines() if line.startswith("tuning:"))) + 1
    message = f"{configfile}: key tuning is given twice, on lines {first} and {len(text.splitlines())}"
    assert message in snakemake(tmp_path, "-n", configfile=configfile, check=False)
    done = subprocess.run([sys.executable, "-m", "tunebench.cli", "status", "--configfile", str(configfile)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and message in done.stderr
    nested = tmp_path / "nested.yaml"
    nested.write_text("methods:\n  lora:\n    kind: lora\n    lr: 1.0e-2\n    lr: 1.0e-3\n")
    assert study_config.duplicate_keys(nested) == [
        f"{nested}: key methods.lora.lr is given twice, on lines 4 and 5 (YAML would keep the last one and drop "
        "the first)"]


# ---- 7. data faults ---------------------------------------------------------------------------------

def test_a_malformed_jsonl_line_is_named_by_its_line_and_skippable(tmp_path):
    lines = good_rows(own_images(tmp_path))
    lines[2] = lines[2].replace('", "', '" "', 1)  # a comma lost
    lines.insert(1, "[1, 2]")  # an array, not a row
    entry = own_split(tmp_path, lines)
    assert refused(entry) == "dataset 'own', split 'test', row 'line 2': an array, not an object"
    _, manifest = sources.prepare("own", {**entry, "skip_bad_rows": True}, "test", 0)
    with pytest.raises(json.JSONDecodeError) as err:
        json.loads(lines[3])
    assert manifest["records"] == 3 and manifest["skipped_rows"] == [
        {"row": "line 2", "reason": "an array, not an object"},
        {"row": "line 4", "reason": f"not valid JSON in {entry['test']['path']!r}: Expecting ',' delimiter "
                                    f"(column {err.value.colno})"}]


def test_a_csv_line_with_other_fields_than_its_header_is_named_by_its_line(tmp_path):
    image = own_images(tmp_path)[0].name
    lines = ["id,image,question,answer", f"r0,{image},What color?,red", f"r1,{image},What color?,red,extra", "r2,x"]
    entry = own_split(tmp_path, lines, suffix=".csv")
    _, manifest = sources.prepare("own", {**entry, "skip_bad_rows": True}, "test", 0)
    csv_path = entry["test"]["path"]
    assert manifest["records"] == 1 and manifest["skipped_rows"] == [
        {"row": "line 3", "reason": f"5 fields in {csv_path!r}, its header has 4"},
        {"row": "line 4", "reason": f"2 fields in {csv_path!r}, its header has 4"}]


def test_empty_and_non_image_files_are_named_without_memory_addresses(tmp_path):
    images = own_images(tmp_path)
    entry = own_split(tmp_path, good_rows(images), skip_bad_rows=True)
    images[0].write_bytes(b"")
    images[1].write_text("a text file called .png")
    _, manifest = sources.prepare("own", entry, "test", 0)
    assert [r["reason"] for r in manifest["skipped_rows"]] == [
        f"empty image file {str(images[0])!r}", f"not an image (PNG/JPEG/... as Pillow reads them): image file "
                                                 f"{str(images[1])!r}"]
    assert not re.search(r"0x[0-9a-f]{6}", json.dumps(manifest)) and sources.prepare("own", entry, "test", 0)[1] == manifest


def test_an_image_over_the_pixel_limit_is_refused_naming_the_row(tmp_path):
    images = own_images(tmp_path)
    entry = own_split(tmp_path, good_rows(images), max_image_pixels=1000)
    first = images[0]
    assert refused(entry) == (f"dataset 'own', split 'test', row 'r0': over the pixel limit: image file "
                              f"{str(first)!r} is 48x48 = 2,304 pixels, more than max_image_pixels 1,000")
    assert sources.prepare("own", {**entry, "max_image_pixels": 2304}, "test", 0)[1]["records"] == 4


def test_a_restarted_job_removes_what_a_killed_attempt_left(study, tmp_path):
    """A job killed mid-write leaves `<output>.tmp` (a checkpoint's can hold a whole optimizer
    state). Its next start removes them, even when it then fails, or writes no checkpoint."""
    workdir = copy_of_study(study, tmp_path)
    cell_tmp = workdir / "results/small/cells/tiny/lora/big_count.json.tmp"
    cell_tmp.write_text("{half a cell")
    (workdir / "results/small/scores/tiny/lora/big_count/seed0.json").write_text("{")  # the cell job will fail
    snakemake(workdir, "results/small/cells/tiny/lora/big_count.json", "--forcerun", "cell", check=False)
    assert not cell_tmp.exists()
    checkpoint_tmp = workdir / f"{LORA_RUN}.checkpoint.safetensors.tmp"
    checkpoint_tmp.write_bytes(b"\0" * 4096)
    snakemake(workdir, f"{LORA_RUN}/run.json", "--forcerun", "tune", "--config", "checkpoint_every=0")
    assert not checkpoint_tmp.exists()


# ---- 8. preemption on a real cluster ------------------------------------------------------------------

def test_a_cancelled_slurm_tune_job_is_retried_resumes_and_ends_as_an_uninterrupted_run(tmp_path):
    """`scancel` of a running tune job (as a preemption or a node failure ends it): the profile's
    retries run it again, it resumes from its checkpoint, and ends as the same run uninterrupted."""
    completion_log = require_slurm()
    steps, every = 200, 10
    configfile = small_config(tmp_path, lambda c: c.update(methods={"last": {"kind": "last", "lr": 2.0e-3, "steps": steps}},
                                                            checkpoint_every=every, keep_tuned_weights=True))
    workdir = tmp_path / "slurm"
    write_own_data(workdir)
    run_dir = workdir / "results/small/tune/tiny/last/big_count/seed0"
    prefix = f"tbfault{uuid.uuid4().hex[:8]}"
    run = start_snakemake(workdir, f"{run_dir.relative_to(workdir)}/run.json", "--profile", str(ROOT / "slurm"),
                          "--slurm-no-account", "--slurm-jobname-prefix", prefix,
                          "--slurm-init-seconds-before-status-checks", "2", "--set-resources",
                          "pretrain:gpu=0", "tune_weights:gpu=0", "tune_weights:mem_mb=1500", "tune_weights:runtime=10",
                          configfile=configfile)
    out = workdir / "snakemake.out"
    checkpoint = checkpoint_path(run_dir)
    while not checkpoint.exists():
        assert run.poll() is None, out.read_text()[-5000:]
        time.sleep(0.1)
    cancelled = re.search(r"SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_tune_weights/", out.read_text()).group(1)
    subprocess.run(["scancel", cancelled], check=True)
    assert run.wait(timeout=900) == 0, out.read_text()[-8000:]

    resumed = json.loads((run_dir / "run.json").read_text())
    start = resumed["resumed_from_step"]
    assert start and start % every == 0 and resumed["checkpoint"]["resumed_from_step"] == start
    log = train_log({"run_path": str(run_dir / "run.json")})
    assert [r["step"] for r in log] == list(range(1, steps + 1))
    assert {r["attempt"] for r in log[:start]} == {0} and {r["attempt"] for r in log[start:]} == {1}
    states = {}
    with open(completion_log) as records:
        for line in records:
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            if fields.get("Name", "").startswith(prefix):
                states[fields["JobId"]] = fields["JobState"]
    assert states[cancelled] == "CANCELLED"

    # The same run, uninterrupted, on the same base model and data (locally).
    again = tmp_path / "again"
    shutil.copytree(workdir, again, symlinks=True)
    shutil.rmtree(again / run_dir.relative_to(workdir))
    snakemake(again, f"{run_dir.relative_to(workdir)}/run.json", configfile=configfile)
    uninterrupted = again / run_dir.relative_to(workdir)
    assert [r["loss"] for r in log] == [r["loss"] for r in train_log({"run_path": str(uninterrupted / "run.json")})]
    weights, expected = load_file(run_dir / "tuned_weights.safetensors"), load_file(uninterrupted / "tuned_weights.safetensors")
    assert weights.keys() == expected.keys() and all((weights[k] == expected[k]).all() for k in weights)
