"""Dataset formats: one converter per public dataset schema, turning a row as `datasets` loads it
into tunebench records, with the prompt lmms-eval's default task builds for it (lmms-eval 0.7.3:
each task's YAML and `doc_to_text`; tests/test_lmms_eval_parity.py compares them string for
string). Datasets lmms-eval has no task for (RSVQA-LR, PathVQA, OCR-VQA) get its short-answer prompt.

A converter returns a list of records without `split` (OCR-VQA rows hold several questions; an
IconQA row outside the protocol's subset gives none) with `image` still in its raw form (a
`datasets` image dict, a path or bytes); `sources` decodes and checks the image. A row that
cannot be converted raises RowError, which `sources` reports with the dataset, split and row id.
Each format names the columns it reads, so a source lacking one is refused before any row is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .world import CAPTION_PROMPT, CHOICE_INSTRUCTION, LETTERS, SHORT_INSTRUCTION

TASK_TYPES = ("vqa", "yesno", "choice", "caption", "exact")
SHORT_ANSWER = f"\n{SHORT_INSTRUCTION}"  # lmms-eval's default post_prompt of gqa, textvqa and mme
# lmms-eval's ok_vqa default post_prompt.
OKVQA_POST_PROMPT = "\nWhen the provided information is insufficient, respond with 'Unanswerable'." + SHORT_ANSWER
MME_SUFFIX = " Please answer yes or no."  # in every MME question; lmms-eval swaps it for the short-answer prompt
# lmms-eval's iconqa default statement and options_statement (its choose_txt prompt).
ICONQA_PROMPT = ("Given a set of images and a question, please provide the answer to the question.\n"
                 "Question: {question}.\nOptions:\n{options}\nPlease answer with the option letter from the given "
                 "choices directly.")
PLACEHOLDERS = (["null"],)  # references of evaluation copies that publish none (COCO's test split)
RSVQA_TYPE_COLUMNS = ("question_type", "type", "category")  # where RSVQA sources keep the question type


class RowError(ValueError):
    """What is wrong with one row; the caller adds where (dataset, split, row id)."""


class PlaceholderError(ValueError):
    """A row whose references are placeholders: its split has no public answers to score against."""


# ---- protocol: prompts and answers per task type ---------------------------------------------

def option_lines(choices: list[str]) -> str:
    """"A. first\nB. second": the option list of lmms-eval's scienceqa and iconqa prompts."""
    if len(choices) > len(LETTERS):
        raise RowError(f"{len(choices)} choices; at most {len(LETTERS)} are supported")
    return "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))


def prompt(task_type: str, question: str, choices: list[str] = ()) -> str:
    """The evaluation prompt: caption instruction (lmms-eval's coco_cap and flickr30k), option list +
    letter instruction (its scienceqa), or short answer (its gqa)."""
    if task_type == "caption":
        return CAPTION_PROMPT
    if task_type == "choice":
        return f"{question}\n{option_lines(choices)}\n{CHOICE_INSTRUCTION}"
    return f"{question}{SHORT_ANSWER}"


def string_list(value, what: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise RowError(f"{what} should be a list of strings, got {value!r}")
    return list(value)


def answer_letter(answer, choices: list[str]) -> str:
    """The option letter of `answer`: an index, a letter, or the text of one of the choices."""
    if not choices:
        raise RowError("a multiple-choice row has no choices")
    if isinstance(answer, int) and not isinstance(answer, bool):
        if 0 <= answer < len(choices):
            return LETTERS[answer]
        raise RowError(f"answer index {answer} is outside the {len(choices)} choices {choices!r}")
    text = str(answer).strip()
    if len(text) == 1 and text in LETTERS[:len(choices)]:
        return text
    lowered = [c.strip().lower() for c in choices]
    if text.lower() in lowered:
        return LETTERS[lowered.index(text.lower())]
    raise RowError(f"answer {answer!r} is neither an option letter nor one of the choices {choices!r}")


def required(row: dict, field: str):
    value = row.get(field)
    if value is None or (isinstance(value, (str, list)) and not value):
        raise RowError(f"no {field!r}")
    return value


def record(row_id, image_id, image, question, answers, task_type, choices=(), category="") -> dict:
    return {"id": str(row_id), "image_id": str(image_id), "image": image, "question": question,
            "choices": list(choices), "answers": list(answers), "task_type": task_type, "category": category}


def first(row: dict, fields: tuple[str, ...], default):
    for field in fields:
        if row.get(field) not in (None, ""):
            return row[field]
    return default


# ---- one converter per public schema ---------------------------------------------------------

def scienceqa(row: dict, i: int, ctx: dict) -> list[dict]:
    """lmms-lab/ScienceQA, derek-thomas/ScienceQA: choices list, answer index, hint as context
    (lmms-eval scienceqa_img: "Context: {hint}" and a line break only when there is a hint)."""
    choices = string_list(row.get("choices"), "choices")
    answer = row.get("answer")
    if answer is None:
        raise RowError("no 'answer'")
    context = f"Context: {row['hint']}\n" if row["hint"] else ""
    return [record(i, i, row["image"], prompt("choice", f"{context}{row['question']}", choices),
                   [answer_letter(answer, choices)], "choice", choices, row.get("subject") or "")]


def iconqa(row: dict, i: int, ctx: dict) -> list[dict]:
    """IconQA, the authors' protocol: the choose_txt subset only, with lmms-eval iconqa's choose_txt
    prompt. lmms-lab/ICON-QA gives choices as a comma-separated string (lmms-eval splits it on ","
    and keeps the spaces in the prompt) and the answer as text; the original release a list and an
    index."""
    if row["ques_type"] != "choose_txt":
        return []
    raw = row["choices"]
    shown = raw.split(",") if isinstance(raw, str) else string_list(raw, "choices")
    choices = [c.strip() for c in shown]
    question = ICONQA_PROMPT.format(question=row["question"], options=option_lines(shown))
    return [record(row.get("question_id", i), row.get("question_id", i), row["query_image"], question,
                   [answer_letter(required(row, "answer"), choices)], "choice", choices, row["ques_type"])]


def rsvqa(row: dict, i: int, ctx: dict) -> list[dict]:
    """RSVQA-LR: one answer, scored by exact match overall and per question type (when the source
    has one: dmarsili/RSVQA-LR-2k does not, the original release does)."""
    qtype = first(row, RSVQA_TYPE_COLUMNS, "")
    image_id = first(row, ("image_id", "img_id"), i)
    return [record(first(row, ("question_id", "id"), i), image_id, row["image"],
                   prompt("exact", row["question"]), [str(required(row, "answer"))], "exact", category=str(qtype))]


def pathvqa(row: dict, i: int, ctx: dict) -> list[dict]:
    """flaviagiammarino/path-vqa: yes/no ("closed") and open questions, told apart by the answer."""
    answer = str(required(row, "answer")).strip()
    kind = "yes/no" if answer.lower() in ("yes", "no") else "open"
    return [record(i, i, row["image"], prompt("exact", row["question"]), [answer], "exact", category=kind)]


def caption(row: dict, i: int, ctx: dict) -> list[dict]:
    """lmms-lab/flickr30k, nlphuji/flickr30k (`caption`), lmms-lab/COCO-Caption (`answer`): reference lists."""
    field = "caption" if "caption" in row else "answer"
    refs = string_list(required(row, field), field)
    if [r.strip().lower() for r in refs] in PLACEHOLDERS:
        raise PlaceholderError(f"the references are placeholders ({refs!r})")
    image_id = first(row, ("img_id", "question_id", "file_name", "filename", "id"), i)
    return [record(image_id, image_id, row["image"], prompt("caption", ""), refs, "caption")]


def _vqa(row: dict, i: int, question: str, post_prompt: str) -> list[dict]:
    """Ten human answers, VQA soft accuracy."""
    answers = string_list(required(row, "answers"), "answers")
    return [record(row.get("question_id", i), row.get("image_id", i), row["image"], f"{question}{post_prompt}",
                   answers, "vqa", category=row.get("question_type") or "")]


def okvqa(row: dict, i: int, ctx: dict) -> list[dict]:
    """lmms-lab/OK-VQA, as lmms-eval's ok_vqa prompts it (the 'Unanswerable' line included)."""
    return _vqa(row, i, row["question"], OKVQA_POST_PROMPT)


def textvqa(row: dict, i: int, ctx: dict) -> list[dict]:
    """lmms-lab/textvqa, as lmms-eval's textvqa prompts it: the question capitalised (str.capitalize
    lowercases the rest), then with `options.ocr_tokens: true` its OCR tokens (lmms-eval's `ocr`)."""
    question = row["question"].capitalize()
    if ctx["options"].get("ocr_tokens"):
        question = f"{question}\nReference OCR token: {', '.join(row['ocr_tokens'])}"
    return _vqa(row, i, question, SHORT_ANSWER)


def gqa(row: dict, i: int, ctx: dict) -> list[dict]:
    """lmms-lab/GQA: the instructions config, its images joined from the images config on imageId."""
    images = ctx.get("images")
    if images is None:
        raise RowError("GQA's questions need its images config (split spec key `image_config`)")
    image = images.get(row["imageId"])
    if image is None:
        raise RowError(f"image {row['imageId']!r} is not in the images config")
    structural = (row.get("types") or {}).get("structural") or ""
    if isinstance(structural, list):  # older revisions store `types` as a sequence
        structural = structural[0] if structural else ""
    return [record(row["id"], row["imageId"], image, prompt("exact", row["question"]), [required(row, "answer")],
                   "exact", category=structural)]


def ocrvqa(row: dict, i: int, ctx: dict) -> list[dict]:
    """howard-hou/OCR-VQA: one row per book cover, with parallel lists of questions and answers."""
    questions = string_list(required(row, "questions"), "questions")
    answers = string_list(required(row, "answers"), "answers")
    if len(questions) != len(answers):
        raise RowError(f"{len(questions)} questions but {len(answers)} answers")
    image_id = first(row, ("image_id",), i)
    return [record(f"{image_id}-{k}", image_id, row["image"], prompt("exact", q), [a], "exact")
            for k, (q, a) in enumerate(zip(questions, answers))]


def mme(row: dict, i: int, ctx: dict) -> list[dict]:
    """lmms-lab/MME: two yes/no questions per image; question_id is the image's file name. The prompt
    as lmms-eval's mme_doc_to_text builds it: strip, drop " Please answer yes or no.", add its
    post_prompt."""
    answer = str(required(row, "answer")).strip().lower()
    if answer not in ("yes", "no"):
        raise RowError(f"answer {row['answer']!r} is not Yes or No")
    question = row["question"].strip().replace(MME_SUFFIX, "")
    return [record(i, row["question_id"], row["image"], f"{question}{SHORT_ANSWER}", [answer], "yesno",
                   category=required(row, "category"))]


@dataclass(frozen=True)
class Format:
    convert: Callable[[dict, int, dict], list[dict]]
    task_type: str  # for sources that carry no task type themselves (LLaVA JSON)
    columns: tuple = ()  # the columns it reads; a tuple inside: any one of them
    id_fields: tuple[str, ...] = ()  # where a row's id is, for error messages (else its index)
    unit: tuple[str, ...] = ()  # rows equal on these columns are drawn whole by max_samples (MME's pairs)
    category: str = ""  # what its categories are, when a source may lack them (scores then say so)
    option_columns: tuple[tuple[str, str], ...] = ()  # (option, column): read when the option is on

    def required(self, options: dict) -> tuple:
        return self.columns + tuple(column for option, column in self.option_columns if options.get(option))


FORMATS: dict[str, Format] = {
    "scienceqa": Format(scienceqa, "choice", ("image", "question", "choices", "answer", "hint")),
    "iconqa": Format(iconqa, "choice", ("query_image", "question", "choices", "answer", "ques_type"), ("question_id",)),
    "rsvqa": Format(rsvqa, "exact", ("image", "question", "answer"), ("question_id", "id"),
                    category="question type"),
    "pathvqa": Format(pathvqa, "exact", ("image", "question", "answer")),
    "caption": Format(caption, "caption", ("image", ("caption", "answer")),
                      ("img_id", "question_id", "file_name", "filename")),
    "okvqa": Format(okvqa, "vqa", ("image", "question", "answers"), ("question_id",)),
    "textvqa": Format(textvqa, "vqa", ("image", "question", "answers"), ("question_id",),
                      option_columns=(("ocr_tokens", "ocr_tokens"),)),
    "gqa": Format(gqa, "exact", ("id", "imageId", "question", "answer"), ("id",)),
    "ocrvqa": Format(ocrvqa, "exact", ("image", "questions", "answers"), ("image_id",)),
    "mme": Format(mme, "yesno", ("image", "question_id", "question", "answer", "category"),
                  unit=("category", "question_id")),
}
GQA_IMAGE_COLUMNS = ("id", "image")  # GQA's images config
OWN_COLUMNS = ("image", ("answer", "answers"))  # a bring-your-own file (plus question, but for captions)
LLAVA_COLUMNS = ("conversations",)


def missing_columns(expected: tuple, present) -> list[str]:
    """The expected columns (or alternatives: "'a' or 'b'") that `present` lacks."""
    alternatives = [want if isinstance(want, tuple) else (want,) for want in expected]
    return [" or ".join(map(repr, alt)) for alt in alternatives if not set(present).intersection(alt)]


def row_id(row: dict, index: int, fields: tuple[str, ...]) -> str:
    return str(first(row, fields, index))


# ---- formats that carry the prompt themselves: LLaVA JSON and bring-your-own files -------------

_OPTION_LINE = re.compile(r"^([A-H])\. (.*)$", re.M)
_LEADING_LETTER = re.compile(r"^\(?([A-H])(?:$|[.):\s])")


def llava(row: dict, i: int, task_type: str) -> list[dict]:
    """LLaVA-format conversations: every human/gpt turn pair is one record; the prompt is kept as
    written (LLaVA's data already ends in the protocol's instruction)."""
    turns = row.get("conversations")
    if not isinstance(turns, list) or len(turns) < 2:
        raise RowError(f"'conversations' should hold human/gpt turns, got {turns!r}")
    out = []
    for k in range(0, len(turns) - 1, 2):
        human, gpt = turns[k], turns[k + 1]
        if human.get("from") != "human" or gpt.get("from") != "gpt":
            raise RowError(f"turns {k}-{k + 1} are {human.get('from')!r}/{gpt.get('from')!r}, expected human/gpt")
        question = human["value"].replace("<image>", "").strip()
        answer = str(gpt.get("value") or "").strip()
        if not answer:
            raise RowError(f"turn {k + 1} has no answer")
        choices = [text for _, text in _OPTION_LINE.findall(question)] if task_type == "choice" else []
        if task_type == "choice":
            letter = _LEADING_LETTER.match(answer)
            answer = answer_letter(letter.group(1) if letter else answer, choices)
        out.append(record(f"{row.get('id', i)}-{k // 2}", row.get("id", i), row.get("image"), question, [answer],
                          task_type, choices))
    return out


def split_list(value) -> list[str]:
    """A JSONL list, or a CSV cell of `|`-separated items."""
    if value in (None, ""):
        return []
    if isinstance(value, list):
        return string_list(value, "list")
    return [v.strip() for v in str(value).split("|")]


def own(row: dict, i: int, task_type: str) -> list[dict]:
    """A bring-your-own row: id, image (a path under the image folder), question, answer or answers,
    optional choices and category; the prompt gets the declared task type's instruction."""
    answers = split_list(row.get("answers")) or split_list(row.get("answer"))
    if not answers:
        raise RowError("no 'answer' or 'answers'")
    choices = split_list(row.get("choices"))
    if task_type == "choice":
        answers = [answer_letter(answers[0], choices)]
    elif choices:
        raise RowError(f"choices {choices!r} given for a {task_type!r} dataset")
    question = required(row, "question") if task_type != "caption" else ""
    image = required(row, "image")
    return [record(row.get("id", i), row.get("image_id") or image, image, prompt(task_type, question, choices),
                   answers, task_type, choices, row.get("category") or "")]
