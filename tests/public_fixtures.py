"""Tiny copies of the paper's datasets in their public schemas (field names, types, nesting and
image encoding as `datasets` loads them from the Hub), written the two ways users hold them:
as a Hub-style repository folder (README `configs:` + parquet files, read by `load_dataset`, the
code path of a Hub id) and as a `save_to_disk` folder."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import datasets as hf
import yaml
from PIL import Image

S = hf.Value("string")
STRINGS = hf.Sequence(hf.Value("string"))


def picture(i: int, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24 + i, 20), ((40 * i) % 256, 90, 200)).save(buffer, format=fmt)
    return buffer.getvalue()


def img(i: int, fmt: str = "PNG") -> dict:
    return {"bytes": picture(i, fmt), "path": None}


@dataclass
class Public:
    """One dataset's public form: its HF config and split names, features, rows, and the config
    entry (without sources) tunebench uses for it."""

    features: dict
    rows: list[dict]
    entry: dict
    split: str
    config: str | None = None
    images: "Public | None" = None  # GQA: the images config of the same repository
    extra: dict = field(default_factory=dict)

    def dataset(self) -> hf.Dataset:
        return hf.Dataset.from_list(self.rows, features=hf.Features(self.features))


def write_hub_folder(root: Path, public: Public) -> Path:
    """A folder laid out like the dataset's Hub repository: README configs + data/<config>/<split>-*.parquet."""
    configs = []
    for part in [public] + ([public.images] if public.images else []):
        name = part.config or "default"
        part.dataset().to_parquet(str(root / "data" / name / f"{part.split}-00000-of-00001.parquet"))
        configs.append({"config_name": name, "data_files": [{"split": part.split, "path": f"data/{name}/{part.split}-*"}]})
    (root / "README.md").write_text("---\n" + yaml.safe_dump({"configs": configs}) + "---\n")
    return root


def write_disk_folder(root: Path, public: Public) -> Path:
    """`save_to_disk` of a DatasetDict holding the split (GQA's images beside it in `<root>_images`)."""
    hf.DatasetDict({public.split: public.dataset()}).save_to_disk(str(root))
    if public.images:
        public.images.dataset().save_to_disk(str(root) + "_images")
    return root


def hub_spec(root: Path, public: Public) -> dict:
    spec = {"source": "hf", "path": str(root), "split": public.split}
    if public.config:
        spec["name"] = public.config
    if public.images:
        spec["image_config"] = public.images.config
    return spec


def disk_spec(root: Path, public: Public) -> dict:
    spec = {"source": "hf_disk", "path": str(root), "split": public.split}
    if public.images:
        spec["image_config"] = str(root) + "_images"
    return spec


def _sqa(i, answer, hint, subject="natural science"):
    return {"image": img(i), "question": f"Which animal is shown {i}?", "choices": ["cat", "dog", "bird"],
            "answer": answer, "hint": hint, "task": "closed choice", "grade": "grade2", "subject": subject,
            "topic": "biology", "category": "Animals", "skill": "Identify animals", "lecture": "", "solution": ""}


def scienceqa() -> Public:
    features = {"image": hf.Image(), "question": S, "choices": STRINGS, "answer": hf.Value("int8"), "hint": S,
                "task": S, "grade": S, "subject": S, "topic": S, "category": S, "skill": S, "lecture": S,
                "solution": S}
    rows = [_sqa(0, 1, "A farm."), _sqa(1, 0, ""), _sqa(2, 2, "In the sky.", "language science")]
    return Public(features, rows, {"format": "scienceqa", "metric": "choice_accuracy"}, "test", "ScienceQA-IMG")


def iconqa() -> Public:
    features = {"question_id": S, "question": S, "choices": S, "answer": S, "query_image": hf.Image(),
                "choice_image_0": hf.Image(), "choice_image_1": hf.Image(), "ques_type": S, "label": S, "grade": S,
                "skills": S}

    def row(i, qtype, choices, answer):
        return {"question_id": f"q{i}", "question": f"How many dots {i}?", "choices": choices, "answer": answer,
                "query_image": img(i), "choice_image_0": img(9) if qtype == "choose_img" else None,
                "choice_image_1": None, "ques_type": qtype, "label": "", "grade": "kindergarten", "skills": "counting"}

    rows = [row(0, "choose_txt", "3,5,7", "5"), row(1, "choose_txt", "red, blue", "red"),
            row(2, "fill_in_blank", "", "4"), row(3, "choose_img", "", "0")]
    # the choose_txt questions only (the authors' protocol)
    return Public(features, rows, {"format": "iconqa", "metric": "choice_accuracy"}, "val", extra={"records": 2})


def rsvqa() -> Public:
    features = {"image": hf.Image(), "question": S, "answer": S, "question_type": S}
    rows = [{"image": img(i), "question": q, "answer": a, "question_type": t} for i, (q, a, t) in enumerate([
        ("Is there a road?", "yes", "presence"), ("Is the number of buildings greater than the number of roads?",
                                                   "no", "comparison"),
        ("Is it a rural or an urban area?", "rural", "rural_urban"), ("How many buildings are there?", "12", "count")])]
    return Public(features, rows, {"format": "rsvqa", "metric": "exact_match"}, "test")


def pathvqa() -> Public:
    features = {"image": hf.Image(), "question": S, "answer": S}
    rows = [{"image": img(0, "JPEG"), "question": "Is this tissue inflamed?", "answer": "yes"},
            {"image": img(1, "JPEG"), "question": "What is present?", "answer": "granuloma"},
            {"image": img(2, "JPEG"), "question": "Are there cells?", "answer": "no"}]
    return Public(features, rows, {"format": "pathvqa", "metric": "pathvqa"}, "test")


def flickr30k() -> Public:
    """nlphuji/flickr30k: every image in one `test` split, the Karpathy split in a `split` column."""
    features = {"image": hf.Image(), "caption": STRINGS, "sentids": STRINGS, "split": S, "img_id": S,
                "filename": S}
    rows = [{"image": img(i, "JPEG"), "caption": [f"a dog runs on the grass {i}", "a dog is running",
                                                   "the dog plays outside", "a brown dog in a field",
                                                   "a dog running on grass"],
             "sentids": [str(5 * i + k) for k in range(5)], "split": "test" if i < 3 else "train",
             "img_id": str(i), "filename": f"{1000 + i}.jpg"} for i in range(4)]
    return Public(features, rows, {"format": "caption", "metric": "cider"}, "test",
                  extra={"where": {"split": "test"}, "records": 3})


def okvqa() -> Public:
    features = {"question_id": S, "image": hf.Image(), "question": S, "answers": STRINGS, "question_type": S,
                "answer_type": S}
    rows = [{"question_type": "one", "answers": ["Two"] * 10, "answer_type": "other", "question_id": "2971475",
             "question": "How many people are there?", "image": img(0, "JPEG")},
            {"question_type": "eight", "answers": ["racing"] * 6 + ["race"] * 4, "answer_type": "other",
             "question_id": "3007625", "question": "What sport is this?", "image": img(1, "JPEG")}]
    return Public(features, rows, {"format": "okvqa", "metric": "vqa_accuracy"}, "val2014")


def gqa() -> Public:
    pointers = [{"objectId": S, "value": S}]
    features = {"id": S, "imageId": S, "question": S, "answer": S, "fullAnswer": S, "isBalanced": hf.Value("bool"),
                "groups": {"global": S, "local": S}, "entailed": S, "equivalent": S,
                "types": {"structural": S, "semantic": S, "detailed": S},
                "annotations": {"question": pointers, "answer": pointers, "fullAnswer": pointers},
                "semantic": [{"operation": S, "argument": S, "dependencies": [hf.Value("int32")]}],
                "semanticStr": S}

    def row(i, image_id, question, answer, structural):
        return {"id": f"20{i}", "imageId": image_id, "question": question, "answer": answer,
                "fullAnswer": f"The answer is {answer}.", "isBalanced": True, "groups": {"global": None, "local": "10c"},
                "entailed": "[]", "equivalent": f"['20{i}']",
                "types": {"structural": structural, "semantic": "attr", "detailed": "color"},
                "annotations": {"question": [{"objectId": "1", "value": "car"}], "answer": [], "fullAnswer": []},
                "semantic": [{"operation": "select", "argument": "car (1)", "dependencies": []}],
                "semanticStr": "select: car (1)"}

    rows = [row(0, "n1", "What color is the car?", "red", "query"), row(1, "n1", "Is the car red?", "yes", "verify"),
            row(2, "n2", "Which side is the cup on?", "left", "query")]
    images = Public({"id": S, "image": hf.Image()}, [{"id": "n1", "image": img(0, "JPEG")},
                                                      {"id": "n2", "image": img(1, "JPEG")}],
                    {}, "testdev", "testdev_balanced_images")
    return Public(features, rows, {"format": "gqa", "metric": "exact_match"}, "testdev",
                  "testdev_balanced_instructions", images)


def textvqa() -> Public:
    features = {"image_id": S, "question_id": hf.Value("int32"), "question": S, "question_tokens": STRINGS,
                "image": hf.Image(), "image_width": hf.Value("int32"), "image_height": hf.Value("int32"),
                "flickr_original_url": S, "flickr_300k_url": S, "answers": STRINGS, "image_classes": STRINGS,
                "set_name": S, "ocr_tokens": STRINGS}
    rows = [{"image_id": f"00{i}", "question_id": 34602 + i, "question": q, "question_tokens": q.split(),
             "image": img(i, "JPEG"), "image_width": 24 + i, "image_height": 20, "flickr_original_url": "",
             "flickr_300k_url": "", "answers": answers, "image_classes": ["Poster"], "set_name": "val",
             "ocr_tokens": ocr} for i, (q, answers, ocr) in enumerate([
                 ("what is the brand?", ["nokia"] * 9 + ["nokia phone"], ["NOKIA", "5"]),
                 ("what number is on the shirt?", ["23"] * 10, ["23"])])]
    return Public(features, rows, {"format": "textvqa", "metric": "vqa_accuracy", "options": {"ocr_tokens": True}},
                  "validation")


def ocrvqa() -> Public:
    box = {"width": hf.Value("float64"), "height": hf.Value("float64"), "top_left_x": hf.Value("float64"),
           "top_left_y": hf.Value("float64")}
    features = {"image": hf.Image(), "image_id": S, "questions": STRINGS, "answers": STRINGS, "ocr_tokens": STRINGS,
                "ocr_info": [{"word": S, "bounding_box": box}], "title": S, "authorName": S, "genre": S,
                "image_width": hf.Value("int64"), "image_height": hf.Value("int64"), "image_url": S, "set_name": S}
    rows = [{"image": img(i, "JPEG"), "image_id": f"0{i}0123", "questions": qs, "answers": ans, "ocr_tokens": ["A"],
             "ocr_info": [{"word": "A", "bounding_box": {"width": 0.1, "height": 0.1, "top_left_x": 0.0,
                                                         "top_left_y": 0.0}}],
             "title": "A Book", "authorName": "An Author", "genre": "Travel", "image_width": 24 + i,
             "image_height": 20, "image_url": "", "set_name": "test"} for i, (qs, ans) in enumerate([
                 (["Who wrote this book?", "What is the title of this book?", "Is this a travel book?"],
                  ["An Author", "A Book", "Yes"]),
                 (["What is the genre of this book?"], ["Travel"])])]
    return Public(features, rows, {"format": "ocrvqa", "metric": "exact_match"}, "test", extra={"records": 4})


def coco_caption() -> Public:
    features = {"question_id": S, "image": hf.Image(), "question": S, "answer": STRINGS, "id": hf.Value("int64"),
                "license": hf.Value("int8"), "file_name": S, "coco_url": S, "height": hf.Value("int32"),
                "width": hf.Value("int32"), "date_captured": S}
    rows = [{"question_id": f"COCO_val2014_00000000{i}.jpg", "image": img(i, "JPEG"),
             "question": "Please carefully observe the image and come up with a caption for the image",
             "answer": [f"a man riding a horse {i}", "a person on a horse", "a rider on a brown horse",
                        "a man rides a horse", "someone riding a horse"], "id": i, "license": 3,
             "file_name": f"COCO_val2014_00000000{i}.jpg", "coco_url": "", "height": 20, "width": 24 + i,
             "date_captured": ""} for i in range(3)]
    return Public(features, rows, {"format": "caption", "metric": "cider"}, "val")


def mme() -> Public:
    features = {"question_id": S, "image": hf.Image(), "question": S, "answer": S, "category": S}
    rows = []
    for category, image_name in (("existence", "000000006040.jpg"), ("count", "000000006040.jpg"),
                                 ("code_reasoning", "0020.png")):
        for question, answer in (("Is there a train in this image?", "Yes"), ("Is there a bed in this image?", "No")):
            rows.append({"question_id": image_name, "image": img(len(rows)), "category": category,
                         "question": f"{question} Please answer yes or no.", "answer": answer})
    return Public(features, rows, {"format": "mme", "metric": "mme"}, "test")


PUBLIC = {"scienceqa": scienceqa, "iconqa": iconqa, "rsvqa_lr": rsvqa, "pathvqa": pathvqa,
          "flickr30k": flickr30k, "okvqa": okvqa, "gqa": gqa, "textvqa": textvqa, "ocrvqa": ocrvqa,
          "coco_caption": coco_caption, "mme": mme}


def write_own(root: Path, kind: str) -> dict:
    """A bring-your-own dataset (CHD-like): JSONL or CSV plus an image folder; returns the split spec."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"p{i}", "image": f"scan{i}.png", "question": q, "answer": a}
            for i, (q, a) in enumerate([("Is the heart enlarged?", "yes"), ("Which chamber is affected?", "left ventricle")])]
    for i, row in enumerate(rows):
        (root / "images" / row["image"]).write_bytes(picture(i))
    path = root / f"train.{kind}"
    if kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text("id,image,question,answer\n" + "".join(f"{r['id']},{r['image']},{r['question']},{r['answer']}\n"
                                                              for r in rows))
    return {"source": "local", "path": str(path), "images": str(root / "images")}
