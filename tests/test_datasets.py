"""The paper's datasets end to end: a tiny copy in each public schema -> prepare (Hub-style folder
through load_dataset, and save_to_disk through load_from_disk) -> predict with the tiny model ->
score, through the same code the workflow runs; plus LLaVA JSON, bring-your-own files and every
kind of bad input."""

import io
import json
import re

import datasets as hf
import pytest
from PIL import Image
from public_fixtures import (
    PUBLIC,
    disk_spec,
    hub_spec,
    img,
    picture,
    write_disk_folder,
    write_hub_folder,
    write_own,
)

from tunebench import plan as study_plan
from tunebench.config import ConfigError
from tunebench.data import formats, schema, sources
from tunebench.data.world import CAPTION_PROMPT, CHOICE_INSTRUCTION, SHORT_INSTRUCTION
from tunebench.evaluation import prediction, scoring
from tunebench.evaluation.metrics import cider_tokenizer
from tunebench.files import read_json, write_jsonl
from tunebench.stages import prepare as prepare_stage

pytestmark = pytest.mark.usefixtures("hf_cache")


def short(q):
    return f"{q}\n{SHORT_INSTRUCTION}"


# What each dataset's first records must look like after conversion (the protocol's prompt included).
EXPECTED = {
    "scienceqa": lambda rs: (
        rs[0]["question"] == "Context: A farm.\nWhich animal is shown 0?\nA. cat\nB. dog\nC. bird\n" + CHOICE_INSTRUCTION
        and rs[0]["answers"] == ["B"] and rs[0]["choices"] == ["cat", "dog", "bird"] and rs[0]["task_type"] == "choice"
        and rs[1]["question"].startswith("Which animal is shown 1?\nA. cat") and rs[2]["answers"] == ["C"]
        and rs[2]["category"] == "language science"),
    "iconqa": lambda rs: (
        len(rs) == 2 and rs[0]["choices"] == ["3", "5", "7"] and rs[0]["answers"] == ["B"]
        and rs[1]["choices"] == ["red", "blue"] and rs[1]["answers"] == ["A"] and rs[0]["id"] == "q0"
        and rs[0]["question"] == formats.ICONQA_PROMPT.format(question="How many dots 0?", options="A. 3\nB. 5\nC. 7")
        and "B.  blue" in rs[1]["question"]),  # lmms-eval splits "red, blue" on "," and keeps the space
    "rsvqa_lr": lambda rs: (
        [r["category"] for r in rs] == ["presence", "comparison", "rural_urban", "count"]
        and rs[3]["answers"] == ["12"] and rs[0]["question"] == short("Is there a road?")),
    "pathvqa": lambda rs: (
        [r["category"] for r in rs] == ["yes/no", "open", "yes/no"] and rs[1]["answers"] == ["granuloma"]),
    "flickr30k": lambda rs: (
        len(rs) == 3 and all(r["question"] == CAPTION_PROMPT and len(r["answers"]) == 5 for r in rs)
        and rs[0]["image_id"] == "0" and rs[0]["task_type"] == "caption"),
    "okvqa": lambda rs: (
        rs[0]["id"] == "2971475" and rs[0]["answers"] == ["Two"] * 10
        and rs[0]["question"] == "How many people are there?" + formats.OKVQA_POST_PROMPT
        and "respond with 'Unanswerable'" in rs[0]["question"] and rs[0]["task_type"] == "vqa"),
    "gqa": lambda rs: (
        [r["image_id"] for r in rs] == ["n1", "n1", "n2"] and rs[0]["id"] == "200" and rs[2]["answers"] == ["left"]
        and rs[0]["image"] == rs[1]["image"] != rs[2]["image"] and rs[1]["category"] == "verify"),
    "textvqa": lambda rs: (
        rs[0]["question"] == short("What is the brand?\nReference OCR token: NOKIA, 5") and len(rs[0]["answers"]) == 10),
    "ocrvqa": lambda rs: (
        len(rs) == 4 and [r["id"] for r in rs] == ["000123-0", "000123-1", "000123-2", "010123-0"]
        and rs[2]["answers"] == ["Yes"] and rs[3]["question"] == short("What is the genre of this book?")
        and rs[0]["image_id"] == rs[2]["image_id"] == "000123"),
    "coco_caption": lambda rs: (
        len(rs) == 3 and rs[0]["id"] == "COCO_val2014_000000000.jpg" and rs[0]["question"] == CAPTION_PROMPT
        and len(rs[0]["answers"]) == 5),
    "mme": lambda rs: (
        len(rs) == 6 and rs[0]["question"] == short("Is there a train in this image?")
        and [r["answers"] for r in rs[:2]] == [["yes"], ["no"]] and rs[0]["image_id"] == rs[2]["image_id"]
        and rs[4]["category"] == "code_reasoning" and rs[0]["task_type"] == "yesno"),
}
# The primary score of answering every question with its (first) reference.
GOLD = {"mme": 600.0}  # 3 categories x (acc 100 + acc+ 100); every other metric 100, CIDEr > 0


def prepared(tmp_path, name, entry, split="test"):
    frame, manifest = sources.prepare(name, entry, split, seed=0)
    path = tmp_path / "data" / name / f"{split}.parquet"
    schema.write_split(frame, path)
    return path, schema.read_split(path), manifest


def scored(tmp_path, plan, name, test_path, outputs, tag):
    records = schema.read_split(test_path)
    preds = tmp_path / "predictions" / tag / f"{name}.jsonl"
    write_jsonl([{"id": r["id"], "prompt": r["question"], "output": o} for r, o in zip(records, outputs)], preds)
    job = plan.score_job([name])[name]
    return scoring.score_predictions(name, job, preds, test_path)


def study_config(name, entry):
    """The resolved plan of a study holding `entry` as an upstream set."""
    down = {"source": "synthetic", "task": "big_colour", "metric": "exact_match", "train_images": 1, "test_images": 2}
    return study_plan.build({
        "study": "t", "seeds": [0], "models": {"m": {"family": "llava_onevision", "source": "hf", "path": "x"}},
        "datasets": {name: entry, "down": down}, "upstream": [name], "downstream": ["down"],
        "tuning": {"steps": 1, "batch_size": 1}, "methods": {"last": {"kind": "last", "lr": 1e-3}},
    })


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_dataset_prepare_predict_score(tmp_path, shared_tiny_model, name):
    public = PUBLIC[name]()
    hub = write_hub_folder(tmp_path / "hub" / name, public)
    disk = write_disk_folder(tmp_path / "disk" / name, public)
    where = public.extra.get("where")
    entry = {**public.entry, "test": {**hub_spec(hub, public), **({"where": where} if where else {})},
             "train": {**disk_spec(disk, public), **({"where": where} if where else {})}}
    config = study_config(name, entry)

    test_path, records, manifest = prepared(tmp_path, name, entry, "test")
    assert EXPECTED[name](records), records[:2]
    assert all(r["split"] == "test" for r in records)
    for r in records:
        Image.open(io.BytesIO(r["image"])).load()
    # one record per public row, unless the format makes several (OCR-VQA) or filters (IconQA)
    assert manifest["records"] == len(records) == public.extra.get("records", len(public.rows))
    assert manifest["skipped"] == 0 and manifest["source"]["source"] == "hf"

    # save_to_disk copy, read as the train split: the same records.
    _, train_records, _ = prepared(tmp_path, name, entry, "train")
    assert [{k: v for k, v in r.items() if k != "split"} for r in train_records] == \
        [{k: v for k, v in r.items() if k != "split"} for r in records]

    model, processor = shared_tiny_model
    outputs = [p["output"] for p in prediction.predict(model, processor, records, batch_size=4, max_new_tokens=3)]
    result = scored(tmp_path, config, name, test_path, outputs, "tiny")
    assert result["scores"]["n"] == len(records) and result["primary"] in result["scores"]
    # Which caption tokenizer scored (a study resumed elsewhere must not mix them), and how letters were read.
    assert result["tokenizer"] == (cider_tokenizer() if public.entry["metric"] == "cider" else None)
    assert result["protocol"] == "lmms_eval" and result["notes"] == []
    gold = scored(tmp_path, config, name, test_path, [r["answers"][0] for r in records], "gold")
    primary = gold["scores"][gold["primary"]]
    if public.entry["metric"] == "cider":
        assert primary > result["scores"]["cider"] and primary > 0
    else:
        assert primary == pytest.approx(GOLD.get(name, 100.0))


def test_bring_your_own_jsonl_and_csv(tmp_path, shared_tiny_model):
    for kind in ("jsonl", "csv"):
        spec = write_own(tmp_path / kind, kind)
        entry = {"task_type": "exact", "metric": "exact_match", "train": spec, "test": spec}
        test_path, records, manifest = prepared(tmp_path / kind, "chd", entry)
        assert [r["id"] for r in records] == ["p0", "p1"]
        assert records[1]["question"] == short("Which chamber is affected?")
        assert records[1]["answers"] == ["left ventricle"] and records[0]["image"] == picture(0)
        config = study_config("chd", entry)
        model, processor = shared_tiny_model
        outputs = [p["output"] for p in prediction.predict(model, processor, records, batch_size=4, max_new_tokens=3)]
        assert scored(tmp_path, config, "chd", test_path, outputs, kind)["scores"]["n"] == 2
        gold = scored(tmp_path, config, "chd", test_path, ["Yes", "left ventricle."], kind + "gold")
        assert gold["scores"]["accuracy"] == 100.0


def test_bring_your_own_choice_answers_become_letters(tmp_path):
    (tmp_path / "a.png").write_bytes(picture(0))
    rows = [{"id": "1", "image": "a.png", "question": "Which?", "choices": ["x", "y"], "answer": "y"},
            {"id": "2", "image": "a.png", "question": "Which?", "choices": ["x", "y"], "answer": "A"}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"source": "local", "path": str(tmp_path / "d.jsonl")}
    _, records, _ = prepared(tmp_path, "own", {"task_type": "choice", "metric": "choice_accuracy", "test": spec})
    assert [r["answers"] for r in records] == [["B"], ["A"]]
    assert records[0]["question"] == f"Which?\nA. x\nB. y\n{CHOICE_INSTRUCTION}"


def test_llava_json(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "1.jpg").write_bytes(picture(1, "JPEG"))
    question = f"<image>\nContext: x\nWhat is it?\nA. cat\nB. dog\n{CHOICE_INSTRUCTION}"
    choice = [{"id": "s1", "image": "1.jpg", "conversations": [{"from": "human", "value": question},
                                                               {"from": "gpt", "value": "B"}]}]
    short_answers = [{"id": "v1", "image": "1.jpg", "conversations": [
        {"from": "human", "value": f"<image>\nWhat color?\n{SHORT_INSTRUCTION}"}, {"from": "gpt", "value": "Red"},
        {"from": "human", "value": f"How many?\n{SHORT_INSTRUCTION}"}, {"from": "gpt", "value": "2"}]}]
    specs = {}
    for name, data in (("sqa", choice), ("vqa", short_answers)):
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
        specs[name] = {"source": "llava", "path": str(tmp_path / f"{name}.json"), "images": str(tmp_path / "imgs")}
    _, records, _ = prepared(tmp_path, "sqa", {"format": "scienceqa", "metric": "choice_accuracy", "test": specs["sqa"]})
    assert records[0]["question"] == question.removeprefix("<image>\n")
    assert records[0]["choices"] == ["cat", "dog"] and records[0]["answers"] == ["B"] and records[0]["id"] == "s1-0"
    _, records, _ = prepared(tmp_path, "vqa", {"task_type": "exact", "metric": "exact_match", "test": specs["vqa"]})
    assert [(r["id"], r["answers"], r["task_type"]) for r in records] == [("v1-0", ["Red"], "exact"),
                                                                         ("v1-1", ["2"], "exact")]
    assert records[1]["question"] == short("How many?") and records[0]["image"] == picture(1, "JPEG")


def test_rsvqa_original_release(tmp_path):
    """RSVQA-LR as released on Zenodo: questions/answers/images JSON and GeoTIFF images."""
    (tmp_path / "Images_LR").mkdir()
    for i in (0, 1):
        Image.new("RGB", (16, 16), (10 * i, 90, 30)).save(tmp_path / "Images_LR" / f"{i}.tif")
    questions = [{"id": 0, "img_id": 0, "type": "presence", "question": "Is there a road?", "answers_ids": [0],
                  "active": True, "date_added": 0, "people_id": 0},
                 {"id": 1, "img_id": 0, "type": "count", "question": "How many buildings?", "answers_ids": [1],
                  "active": False, "date_added": 0, "people_id": 0},
                 {"id": 2, "img_id": 1, "type": "rural_urban", "question": "Is it a rural or an urban area?",
                  "answers_ids": [2], "active": True, "date_added": 0, "people_id": 0}]
    answers = [{"id": k, "question_id": k, "answer": a, "active": True, "date_added": 0, "people_id": 0}
               for k, a in enumerate(["yes", "12", "rural"])]
    (tmp_path / "LR_split_train_questions.json").write_text(json.dumps({"questions": questions}))
    (tmp_path / "LR_split_train_answers.json").write_text(json.dumps({"answers": answers}))
    spec = {"source": "rsvqa_release", "path": str(tmp_path / "LR_split_train_questions.json"),
            "images": str(tmp_path / "Images_LR")}
    _, records, _ = prepared(tmp_path, "rsvqa_lr", {"metric": "exact_match", "train": spec}, "train")
    assert [(r["id"], r["image_id"], r["category"], r["answers"]) for r in records] == [
        ("0", "0", "presence", ["yes"]), ("2", "1", "rural_urban", ["rural"])]
    assert records[1]["question"] == short("Is it a rural or an urban area?")
    assert Image.open(io.BytesIO(records[0]["image"])).format == "PNG"
    (tmp_path / "Images_LR" / "1.tif").unlink()
    with pytest.raises(sources.DatasetError, match=r"dataset 'rsvqa_lr', split 'train', row '2': image file .*1.tif' not found"):
        sources.prepare("rsvqa_lr", {"metric": "exact_match", "train": spec}, "train", 0)


def test_iconqa_original_release(tmp_path):
    """IconQA as released: problems.json, pid_splits.json, iconqa/<split>/<type>/<pid>/image.png."""
    problems = {"11": {"question": "Which is bigger?", "choices": ["cat", "dog"], "answer": 1, "ques_type": "choose_txt",
                       "grade": "grade1", "label": "", "skills": []},
                "12": {"question": "How many?", "answer": "3", "ques_type": "fill_in_blank", "grade": "grade1"},
                "13": {"question": "Pick one.", "choices": ["a", "b", "c"], "answer": 0, "ques_type": "choose_txt"}}
    (tmp_path / "problems.json").write_text(json.dumps(problems))
    (tmp_path / "pid_splits.json").write_text(json.dumps({"choose_txt_train": ["11", "13"], "fill_in_blank_train": ["12"]}))
    for pid in ("11", "13"):
        folder = tmp_path / "iconqa" / "train" / "choose_txt" / pid
        folder.mkdir(parents=True)
        (folder / "image.png").write_bytes(picture(int(pid)))
    spec = {"source": "iconqa_release", "path": str(tmp_path), "split": "train"}
    _, records, _ = prepared(tmp_path, "iconqa", {"format": "iconqa", "metric": "choice_accuracy", "train": spec}, "train")
    assert [(r["id"], r["answers"], r["choices"]) for r in records] == [("11", ["B"], ["cat", "dog"]),
                                                                       ("13", ["A"], ["a", "b", "c"])]
    assert records[0]["question"] == formats.ICONQA_PROMPT.format(question="Which is bigger?", options="A. cat\nB. dog")
    assert records[1]["image"] == picture(13)
    with pytest.raises(sources.DatasetError, match=r"dataset 'iconqa', split 'train': .*pid_splits.json' has no 'choose_txt_val'"):
        sources.prepare("iconqa", {"format": "iconqa", "metric": "choice_accuracy", "train": {**spec, "split": "val"}},
                         "train", 0)


def pairs(records):
    return sorted((r["category"], r["image_id"], r["answers"][0]) for r in records)


def test_max_samples_is_a_seeded_subset_of_whole_mme_pairs(tmp_path):
    public = PUBLIC["mme"]()
    hub = write_hub_folder(tmp_path / "hub", public)
    entry = {**public.entry, "test": {**hub_spec(hub, public), "max_samples": 4}}
    _, first, manifest = prepared(tmp_path, "mme", entry)
    _, again, _ = prepared(tmp_path, "mme", entry)
    frame, _ = sources.prepare("mme", entry, "test", seed=3)
    assert len(first) == 4 and [r["id"] for r in first] == [r["id"] for r in again]
    assert manifest["records"] == 4 and manifest["rows_available"] == 6
    assert frame["id"].to_list() != [r["id"] for r in first]
    # Every image keeps both its questions (acc+ pairs them), in every subset.
    for records in (first, frame.to_dicts()):
        assert {(c, i) for c, i, _ in pairs(records)} and [a for *_, a in pairs(records)] == ["no", "yes"] * 2
    # An odd max_samples never breaks a pair: fewer questions, not half a pair.
    entry["test"]["max_samples"] = 3
    _, odd, _ = prepared(tmp_path, "mme", entry)
    assert len(odd) == 2 and [a for *_, a in pairs(odd)] == ["no", "yes"]


def test_a_skipped_mme_row_drops_its_pair(tmp_path):
    entry = with_rows(tmp_path, PUBLIC["mme"](), lambda rows: rows[2].update(image=None), skip=True)
    frame, manifest = sources.prepare("mme", entry, "test", 0)
    assert frame["id"].to_list() == ["0", "1", "4", "5"]  # count's pair (rows 2, 3) is gone
    assert manifest["skipped_rows"] == [{"row": "2", "reason": "missing image"},
                                        {"row": "3", "reason": "its pair lost a row"}]


# ---- bad input: a clear error naming dataset, split and row, or skipped and listed ----------

def with_rows(tmp_path, public, mutate, skip=False):
    mutate(public.rows)
    disk = write_disk_folder(tmp_path / "disk", public)
    return {**public.entry, "skip_bad_rows": skip, "test": disk_spec(disk, public)}


def test_missing_image_is_named(tmp_path):
    entry = with_rows(tmp_path, PUBLIC["pathvqa"](), lambda rows: rows[1].update(image=None))
    with pytest.raises(sources.DatasetError, match=r"dataset 'pathvqa', split 'test', row '1': missing image"):
        sources.prepare("pathvqa", entry, "test", 0)


def test_undecodable_image_is_named(tmp_path):
    entry = with_rows(tmp_path, PUBLIC["mme"](), lambda rows: rows[2].update(image={"bytes": b"not a png", "path": None}))
    with pytest.raises(sources.DatasetError, match=r"dataset 'mme', split 'test', row '2': not an image \(PNG/JPEG"):
        sources.prepare("mme", entry, "test", 0)


def test_missing_image_file_is_named(tmp_path):
    spec = write_own(tmp_path, "jsonl")
    (tmp_path / "images" / "scan1.png").unlink()
    with pytest.raises(sources.DatasetError, match=r"dataset 'chd', split 'test', row 'p1': image file .*scan1.png' not found"):
        sources.prepare("chd", {"task_type": "exact", "metric": "exact_match", "test": spec}, "test", 0)


def test_row_without_answer_is_named(tmp_path):
    entry = with_rows(tmp_path, PUBLIC["pathvqa"](), lambda rows: rows[2].update(answer=""))
    with pytest.raises(sources.DatasetError, match=r"dataset 'pathvqa', split 'test', row '2': no 'answer'"):
        sources.prepare("pathvqa", entry, "test", 0)
    entry = with_rows(tmp_path / "o", PUBLIC["okvqa"](), lambda rows: rows[0].update(answers=[]))
    with pytest.raises(sources.DatasetError, match=r"dataset 'okvqa', split 'test', row '2971475': no 'answers'"):
        sources.prepare("okvqa", entry, "test", 0)


def test_unexpected_choices_are_named(tmp_path):
    entry = with_rows(tmp_path / "a", PUBLIC["iconqa"](), lambda rows: rows[1].update(answer="green"))
    with pytest.raises(sources.DatasetError, match=r"dataset 'iconqa', split 'test', row 'q1': answer 'green' is "
                                                    r"neither an option letter nor one of the choices \['red', 'blue'\]"):
        sources.prepare("iconqa", entry, "test", 0)
    entry = with_rows(tmp_path / "b", PUBLIC["scienceqa"](), lambda rows: rows[0].update(answer=5))
    with pytest.raises(sources.DatasetError, match=r"dataset 'scienceqa', split 'test', row '0': answer index 5 is "
                                                    r"outside the 3 choices"):
        sources.prepare("scienceqa", entry, "test", 0)
    entry = with_rows(tmp_path / "c", PUBLIC["scienceqa"](), lambda rows: rows[1].update(choices=[]))
    with pytest.raises(sources.DatasetError, match=r"row '1': a multiple-choice row has no choices"):
        sources.prepare("scienceqa", entry, "test", 0)
    entry = with_rows(tmp_path / "d", PUBLIC["ocrvqa"](), lambda rows: rows[1].update(answers=["a", "b"]))
    with pytest.raises(sources.DatasetError, match=r"row '010123': 1 questions but 2 answers"):
        sources.prepare("ocrvqa", entry, "test", 0)


def test_unknown_split_is_named(tmp_path):
    public = PUBLIC["okvqa"]()
    hub = write_hub_folder(tmp_path / "hub", public)
    entry = {**public.entry, "test": {**hub_spec(hub, public), "split": "validation"}}
    with pytest.raises(sources.DatasetError, match=r"dataset 'okvqa', split 'test': cannot load .*split 'validation'.*"
                                                    r"Unknown split \"validation\". Should be one of \['val2014'\]"):
        sources.prepare("okvqa", entry, "test", 0)
    disk = write_disk_folder(tmp_path / "disk", public)
    entry = {**public.entry, "test": {**disk_spec(disk, public), "split": "validation"}}
    with pytest.raises(sources.DatasetError, match=r"dataset 'okvqa', split 'test': .* has no split 'validation'; "
                                                    r"it has \['val2014'\]"):
        sources.prepare("okvqa", entry, "test", 0)
    with pytest.raises(sources.DatasetError, match=r"dataset 'okvqa': unknown split 'dev'"):
        sources.prepare("okvqa", entry, "dev", 0)
    with pytest.raises(sources.DatasetError, match=r"dataset 'okvqa': no source for split 'train'"):
        sources.prepare("okvqa", entry, "train", 0)


def test_unknown_dataset_id_is_named_offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(hf.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    entry = {"format": "okvqa", "metric": "vqa_accuracy", "test": {"source": "hf", "path": "no-such-org/no-such-set"}}
    with pytest.raises(sources.DatasetError, match=r"dataset 'okvqa', split 'test': cannot load 'no-such-org/no-such-set'"
                                                    r".*OfflineModeIsEnabled"):
        sources.prepare("okvqa", entry, "test", 0)


def test_a_datasets_protocol_picks_how_letters_are_read(tmp_path):
    public = PUBLIC["scienceqa"]()
    entry = {**public.entry, "test": hub_spec(write_hub_folder(tmp_path / "hub", public), public)}
    test_path, records, _ = prepared(tmp_path, "scienceqa", entry)
    outputs = [f"The answer is {r['answers'][0]}." for r in records]  # LLaVA's form; lmms-eval reads no letter
    for protocol, expected in (("lmms_eval", 0.0), ("llava", 100.0)):
        config = study_config("scienceqa", {**entry, "protocol": protocol})
        result = scored(tmp_path, config, "scienceqa", test_path, outputs, protocol)
        assert (result["protocol"], result["scores"]["accuracy"]) == (protocol, expected)
    with pytest.raises(ConfigError, match=r"config key datasets.scienceqa.protocol: 'openai' is not one of"):
        study_config("scienceqa", {**entry, "protocol": "openai"})


# ---- schema faults: one error before any row is converted ------------------------------------

def without(public, column, renamed=None):
    """`public` with `column` dropped (or renamed) in its features and every row."""
    for part in (public.features, *public.rows):
        value = part.pop(column)
        if renamed:
            part[renamed] = value
    return public


def schema_fault(tmp_path, name, public, expected_column, reader, **spec):
    hub = write_hub_folder(tmp_path / name, public)
    test = {**hub_spec(hub, public), **spec}
    columns = sorted(public.features)
    source = f"source hf {test['path']!r} (" + ", ".join(f"{k} {test[k]!r}" for k in ("name", "split") if k in test)
    message = (f"dataset {name!r}, split 'test', {source}): no column {expected_column} ({reader} reads it); "
               f"the source has columns {columns}")
    with pytest.raises(sources.DatasetError) as err:
        sources.prepare(name, {**public.entry, "test": test}, "test", 0)
    assert str(err.value) == message


@pytest.mark.parametrize("name, column, renamed", [
    ("okvqa", "question", "query"),  # a renamed column
    ("gqa", "imageId", "image_id"),
    ("pathvqa", "image", None),  # a missing image column, not a "missing image" per row
    ("mme", "category", None),
    ("scienceqa", "hint", "context"),
])
def test_a_missing_column_is_one_error_naming_it(tmp_path, name, column, renamed):
    public = without(PUBLIC[name](), column, renamed)
    schema_fault(tmp_path, name, public, repr(column), f"format {public.entry['format']!r}")


def test_a_caption_source_needs_one_of_its_reference_columns(tmp_path):
    public = without(PUBLIC["coco_caption"](), "answer", "captions")
    schema_fault(tmp_path, "coco_caption", public, "'caption' or 'answer'", "format 'caption'")


def test_gqas_images_config_without_images_is_one_error(tmp_path):
    public = PUBLIC["gqa"]()
    without(public.images, "image", "picture")
    hub = write_hub_folder(tmp_path / "gqa", public)
    with pytest.raises(sources.DatasetError, match=re.escape(
            f"dataset 'gqa', split 'test', source hf {str(hub)!r} (name 'testdev_balanced_images', split 'testdev'): "
            "no column 'image' (GQA's images config reads it); the source has columns ['id', 'picture']")):
        sources.prepare("gqa", {**public.entry, "test": hub_spec(hub, public)}, "test", 0)


def test_where_on_a_column_the_split_lacks_is_one_error(tmp_path):
    public = PUBLIC["flickr30k"]()
    schema_fault(tmp_path, "flickr30k", public, "'karpathy_split'", "`where:`", where={"karpathy_split": "test"})


def test_a_bring_your_own_file_without_answers_is_one_error(tmp_path):
    spec = write_own(tmp_path, "csv")
    path = tmp_path / "train.csv"
    path.write_text(path.read_text().replace("answer", "label"))
    with pytest.raises(sources.DatasetError, match=re.escape(
            f"dataset 'chd', split 'test', source local {str(path)!r}: no column 'answer' or 'answers' (source local "
            "reads it); the source has columns ['id', 'image', 'label', 'question']")):
        sources.prepare("chd", {"task_type": "exact", "metric": "exact_match", "test": spec}, "test", 0)


def test_placeholder_references_are_refused_for_the_split(tmp_path):
    """COCO's test split carries ["Null"] for every image's references: nothing to score against."""
    entry = with_rows(tmp_path, PUBLIC["coco_caption"](), lambda rows: [r.update(answer=["Null"]) for r in rows],
                      skip=True)
    with pytest.raises(sources.DatasetError, match=r"dataset 'coco_caption', split 'test', source hf_disk .*, "
                                                    r"row 'COCO_val2014_000000000.jpg': the references are placeholders "
                                                    r"\(\['Null'\]\): this split publishes no references"):
        sources.prepare("coco_caption", entry, "test", 0)


def test_rsvqa_without_question_types_says_so_in_its_scores(tmp_path):
    """dmarsili/RSVQA-LR-2k has no question-type column: accuracy, and a note instead of per-type scores."""
    public = without(PUBLIC["rsvqa_lr"](), "question_type")
    hub = write_hub_folder(tmp_path / "hub", public)
    entry = {**public.entry, "test": hub_spec(hub, public)}
    test_path, records, _ = prepared(tmp_path, "rsvqa_lr", entry)
    result = scored(tmp_path, study_config("rsvqa_lr", entry), "rsvqa_lr", test_path,
                    [r["answers"][0] for r in records], "gold")
    assert result["notes"] == ["no question types in this source: accuracy is not given per question type"]
    assert set(result["scores"]) == {"accuracy", "n"} and result["scores"]["accuracy"] == 100.0
    typed = {**PUBLIC["rsvqa_lr"]().entry, "test": disk_spec(write_disk_folder(tmp_path / "d", PUBLIC["rsvqa_lr"]()),
                                                                  PUBLIC["rsvqa_lr"]())}
    test_path, records, _ = prepared(tmp_path / "t", "rsvqa_lr", typed)
    result = scored(tmp_path, study_config("rsvqa_lr", typed), "rsvqa_lr", test_path, ["no"] * 4, "typed")
    assert result["notes"] == [] and result["scores"]["accuracy/comparison"] == 100.0


def test_bad_rows_skipped_when_allowed_are_counted_and_listed(tmp_path):
    def break_two(rows):
        rows[0].update(image=None)
        rows[2].update(answer="")

    entry = with_rows(tmp_path, PUBLIC["pathvqa"](), break_two, skip=True)
    frame, manifest = sources.prepare("pathvqa", entry, "test", 0)
    assert frame["id"].to_list() == ["1"]
    assert manifest["skipped"] == 2 and manifest["records"] == 1
    assert manifest["skipped_rows"] == [{"row": "0", "reason": "missing image"}, {"row": "2", "reason": "no 'answer'"}]


def test_study_prepare_writes_the_manifest(tmp_path):
    entry = with_rows(tmp_path, PUBLIC["pathvqa"](), lambda rows: rows[0].update(image=None), skip=True)
    config = study_config("pathvqa", entry)
    prepare_stage.prepare(config.prepare_job("pathvqa", "test"), tmp_path / "t.parquet", tmp_path / "t.manifest.json")
    manifest = read_json(tmp_path / "t.manifest.json")
    assert manifest["skipped_rows"] == [{"row": "0", "reason": "missing image"}]
    assert len(schema.read_split(tmp_path / "t.parquet")) == 2


def test_image_column_image_is_kept_as_published(tmp_path):
    public = PUBLIC["pathvqa"]()
    disk = write_disk_folder(tmp_path / "disk", public)
    frame, _ = sources.prepare("pathvqa", {**public.entry, "test": disk_spec(disk, public)}, "test", 0)
    assert frame["image"].to_list()[0] == img(0, "JPEG")["bytes"]
