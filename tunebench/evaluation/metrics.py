"""Scoring model predictions (free text) against references.

Every metric takes a list of :class:`Sample` and returns a dict of floats on a
0-100 scale (CIDEr is x100 too). Use :func:`score`, which looks the metric up in
:data:`METRICS`, refuses an empty sample list, strips every output first (as
lmms-eval's harness does before a task scores it: ``ConfigurableTask.process_results``)
and adds ``"n"`` (the number of samples).

Each protocol is lmms-eval 0.7.3's task code, proven equal on the same outputs by
tests/test_lmms_eval_parity.py (which runs that code from the pinned wheel).

Metrics
-------
``vqa_accuracy``
    VQA soft accuracy: lmms-eval ok_vqa / textvqa ``process_results``. Prediction
    and every reference go through the EvalAI answer processor (lmms-eval's copy
    of facebookresearch/mmf's), quirks included: commas and ``?`` are deleted up
    front, ``'s`` becomes `` 's``, the period regex removes every period that is
    not followed by a digit (its look-behind is mistyped) and is applied at most
    32 times (``re.UNICODE`` is passed as the count). A question scores the mean
    over references ``g_i`` of ``min(1, #{j != i: g_j == pred} / 3)``. Both sides
    are always normalised (the 2021 official VQA script skips that when all
    references agree; lmms-eval and LLaVA do not). The formula expects ~10
    references: with fewer than 4, full credit is impossible and with one it is
    always 0 -- use ``exact_match`` for single-answer data.
``exact_match``
    lmms-eval gqa: its ``exact_match`` with ``ignore_case`` and ``ignore_punctuation``:
    lowercase, delete every ``string.punctuation`` character anywhere, compare
    (no strip after deleting: ". left" is not "left"; no article or number-word
    normalisation); correct if equal to any reference. With categories (RSVQA
    question types) also per category and their mean (``average_accuracy``).
``choice_accuracy``
    The option letter, read by the dataset's ``protocol`` (:data:`LETTER_RULES`):
    ``lmms_eval`` (lmms-eval scienceqa ``sqa_process_results``: the output is the
    letter in any case, or starts with a capital and a period) or ``llava``
    (LLaVA's ``eval_science_qa.py``: the letter A-E alone, "B. ...", or exactly
    one "The answer is B." anywhere).
``yesno_pairs``
    MME protocol (accuracy, accuracy+, score = acc + acc+); outputs read by
    lmms-eval mme ``parse_pred_ans``: see :func:`parse_yes_no`.
``mme``
    lmms-eval mme: ``yesno_pairs`` per category, summed to perception (10
    categories, max 2000), cognition (4, max 800) and total (max 2800).
``pathvqa``
    PathVQA (no lmms-eval task): yes/no accuracy on closed questions (read like
    MME's), exact match and token recall on open ones, and their combined accuracy.
``cider``
    CIDEr-D from pycocoevalcap's ``Cider``, x100, one corpus-level call (lmms-eval
    coco_cap / flickr30k ``*_cider``). Tokenisation: pycocoevalcap's
    ``PTBTokenizer`` (Stanford CoreNLP, what lmms-eval runs) when ``java`` is on
    PATH, else :func:`ptb_like_tokenize`, a pure-Python imitation of it for plain
    English (lowercase, split clitics such as ``n't``/``'s``, drop the punctuation
    tokens PTBTokenizer's wrapper drops). They agree on ordinary captions but can
    differ on unusual text (``@home``, ``gonna``, rarer abbreviations), so
    :func:`cider_tokenizer` names the one in use and every score entry records it.
    Document frequencies are corpus-level, so a one-sample set scores 0.
"""

from __future__ import annotations

import re
import shutil
import string
from collections import defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace

import numpy as np

from ..progress import dropping_lines
from . import resampling


@dataclass(frozen=True)
class Sample:
    id: str
    output: str  # the model's generated text
    answers: list[str]  # references: VQA ~10 answers, choice ["B"], captions, yes/no ["yes"]
    choices: list[str] = ()  # option texts for multiple choice, in letter order (A, B, ...)
    image_id: str = ""  # groups questions about the same image (MME acc+ pairing)
    category: str = ""  # sub-group (MME category / question type); may be ""


def _mean_percent(values: list[float]) -> float:
    return 100.0 * sum(values) / len(values)


def _require_answers(samples: list[Sample], metric: str) -> None:
    for s in samples:
        if not s.answers:
            raise ValueError(f"{metric}: sample {s.id!r} has no reference answers")


# --------------------------------------------------------------------------
# VQA soft accuracy with the EvalAI answer processor
# --------------------------------------------------------------------------

# The standard EvalAI contraction table, verbatim (its capitalised keys never
# match after lowercasing, and "somebody'd" maps the "wrong" way; kept for parity).
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've",
    "couldnt": "couldn't", "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't",
    "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's",
    "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've",
    "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
    "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've",
    "somethingll": "something'll", "thats": "that's", "thered": "there'd",
    "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
    "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've",
    "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd",
    "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll", "whos": "who's",
    "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
    "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all",
    "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}
_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
_ARTICLES = {"a", "an", "the"}
_VQA_PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\",
                    "_", "-", ">", "<", "@", "`", ",", "?", "!"]
# Same regexes as the reference. PERIOD_STRIP's "(?!<=\d)" is a mistyped
# look-behind, so in effect it removes any period not followed by a digit.
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")


def _process_punctuation(text: str) -> str:
    # Inert in practice (commas are already deleted), but part of the reference rule.
    has_digit_comma = _COMMA_STRIP.search(text) is not None
    out = text
    for p in _VQA_PUNCTUATION:
        # Punctuation next to a space is deleted; glued inside a word it becomes a space.
        if p + " " in text or " " + p in text or has_digit_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    # The reference passes re.UNICODE (== 32) as the count argument.
    return _PERIOD_STRIP.sub("", out, count=32)


def _process_digit_article(text: str) -> str:
    words = [_NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words)


def normalize_vqa_answer(text: str) -> str:
    """EvalAI answer processor (LLaVA m4c_evaluator / lmms-eval)."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _process_digit_article(_process_punctuation(text))


def vqa_soft_score(prediction: str, references: list[str]) -> float:
    """Leave-one-out soft score in [0, 1] of one prediction against its references."""
    pred = normalize_vqa_answer(prediction)
    refs = [normalize_vqa_answer(r) for r in references]
    matches = sum(r == pred for r in refs)
    # For reference i, the others matching the prediction are matches minus (g_i == pred).
    per_ref = [min(1.0, (matches - (r == pred)) / 3) for r in refs]
    return sum(per_ref) / len(per_ref)


def vqa_accuracy(samples: list[Sample]) -> dict[str, float]:
    _require_answers(samples, "vqa_accuracy")
    return {"accuracy": _mean_percent([vqa_soft_score(s.output, s.answers) for s in samples])}


# --------------------------------------------------------------------------
# Exact match (GQA)
# --------------------------------------------------------------------------

_DELETE_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_exact(text: str) -> str:
    """lmms-eval's exact_match with ignore_case and ignore_punctuation (ported from HF evaluate)."""
    return text.lower().translate(_DELETE_PUNCTUATION)


def exact_score(output: str, answers: list[str]) -> float:
    """1.0 if the (stripped) output equals any reference after normalisation."""
    return float(normalize_exact(output) in {normalize_exact(a) for a in answers})


def _exact(s: Sample) -> float:
    return exact_score(s.output, s.answers)


def _by_category(samples: list[Sample], correct: list[float], key: str) -> dict[str, float]:
    """Per-category accuracy ("<key>/<category>") when the samples carry categories."""
    groups: dict[str, list[float]] = defaultdict(list)
    for s, c in zip(samples, correct):
        groups[s.category].append(c)
    if not any(s.category for s in samples):
        return {}
    return {f"{key}/{category}": _mean_percent(values) for category, values in sorted(groups.items())}


def exact_match(samples: list[Sample]) -> dict[str, float]:
    """Accuracy overall and, when samples carry categories (RSVQA question types), per category
    and as "average_accuracy", the mean of the per-category accuracies (RSVQA's AA)."""
    _require_answers(samples, "exact_match")
    correct = [_exact(s) for s in samples]
    per_category = _by_category(samples, correct, "accuracy")
    result = {"accuracy": _mean_percent(correct), **per_category}
    if per_category:
        result["average_accuracy"] = sum(per_category.values()) / len(per_category)
    return result


# --------------------------------------------------------------------------
# PathVQA: yes/no questions and open questions
# --------------------------------------------------------------------------

def token_recall(output: str, answer: str) -> float:
    """Share of the reference's tokens (after exact-match normalisation) found in the output."""
    reference = normalize_exact(answer).split()
    produced = set(normalize_exact(output).split())
    return sum(t in produced for t in reference) / len(reference) if reference else 0.0


def is_closed(s: Sample) -> bool:
    """A PathVQA question answered yes or no (the others are open)."""
    return _yes_no_text(s.answers[0]) in ("yes", "no")


def pathvqa(samples: list[Sample]) -> dict[str, float]:
    """Closed (yes/no) questions read like MME's (:func:`parse_yes_no`), open ones by exact match and
    token recall; "accuracy" counts every question (closed: yes/no correct, open: exact match)."""
    _require_answers(samples, "pathvqa")
    closed = [s for s in samples if is_closed(s)]
    open_ = [s for s in samples if s not in closed]
    closed_ok = [float(yes_no_correct(s)) for s in closed]
    open_ok = [_exact(s) for s in open_]
    result = {"accuracy": _mean_percent(closed_ok + open_ok), "n_yes_no": len(closed), "n_open": len(open_)}
    if closed:
        result["yes_no_accuracy"] = _mean_percent(closed_ok)
    if open_:
        result["open_exact_match"] = _mean_percent(open_ok)
        result["open_recall"] = _mean_percent([max(token_recall(s.output, a) for a in s.answers) for s in open_])
    return result


# --------------------------------------------------------------------------
# Multiple choice
# --------------------------------------------------------------------------

DEFAULT_PROTOCOL = "lmms_eval"
LLAVA_OPTIONS = ("A", "B", "C", "D", "E")  # eval_science_qa.py's default --options
_LLAVA_ANSWER = re.compile(r"The answer is ([A-Z]).")


def lmms_eval_letter_correct(output: str, gold: str) -> bool:
    """lmms-eval scienceqa `sqa_process_results`: the output equals the gold letter in any case
    ("c"), or starts with a capital and a period ("C.", "C. text") and that capital is the gold."""
    target = gold.strip().lower()
    if output.lower() == target:
        return True
    return len(output) >= 2 and output[0].isupper() and output[1] == "." and output[0].lower() == target


def llava_letter(output: str, n_choices: int) -> str | None:
    """The letter LLaVA's llava/eval/eval_science_qa.py (haotian-liu/LLaVA c121f04) reads: the
    output is A-E alone, starts with "B. ", or holds exactly one "The answer is B." (any character
    after the letter); a letter beyond the question's choices counts as no answer."""
    if output in LLAVA_OPTIONS:
        letter = output
    elif len(output) >= 3 and output[0] in LLAVA_OPTIONS and output[1:3] == ". ":
        letter = output[0]
    else:
        found = _LLAVA_ANSWER.findall(output)
        letter = found[0] if len(found) == 1 else None
    return letter if letter in LLAVA_OPTIONS[:n_choices] else None


# How each protocol reads an option letter: sample -> correct.
LETTER_RULES: dict[str, Callable[[Sample], bool]] = {
    "lmms_eval": lambda s: lmms_eval_letter_correct(s.output, s.answers[0]),
    "llava": lambda s: llava_letter(s.output, len(s.choices)) == s.answers[0].strip(),
}
PROTOCOLS = tuple(LETTER_RULES)


def choice_accuracy(samples: list[Sample], protocol: str = DEFAULT_PROTOCOL) -> dict[str, float]:
    _require_answers(samples, "choice_accuracy")
    return {"accuracy": _mean_percent([float(LETTER_RULES[protocol](s)) for s in samples])}


# --------------------------------------------------------------------------
# Yes/no pairs (MME)
# --------------------------------------------------------------------------


def _yes_no_text(text: str) -> str:
    return text.lower().strip().replace(".", "")


def parse_yes_no(output: str) -> str:
    """'yes', 'no' or 'other' (always wrong), as lmms-eval mme `parse_pred_ans` (from Otter) reads an
    output: lowercased, stripped, periods deleted; then "yes"/"no", a lone "y"/"n", or else "yes"
    (first) or "no" anywhere in its first four characters ("not really" is no, "Sure, yes" other)."""
    text = _yes_no_text(output)
    if text in ("yes", "no"):
        return text
    if len(text) == 1:
        return {"y": "yes", "n": "no"}.get(text, "other")
    prefix = text[:4]
    return "yes" if "yes" in prefix else "no" if "no" in prefix else "other"


def yes_no_correct(s: Sample) -> bool:
    return parse_yes_no(s.output) == _yes_no_text(s.answers[0])


def pair_key(s: Sample) -> tuple[str, str]:
    """The group acc+ pairs a question in: image names repeat across MME categories, so pairs are
    formed within a category; a sample without image_id is its own group."""
    return (s.category, s.image_id) if s.image_id else (s.category, "\0" + s.id)


def _yesno_stats(samples: list[Sample]) -> tuple[float, float]:
    """(accuracy, accuracy_plus) in percent."""
    correct = [yes_no_correct(s) for s in samples]
    groups: dict[tuple[str, str], bool] = {}
    for s, ok in zip(samples, correct):
        key = pair_key(s)
        groups[key] = groups.get(key, True) and ok
    return _mean_percent(correct), _mean_percent(list(groups.values()))


def yesno_pairs(samples: list[Sample]) -> dict[str, float]:
    """MME: accuracy, accuracy_plus (all questions about an image right), score = acc + acc+.

    The top-level keys are over all samples (acc+ over all (category, image)
    groups). When categories are present we also return, for each category c,
    "accuracy/c", "accuracy_plus/c" and "score/c" (MME's 0-200 per-category
    score), and "score_total", the sum of the per-category scores (MME's
    perception/cognition total when the set is exactly those categories).
    """
    _require_answers(samples, "yesno_pairs")
    accuracy, accuracy_plus = _yesno_stats(samples)
    result = {"accuracy": accuracy, "accuracy_plus": accuracy_plus, "score": accuracy + accuracy_plus}
    by_category: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_category[s.category].append(s)
    if any(s.category for s in samples):
        total = 0.0
        for category, members in sorted(by_category.items()):
            acc, acc_plus = _yesno_stats(members)
            result[f"accuracy/{category}"] = acc
            result[f"accuracy_plus/{category}"] = acc_plus
            result[f"score/{category}"] = acc + acc_plus
            total += acc + acc_plus
        result["score_total"] = total
    return result


MME_PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
                  "artwork", "OCR")
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


def mme(samples: list[Sample]) -> dict[str, float]:
    """MME: yesno_pairs per category (score/c = acc + acc+, 0-200), then "perception" = the sum over
    its 10 categories (max 2000), "cognition" over its 4 (max 800), "total" both (max 2800).
    A category not in either list is an error: it would silently fall out of both sums."""
    unknown = sorted({s.category for s in samples} - set(MME_PERCEPTION) - set(MME_COGNITION))
    if unknown:
        raise ValueError(f"mme: categories {unknown} are neither perception {MME_PERCEPTION} "
                         f"nor cognition {MME_COGNITION}")
    pairs: dict[tuple[str, str], int] = defaultdict(int)
    for s in samples:
        pairs[(s.category, s.image_id)] += 1
    broken = sorted(key for key, count in pairs.items() if count != 2)
    if broken:  # lmms-eval asserts the same: acc+ is defined on pairs
        raise ValueError(f"mme: (category, image) {broken[:3]} hold {[pairs[k] for k in broken[:3]]} questions; "
                         "MME scores pairs of two questions per image (was the split subsampled or a row skipped?)")
    result = yesno_pairs(samples)
    for part, categories in (("perception", MME_PERCEPTION), ("cognition", MME_COGNITION)):
        result[part] = sum(result.get(f"score/{c}", 0.0) for c in categories)
    result["total"] = result["perception"] + result["cognition"]
    return result


# --------------------------------------------------------------------------
# CIDEr-D
# --------------------------------------------------------------------------

# Tokens pycocoevalcap's PTBTokenizer wrapper drops, plus raw double quotes,
# which PTBTokenizer turns into `` / '' before they are dropped.
_PTB_DROPPED = {"''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";", '"'}
# PTBTokenizer escapes brackets and -lowerCase lowercases the escapes, so they no
# longer match the wrapper's "-LRB-" etc. and survive as tokens; imitate that.
_PTB_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
_PTB_TOKEN = re.compile(
    r"""(?:[a-z]\.){2,}             # abbreviations keep their periods: e.g. u.s.a.
      | (?:mrs?|ms|dr|st)\.(?=\s)  # titles keep theirs: mr. smith
      | \d+(?:[.,:]\d+)+            # numbers with separators: 3.5 1,000 5:30
      | n't | '(?:s|re|ve|m|ll|d)\b # clitics (split off below)
      | \w+(?:[-'&/]\w+)*           # words, incl. black-and-white, o'clock
      | \.\.\. | -- | [!?]{2,}       # multi-character punctuation
      | \S                          # any other single symbol
    """,
    re.VERBOSE,
)


def ptb_like_tokenize(caption: str) -> str:
    """Pure-Python stand-in for PTBTokenizer + pycocoevalcap's punctuation removal."""
    text = caption.lower()
    text = re.sub(r"\bcannot\b", "can not", text)
    text = re.sub(r"(\w)(n't)\b", r"\1 \2", text)
    text = re.sub(r"(\w)('(?:s|re|ve|m|ll|d))\b", r"\1 \2", text)
    tokens = (_PTB_BRACKETS.get(t, t) for t in _PTB_TOKEN.findall(text))
    return " ".join(t for t in tokens if t not in _PTB_DROPPED)


_PTB_THROUGHPUT = re.compile(r"^PTBTokenizer tokenized \d+ tokens at [\d.]+ tokens per second\.$")


def java_available() -> bool:
    return shutil.which("java") is not None


def cider_tokenizer() -> str:
    """The caption tokenizer CIDEr runs here: "ptb-java" (PTBTokenizer, as lmms-eval) or
    "ptb-python" (the imitation, without java). Light: a scoring rule's rerun trigger."""
    return "ptb-java" if java_available() else "ptb-python"


def tokenize_captions(
    captions: dict[Hashable, list[str]], use_java: bool | None = None
) -> dict[Hashable, list[str]]:
    """Tokenise {key: [caption, ...]}; use_java=None picks PTBTokenizer iff java is on PATH."""
    # PTBTokenizer is line-based: any line break inside a caption (\r, \u2028, ...)
    # would misalign every caption after it, so collapse whitespace first.
    cleaned = {key: [" ".join(c.split()) for c in caps] for key, caps in captions.items()}
    if use_java is None:
        use_java = java_available()
    if not use_java:
        return {key: [ptb_like_tokenize(c) for c in caps] for key, caps in cleaned.items()}
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    # Its java prints a throughput line to stderr on every call; anything else it prints still shows.
    with dropping_lines(_PTB_THROUGHPUT):
        return PTBTokenizer().tokenize({key: [{"caption": c} for c in caps] for key, caps in cleaned.items()})


def cider_tokens(samples: list[Sample], use_java: bool | None = None) -> tuple[dict, dict]:
    """(references, prediction) per sample position, tokenised as CIDEr reads them."""
    _require_answers(samples, "cider")
    refs = tokenize_captions({i: list(s.answers) for i, s in enumerate(samples)}, use_java)
    return refs, tokenize_captions({i: [s.output] for i, s in enumerate(samples)}, use_java)


def cider_score(samples: list[Sample], use_java: bool | None = None) -> dict[str, float]:
    """Corpus-level CIDEr-D x100; samples are keyed by position, so ids may repeat."""
    from pycocoevalcap.cider.cider import Cider

    refs, preds = cider_tokens(samples, use_java)
    # One call over the whole set: CIDEr's idf comes from the corpus, so
    # per-caption calls would be meaningless.
    corpus_score, _ = Cider().compute_score(refs, preds)
    return {"cider": 100.0 * float(corpus_score)}


def cider(samples: list[Sample]) -> dict[str, float]:
    return cider_score(samples)


# --------------------------------------------------------------------------
# Resampling forms: each key recomputed on resampled test sets (tunebench.evaluation.resampling)
# --------------------------------------------------------------------------
# Each reads the samples by the same per-item rules as its metric above; tests check that a form
# on the test set itself (every unit drawn once) gives the metric's own score for every key.


def _accuracy_form(samples: list[Sample], values: list[float], key: str, strata_name: str = "category"):
    """Means of per-item values: "accuracy", per category "accuracy/<c>", "average_accuracy" (the mean
    of the per-category accuracies). With categories, each is a stratum of the resampling."""
    categories = [s.category for s in samples]
    layout = (resampling.item_layout(categories, strata_name=strata_name) if any(categories)
              else resampling.item_layout(n=len(samples)))
    base, _, category = key.partition("/")
    if key == "average_accuracy":
        present = sorted(set(categories))
        parts = [resampling.mean_part(layout, values, [c == k for c in categories], 1 / len(present)) for k in present]
    elif category:
        parts = [resampling.mean_part(layout, values, [c == category for c in categories])]
    else:
        parts = [resampling.mean_part(layout, values)]
    return resampling.Resampled(layout, resampling.Ratios.of(parts), [100.0 * v for v in values])


def vqa_accuracy_form(samples: list[Sample], key: str):
    return _accuracy_form(samples, [vqa_soft_score(s.output, s.answers) for s in samples], key)


def exact_match_form(samples: list[Sample], key: str):
    return _accuracy_form(samples, [_exact(s) for s in samples], key)


def choice_accuracy_form(samples: list[Sample], key: str, protocol: str = DEFAULT_PROTOCOL):
    return _accuracy_form(samples, [float(LETTER_RULES[protocol](s)) for s in samples], key)


def _yesno_form(samples: list[Sample], key: str, sums: dict[str, tuple[str, ...]]):
    """yes/no pairs resampled by image pair (acc+ is defined on pairs), within categories. `sums`: keys
    that add the category scores (acc + acc+) of the named categories (MME's perception, ...)."""
    correct = [float(yes_no_correct(s)) for s in samples]
    categories = [s.category for s in samples]
    layout = resampling.group_layout([pair_key(s) for s in samples], categories, "image pair", "category")
    unit_category = [None] * layout.units
    for u, c in zip(layout.unit, categories):
        unit_category[u] = c

    def score_parts(category=None, plus=True, accuracy=True):
        items = None if category is None else [c == category for c in categories]
        units = None if category is None else [c == category for c in unit_category]
        return ([resampling.mean_part(layout, correct, items)] if accuracy else []) + (
            [resampling.all_right_part(layout, correct, units)] if plus else [])

    base, _, category = key.partition("/")
    present = sorted(set(categories))
    if key in sums or key == "score_total":
        chosen = [c for c in present if key == "score_total" or c in sums[key]]
        parts = [p for c in chosen for p in score_parts(c)]
    else:
        parts = score_parts(category or None, plus=base != "accuracy", accuracy=base != "accuracy_plus")
    return resampling.Resampled(layout, resampling.Ratios.of(parts), [100.0 * v for v in correct])


def yesno_pairs_form(samples: list[Sample], key: str):
    return _yesno_form(samples, key, {})


def mme_form(samples: list[Sample], key: str):
    return _yesno_form(samples, key, {"perception": MME_PERCEPTION, "cognition": MME_COGNITION,
                                      "total": MME_PERCEPTION + MME_COGNITION})


def pathvqa_form(samples: list[Sample], key: str):
    """Closed and open questions are the strata (each keeps its count, as their accuracies need)."""
    closed = [is_closed(s) for s in samples]
    ok = [float(yes_no_correct(s)) if c else _exact(s) for s, c in zip(samples, closed)]
    layout = resampling.item_layout(["closed" if c else "open" for c in closed], strata_name="closed/open")
    opened = [not c for c in closed]
    if key == "open_recall":
        values = [0.0 if c else max(token_recall(s.output, a) for a in s.answers) for s, c in zip(samples, closed)]
        part = resampling.mean_part(layout, values, opened)
    else:
        values = ok
        part = resampling.mean_part(layout, ok, {"accuracy": None, "yes_no_accuracy": closed,
                                                 "open_exact_match": opened}[key])
    return resampling.Resampled(layout, resampling.Ratios.of([part]), [100.0 * v for v in values])


def cider_form(samples: list[Sample], key: str):
    refs, preds = cider_tokens(samples)
    corpus = resampling.CiderCorpus([refs[i] for i in range(len(samples))], [preds[i][0] for i in range(len(samples))])
    per_image = corpus.image_scores(np.ones((1, len(samples))))[:, 0]
    return resampling.Resampled(resampling.item_layout(n=len(samples)), corpus, [100.0 * float(v) for v in per_image])


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Metric:
    """A registry entry: the function, the key that enters E/F/O unless a dataset names another
    (`primary`), every key it reports besides "n" and per-category "<key>/<category>" ones, its
    resampling form (samples, key -> resampling.Resampled) and each key's full scale (the most it can
    score; none for a sum over however many categories a set has)."""

    score: Callable[[list[Sample]], dict[str, float]]
    primary: str
    keys: tuple[str, ...]
    form: Callable[..., resampling.Resampled]
    full_scale: dict[str, float]

    def reports(self, key: str) -> bool:
        return key in self.keys or key.partition("/")[0] in self.keys

    def maximum(self, key: str) -> float | None:
        return self.full_scale.get(key, self.full_scale.get(key.partition("/")[0]))


_YESNO_KEYS = ("accuracy", "accuracy_plus", "score", "score_total")
_PERCENT = {"accuracy": 100.0, "accuracy_plus": 100.0, "average_accuracy": 100.0}
_YESNO_SCALE = {**_PERCENT, "score": 200.0}
_PATHVQA_KEYS = ("accuracy", "yes_no_accuracy", "open_exact_match", "open_recall")
METRICS: dict[str, Metric] = {
    "vqa_accuracy": Metric(vqa_accuracy, "accuracy", ("accuracy",), vqa_accuracy_form, _PERCENT),
    "exact_match": Metric(exact_match, "accuracy", ("accuracy", "average_accuracy"), exact_match_form, _PERCENT),
    "choice_accuracy": Metric(choice_accuracy, "accuracy", ("accuracy",), choice_accuracy_form, _PERCENT),
    "yesno_pairs": Metric(yesno_pairs, "accuracy", _YESNO_KEYS, yesno_pairs_form, _YESNO_SCALE),
    "mme": Metric(mme, "total", _YESNO_KEYS + ("perception", "cognition", "total"), mme_form,
                  {**_YESNO_SCALE, "perception": 2000.0, "cognition": 800.0, "total": 2800.0}),
    "pathvqa": Metric(pathvqa, "accuracy", _PATHVQA_KEYS, pathvqa_form, dict.fromkeys(_PATHVQA_KEYS, 100.0)),
    "cider": Metric(cider, "cider", ("cider",), cider_form, {"cider": 1000.0}),  # CIDEr-D is at most 10 per image
}


def score(metric: str, samples: list[Sample], protocol: str = DEFAULT_PROTOCOL) -> dict[str, float]:
    """Run a registered metric on the stripped outputs; the result also carries "n", the number of
    samples. `protocol` picks how option letters are read (choice_accuracy)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known metrics: {', '.join(sorted(METRICS))}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known protocols: {', '.join(PROTOCOLS)}")
    if not samples:
        raise ValueError(f"metric {metric!r} needs at least one sample, got an empty list")
    stripped = [replace(s, output=s.output.strip()) for s in samples]
    return {**METRICS[metric].score(stripped, **_options(metric, protocol)), "n": len(samples)}


def _options(metric: str, protocol: str) -> dict:
    # Option letters are the one reading that differs between protocols.
    return {"protocol": protocol} if metric == "choice_accuracy" else {}


def resampled(metric: str, samples: list[Sample], key: str, protocol: str = DEFAULT_PROTOCOL) -> resampling.Resampled:
    """`key` of a registered metric in resampling form, on the stripped outputs (as `score` reads them)."""
    stripped = [replace(s, output=s.output.strip()) for s in samples]
    return METRICS[metric].form(stripped, key, **_options(metric, protocol))
