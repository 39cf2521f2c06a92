"""Dataset formats: one converter per public dataset schema, turning a row as `datasets` loads it
into tunebench records, with the evaluation prompt the community uses (lmms-eval / LLaVA).

A converter returns a list of records without `split` (OCR-VQA rows hold several questions; an
IconQA row outside the protocol's subset gives none) with `image` still in its raw form (a
`datasets` image dict, a path or bytes); `datasets` decodes and checks the image. A row that
cannot be converted raises RowError, which `datasets` reports with the dataset, split and row id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .world import CAPTION_PROMPT, CHOICE_INSTRUCTION, LETTERS, SHORT_INSTRUCTION

TASK_TYPES = ("vqa", "yesno", "choice", "caption", "exact")
MME_SUFFIX = " Please answer yes or no."  # in every MME question; lmms-eval swaps it for the short-answer prompt


class RowError(ValueError):
    """What is wrong with one row; the caller adds where (dataset, split, row id)."""


# ---- protocol: prompts and answers per task type ---------------------------------------------

def prompt(task_type: str, question: str, choices: list[str] = ()) -> str:
    """The evaluation prompt: caption instruction, option list + letter instruction, or short answer."""
    if task_type == "caption":
        return CAPTION_PROMPT
    if task_type == "choice":
        if len(choices) > len(LETTERS):
            raise RowError(f"{len(choices)} choices; at most {len(LETTERS)} are supported")
        options = "".join(f"\n{LETTERS[i]}. {c}" for i, c in enumerate(choices))
        return f"{question}{options}\n{CHOICE_INSTRUCTION}"
    return f"{question}\n{SHORT_INSTRUCTION}"


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
    """lmms-lab/ScienceQA, derek-thomas/ScienceQA: choices list, answer index, hint as context."""
    choices = string_list(row.get("choices"), "choices")
    answer = row.get("answer")
    if answer is None:
        raise RowError("no 'answer'")
    context = f"Context: {row['hint']}\n" if row.get("hint") else ""
    return [record(i, i, row.get("image"), prompt("choice", f"{context}{row['question']}", choices),
                   [answer_letter(answer, choices)], "choice", choices, row.get("subject") or "")]


def iconqa(row: dict, i: int, ctx: dict) -> list[dict]:
    """IconQA, the authors' protocol: the choose_txt subset only. lmms-lab/ICON-QA gives choices as a
    comma-separated string and the answer as text; the original release a list and an index."""
    if row.get("ques_type") != "choose_txt":
        return []
    choices = row.get("choices")
    choices = [c.strip() for c in choices.split(",")] if isinstance(choices, str) else string_list(choices, "choices")
    answer = answer_letter(required(row, "answer"), choices)
    return [record(row.get("question_id", i), row.get("question_id", i), row.get("query_image"),
                   prompt("choice", row["question"], choices), [answer], "choice", choices, row["ques_type"])]


def rsvqa(row: dict, i: int, ctx: dict) -> list[dict]:
    """RSVQA-LR: one answer, scored by exact match overall and per question type."""
    qtype = first(row, ("question_type", "type", "category"), "")
    image_id = first(row, ("image_id", "img_id"), i)
    return [record(first(row, ("question_id", "id"), i), image_id, row.get("image"),
                   prompt("exact", row["question"]), [str(required(row, "answer"))], "exact", category=str(qtype))]


def pathvqa(row: dict, i: int, ctx: dict) -> list[dict]:
    """flaviagiammarino/path-vqa: yes/no ("closed") and open questions, told apart by the answer."""
    answer = str(required(row, "answer")).strip()
    kind = "yes/no" if answer.lower() in ("yes", "no") else "open"
    return [record(i, i, row.get("image"), prompt("exact", row["question"]), [answer], "exact", category=kind)]


def caption(row: dict, i: int, ctx: dict) -> list[dict]:
    """lmms-lab/flickr30k, nlphuji/flickr30k (`caption`), lmms-lab/COCO-Caption (`answer`): reference lists."""
    field = "caption" if "caption" in row else "answer"
    refs = string_list(required(row, field), field)
    image_id = first(row, ("img_id", "question_id", "file_name", "filename", "id"), i)
    return [record(image_id, image_id, row.get("image"), prompt("caption", ""), refs, "caption")]


def vqa(row: dict, i: int, ctx: dict) -> list[dict]:
    """lmms-lab/OK-VQA, lmms-lab/textvqa: ten human answers, VQA soft accuracy.
    `options.ocr_tokens: true` puts TextVQA's OCR tokens in the prompt as LLaVA does."""
    answers = string_list(required(row, "answers"), "answers")
    question = row["question"]
    if ctx["options"].get("ocr_tokens") and row.get("ocr_tokens"):
        question = f"{question}\nReference OCR token: {', '.join(row['ocr_tokens'])}"
    return [record(row.get("question_id", i), row.get("image_id", i), row.get("image"), prompt("vqa", question),
                   answers, "vqa", category=row.get("question_type") or "")]


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
    return [record(f"{image_id}-{k}", image_id, row.get("image"), prompt("exact", q), [a], "exact")
            for k, (q, a) in enumerate(zip(questions, answers))]


def mme(row: dict, i: int, ctx: dict) -> list[dict]:
    """lmms-lab/MME: two yes/no questions per image; question_id is the image's file name."""
    answer = str(required(row, "answer")).strip().lower()
    if answer not in ("yes", "no"):
        raise RowError(f"answer {row['answer']!r} is not Yes or No")
    question = row["question"].replace(MME_SUFFIX, "").strip()
    return [record(i, row["question_id"], row.get("image"), prompt("yesno", question), [answer], "yesno",
                   category=required(row, "category"))]


@dataclass(frozen=True)
class Format:
    convert: Callable[[dict, int, dict], list[dict]]
    task_type: str  # for sources that carry no task type themselves (LLaVA JSON)
    id_fields: tuple[str, ...] = ()  # where a row's id is, for error messages (else its index)


FORMATS: dict[str, Format] = {
    "scienceqa": Format(scienceqa, "choice"),
    "iconqa": Format(iconqa, "choice", ("question_id",)),
    "rsvqa": Format(rsvqa, "exact", ("question_id", "id")),
    "pathvqa": Format(pathvqa, "exact"),
    "caption": Format(caption, "caption", ("img_id", "question_id", "file_name", "filename")),
    "vqa": Format(vqa, "vqa", ("question_id",)),
    "gqa": Format(gqa, "exact", ("id",)),
    "ocrvqa": Format(ocrvqa, "exact", ("image_id",)),
    "mme": Format(mme, "yesno"),
}


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
