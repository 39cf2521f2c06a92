"""Known-answer tests for tunebench.evaluation.metrics; expected numbers are worked by hand in comments."""

import math

import pytest

from tunebench.evaluation import metrics
from tunebench.evaluation.metrics import (
    METRICS,
    Sample,
    cider_score,
    cider_tokenizer,
    llava_letter,
    lmms_eval_letter_correct,
    normalize_exact,
    normalize_vqa_answer,
    parse_yes_no,
    ptb_like_tokenize,
    score,
    tokenize_captions,
    vqa_soft_score,
)

needs_java = pytest.mark.skipif(not metrics.java_available(), reason="java not on PATH")


def vqa(output, answers, id="q"):
    return Sample(id=id, output=output, answers=answers)


# ---------------------------------------------------------------- VQA ----


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Two", "2"),  # number word -> digit
        ("the dog.", "dog"),  # article dropped, trailing period removed
        ("A Dog", "dog"),
        ("dont", "don't"),  # contraction table
        ("isnt", "isn't"),
        ("1,000", "1000"),  # commas deleted up front
        ("3.5", "3.5"),  # period followed by a digit kept
        ("3.", "3"),  # period not followed by a digit removed
        ("mr. smith?", "mr smith"),
        ("black-and-white", "black and white"),  # glued '-' becomes a space
        ("black - white", "black white"),  # spaced '-' is deleted
        ("none", "0"),  # EvalAI quirk: "none" is a number word
        ("What's\tthat\n", "what 's that"),  # 's split off; tab/newline -> space
        ("yes!", "yes"),
    ],
)
def test_vqa_normalisation(raw, expected):
    assert normalize_vqa_answer(raw) == expected


def test_vqa_period_strip_applies_at_most_32_times():
    # The reference passes re.UNICODE (32) as re.sub's count: 40 periods -> 8 survive.
    assert normalize_vqa_answer("." * 40 + "x") == "." * 8 + "x"


def test_vqa_soft_score_leave_one_out():
    # 2x red + 8x blue, pred red. For each blue ref, the other 9 contain 2 reds
    # -> min(1, 2/3); for each red ref, the other 9 contain 1 red -> 1/3.
    # (8 * 2/3 + 2 * 1/3) / 10 = (16/3 + 2/3) / 10 = 6/10 = 0.6
    assert vqa_soft_score("red", ["red"] * 2 + ["blue"] * 8) == pytest.approx(0.6)
    # 1 match: its own ref sees 0 -> 0; 9 others see 1 -> 1/3. 9 * 1/3 / 10 = 0.3
    assert vqa_soft_score("red", ["red"] + ["blue"] * 9) == pytest.approx(0.3)
    # 3 matches: 3 refs see 2 -> 2/3; 7 see 3 -> 1. (3 * 2/3 + 7) / 10 = 0.9
    assert vqa_soft_score("red", ["red"] * 3 + ["blue"] * 7) == pytest.approx(0.9)
    # 4 matches: every ref sees >= 3 -> 1.0
    assert vqa_soft_score("red", ["red"] * 4 + ["blue"] * 6) == pytest.approx(1.0)
    assert vqa_soft_score("green", ["red"] * 4 + ["blue"] * 6) == 0.0


def test_vqa_soft_score_normalises_both_sides():
    # "Two" -> "2"; refs "2", "two", "2." all -> "2": 4 of 10 match -> 1.0
    assert vqa_soft_score("Two", ["2", "2", "two", "2."] + ["3"] * 6) == pytest.approx(1.0)
    assert vqa_soft_score("the dog.", ["dog"] * 10) == 1.0
    assert vqa_soft_score("dont", ["don't"] * 10) == 1.0
    assert vqa_soft_score("1,000", ["1000"] * 10) == 1.0
    assert vqa_soft_score("3.5", ["3.5"] * 10) == 1.0
    assert vqa_soft_score("3.5", ["35"] * 10) == 0.0  # the period between digits is kept


def test_vqa_accuracy_dataset_mean():
    samples = [
        vqa("Two", ["2"] * 10, id="a"),  # 1.0
        vqa("red", ["red"] * 2 + ["blue"] * 8, id="b"),  # 0.6
        vqa("cat", ["dog"] * 10, id="c"),  # 0.0
    ]
    # (1.0 + 0.6 + 0.0) / 3 * 100 = 53.333...
    assert score("vqa_accuracy", samples) == {"accuracy": pytest.approx(160 / 3), "n": 3}


# -------------------------------------------------------- exact match ----


def test_exact_match_normalisation():
    assert normalize_exact("Black-and-White.") == "blackandwhite"  # punctuation anywhere
    assert normalize_exact("The Dog") == "the dog"  # no article removal
    assert normalize_exact(". left") == " left"  # no strip after deleting (lmms-eval strips before only)


def test_exact_match_accuracy():
    samples = [
        Sample("1", "Yes.", ["yes"]),  # right: case + punctuation
        Sample("2", "black-and-white", ["blackandwhite"]),  # right: inner '-' deleted
        Sample("3", " left ", ["right", "left"]),  # right: any reference, whitespace stripped
        Sample("4", "The dog", ["dog"]),  # wrong: articles are not dropped
        Sample("5", "two", ["2"]),  # wrong: no number-word mapping
        Sample("6", "left .", ["left"]),  # wrong: "left " after the period goes
    ]
    # 3 of 6 right -> 50
    assert score("exact_match", samples)["accuracy"] == pytest.approx(50.0)


# ---------------------------------------------------- multiple choice ----

THREE = ["red circle", "blue square", "green dot"]


@pytest.mark.parametrize(
    "output, gold, right",
    [
        ("B", "B", True),
        ("b", "B", True),  # the whole output equals the letter in any case
        ("B.", "B", True),  # a capital and a period start it
        ("B. blue square", "B", True),
        ("B.blue", "B", True),
        ("b. blue square", "B", False),  # the capital must be upper case
        ("(B)", "B", False),
        ("B)", "B", False),
        ("B: blue square", "B", False),
        ("Answer: B", "B", False),
        ("The answer is B.", "B", False),
        ("Option B", "B", False),
        ("A, B", "A", False),
        ("blue square", "B", False),  # option text is not a letter
        ("A.", "B", False),
        ("", "A", False),
    ],
)
def test_lmms_eval_letter_rule(output, gold, right):
    assert lmms_eval_letter_correct(output, gold) is right


@pytest.mark.parametrize(
    "output, n, letter",
    [
        ("B", 3, "B"),
        ("B. blue square", 3, "B"),
        ("The answer is C.", 3, "C"),
        ("So. The answer is C!", 3, "C"),  # any one character after the letter
        ("The answer is C", 3, None),  # ... but one is needed
        ("The answer is A. The answer is B.", 3, None),  # exactly one match
        ("B.", 3, None),  # "B." is neither the letter alone nor "B. "
        ("b", 3, None),
        ("(B)", 3, None),
        ("D", 3, None),  # beyond the choices
        ("F", 6, None),  # LLaVA reads A-E only
        ("E. x", 5, "E"),
    ],
)
def test_llava_letter_rule(output, n, letter):
    assert llava_letter(output, n) == letter


def test_choice_accuracy_per_protocol():
    samples = [
        Sample("1", "B", ["B"], choices=THREE),  # right in both
        Sample("2", "c", ["C"], choices=THREE),  # lmms-eval only
        Sample("3", "The answer is C.", ["C"], choices=THREE),  # LLaVA only
        Sample("4", " B. blue square\n", ["B"], choices=THREE),  # both: outputs are stripped first
        Sample("5", "A", ["B"], choices=THREE),  # wrong letter
    ]
    # lmms_eval: 1, 2, 4 right -> 60; llava: 1, 3, 4 -> 60; different samples.
    assert score("choice_accuracy", samples)["accuracy"] == pytest.approx(60.0)
    assert score("choice_accuracy", samples, protocol="llava")["accuracy"] == pytest.approx(60.0)
    assert score("choice_accuracy", samples[1:2])["accuracy"] == 100.0
    assert score("choice_accuracy", samples[1:2], protocol="llava")["accuracy"] == 0.0


def test_unknown_protocol_is_named():
    with pytest.raises(ValueError, match=r"unknown protocol 'openai'; known protocols: lmms_eval, llava"):
        score("choice_accuracy", [Sample("1", "B", ["B"], choices=THREE)], protocol="openai")


# ------------------------------------------------------- yes/no (MME) ----


@pytest.mark.parametrize(
    "output, expected",
    [
        ("Yes", "yes"),
        ("  YES, it is.", "yes"),
        ("No.", "no"),
        ("not at all", "no"),  # "no" in the first four characters
        ("y", "yes"),  # a lone y / n
        ("N.", "no"),
        ("(yes)", "yes"),  # "yes" anywhere in the first four
        ('"No"', "no"),
        ("know", "no"),  # the reference's quirk: "no" inside a word counts
        ("Sure, yes", "other"),  # "yes" too late
        ("I think so", "other"),
        ("", "other"),
    ],
)
def test_parse_yes_no(output, expected):
    assert parse_yes_no(output) == expected


def mme(category, image_id, gold, output, n):
    return Sample(id=f"{category}-{n}", output=output, answers=[gold], image_id=image_id, category=category)


MME_SET = [
    # color: img1 both right; img2 second wrong; img3 first "other" -> wrong
    mme("color", "img1.png", "yes", "Yes", 1),
    mme("color", "img1.png", "no", "No.", 2),
    mme("color", "img2.png", "yes", "yes, it is", 3),
    mme("color", "img2.png", "no", "Yes", 4),
    mme("color", "img3.png", "yes", "I think so", 5),
    mme("color", "img3.png", "no", "no", 6),
    # count: same image names as color. img1 both right; img2 first wrong; img3 both right
    mme("count", "img1.png", "yes", "yes", 7),
    mme("count", "img1.png", "no", "no", 8),
    mme("count", "img2.png", "yes", "no", 9),
    mme("count", "img2.png", "no", "not at all", 10),
    mme("count", "img3.png", "yes", "YES", 11),
    mme("count", "img3.png", "no", "No", 12),
]


def test_yesno_pairs_mme():
    result = score("yesno_pairs", MME_SET)
    # color: correct 1,1,1,0,0,1 -> 4/6 = 66.67; groups right: img1 only -> 1/3 = 33.33; score 100
    assert result["accuracy/color"] == pytest.approx(400 / 6)
    assert result["accuracy_plus/color"] == pytest.approx(100 / 3)
    assert result["score/color"] == pytest.approx(100.0)
    # count: correct 1,1,0,1,1,1 -> 5/6 = 83.33; groups right: img1, img3 -> 2/3 = 66.67; score 150
    assert result["accuracy/count"] == pytest.approx(500 / 6)
    assert result["accuracy_plus/count"] == pytest.approx(200 / 3)
    assert result["score/count"] == pytest.approx(150.0)
    # overall: 9/12 = 75; groups are (category, image): 3 of 6 right -> 50
    # (grouping by image alone would give img1 only -> 33.33); score 125
    assert result["accuracy"] == pytest.approx(75.0)
    assert result["accuracy_plus"] == pytest.approx(50.0)
    assert result["score"] == pytest.approx(125.0)
    assert result["score_total"] == pytest.approx(250.0)  # 100 + 150
    assert result["n"] == 12


def test_mme_perception_and_cognition_sums():
    # MME_SET (color 100, count 150: both perception) plus a cognition category:
    # code_reasoning: img1 both right; img2 "yes" for "no" -> correct 1,1,1,0 = 75; acc+ 1/2 = 50; score 125.
    cognition = [mme("code_reasoning", "img1.png", "yes", "Yes", 21), mme("code_reasoning", "img1.png", "no", "No", 22),
                 mme("code_reasoning", "img2.png", "yes", "Yes", 23), mme("code_reasoning", "img2.png", "no", "Yes", 24)]
    result = score("mme", MME_SET + cognition)
    assert result["score/code_reasoning"] == pytest.approx(125.0)
    assert result["perception"] == pytest.approx(250.0)  # color 100 + count 150
    assert result["cognition"] == pytest.approx(125.0)
    assert result["total"] == pytest.approx(375.0)
    assert result["n"] == 16


def test_mme_unknown_category_is_named():
    with pytest.raises(ValueError, match=r"mme: categories \['colour'\] are neither perception"):
        score("mme", [mme("colour", "a.png", "yes", "yes", 1)])


def test_exact_match_per_question_type_rsvqa():
    samples = [
        Sample("1", "Yes", ["yes"], category="presence"),  # right
        Sample("2", "no", ["yes"], category="presence"),  # wrong
        Sample("3", "rural.", ["rural"], category="rural_urban"),  # right
        Sample("4", "12", ["12"], category="count"),  # right
        Sample("5", "twelve", ["12"], category="count"),  # wrong: no number words
        Sample("6", "No", ["no"], category="comparison"),  # right
    ]
    result = score("exact_match", samples)
    # overall 4/6; per type: presence 50, rural_urban 100, count 50, comparison 100; AA = 300/4 = 75
    assert result == {"accuracy": pytest.approx(400 / 6), "accuracy/presence": 50.0, "accuracy/rural_urban": 100.0,
                      "accuracy/count": 50.0, "accuracy/comparison": 100.0, "average_accuracy": 75.0, "n": 6}


def test_pathvqa_closed_and_open():
    samples = [
        Sample("1", "Yes, it is.", ["yes"]),  # closed, right (leading yes)
        Sample("2", "no", ["yes"]),  # closed, wrong
        Sample("3", "No", ["no"]),  # closed, right
        Sample("4", "Granuloma.", ["granuloma"]),  # open, exact
        Sample("5", "squamous cell", ["squamous cell carcinoma"]),  # open, not exact; recall 2/3
        Sample("6", "the left atrium", ["atrium"]),  # open, not exact; recall 1
    ]
    result = score("pathvqa", samples)
    assert result["yes_no_accuracy"] == pytest.approx(200 / 3)  # 2 of 3
    assert result["open_exact_match"] == pytest.approx(100 / 3)  # 1 of 3
    assert result["open_recall"] == pytest.approx(100 * (1 + 2 / 3 + 1) / 3)  # 88.89
    assert result["accuracy"] == pytest.approx(50.0)  # 3 of 6
    assert result["n_yes_no"] == 3 and result["n_open"] == 3


def test_yesno_pairs_without_categories_has_no_per_category_keys():
    # One image, one of two right: acc 50, acc+ 0.
    samples = [Sample("1", "yes", ["yes"], image_id="i"), Sample("2", "yes", ["no"], image_id="i")]
    assert score("yesno_pairs", samples) == {"accuracy": 50.0, "accuracy_plus": 0.0, "score": 50.0, "n": 2}


# -------------------------------------------------------------- CIDEr ----

BOTH_PATHS = [False, pytest.param(True, marks=needs_java)]


def caption(output, refs, id="img"):
    return Sample(id=id, output=output, answers=refs)


@pytest.mark.parametrize("use_java", BOTH_PATHS)
def test_cider_hand_worked(use_java):
    # Two images, one ref each: "black cat", "brown dog". N = 2, so every n-gram
    # seen in one image's refs has weight log(2) - log(1) = log 2 (unseen: log 2 too).
    # Perfect predictions: unigram and bigram cosines are 1, no 3/4-grams -> 0,
    # no length penalty: 10 * mean(1, 1, 0, 0) = 5 per image -> 500.
    perfect = [caption("Black cat.", ["black cat"], "1"), caption("brown dog", ["brown dog"], "2")]
    assert cider_score(perfect, use_java)["cider"] == pytest.approx(500.0)

    # Unigram only: refs "cat", "dog"; preds "dog", "dog". Image 1 shares nothing -> 0;
    # image 2: unigram cosine 1 -> 10 * mean(1, 0, 0, 0) = 2.5. Mean 1.25 -> 125.
    unigram = [caption("dog", ["cat"], "1"), caption("dog", ["dog"], "2")]
    assert cider_score(unigram, use_java)["cider"] == pytest.approx(125.0)

    # Length penalty: pred "black cat sat" vs "black cat". Unigrams: 2 shared of
    # hyp norm sqrt(3), ref norm sqrt(2) -> 2/sqrt(6); bigrams: 1 of sqrt(2)*1 ->
    # 1/sqrt(2); trigram has no ref counterpart -> 0. Length counts bigrams:
    # delta = 2 - 1 = 1 -> penalty exp(-1/72). Second image perfect -> 5.
    longer = [caption("black cat sat", ["black cat"], "1"), caption("brown dog", ["brown dog"], "2")]
    first = 10 * (2 / math.sqrt(6) + 1 / math.sqrt(2)) / 4 * math.exp(-1 / 72)
    assert cider_score(longer, use_java)["cider"] == pytest.approx((first + 5) / 2 * 100)


FOUR_IMAGES = [
    caption("A man riding a wave on a surfboard.", [
        "A man riding a wave on top of a surfboard.",
        "A surfer rides a large wave in the ocean.",
        "Man on a surfboard riding an ocean wave."], "surf"),
    caption("Two zebras standing in a field.", [
        "Two zebras standing next to each other in a field.",
        "A pair of zebras grazing on the grass.",
        "Zebras stand together in a grassy field."], "zebra"),
    caption("A kitchen with a wooden table.", [
        "A kitchen with stainless steel appliances and a wooden table.",
        "A clean kitchen with a table and chairs.",
        "The kitchen has wooden cabinets and a dining table."], "kitchen"),
    caption("A cat sleeping on a couch.", [
        "An orange cat is sleeping on the couch.",
        "A cat curled up asleep on a sofa.",
        "A sleeping cat lying on a couch cushion."], "cat"),
]


@pytest.mark.parametrize("use_java", BOTH_PATHS)
def test_cider_perfect_beats_wrong(use_java):
    perfect = [caption(s.answers[0], s.answers, s.id) for s in FOUR_IMAGES]
    # Each image gets another image's caption.
    wrong = [caption(FOUR_IMAGES[(i + 1) % 4].answers[0], s.answers, s.id) for i, s in enumerate(FOUR_IMAGES)]
    assert cider_score(perfect, use_java)["cider"] > cider_score(FOUR_IMAGES, use_java)["cider"]
    assert cider_score(FOUR_IMAGES, use_java)["cider"] > cider_score(wrong, use_java)["cider"]


@pytest.mark.parametrize("use_java", BOTH_PATHS)
def test_cider_one_sample_scores_zero(use_java):
    # N = 1: idf = log(1) - log(df = 1) = 0 for every n-gram, so even a perfect caption scores 0.
    assert cider_score([caption("a black cat", ["a black cat"])], use_java)["cider"] == 0.0


def test_cider_registered_metric_uses_auto_path():
    result = score("cider", FOUR_IMAGES)
    assert set(result) == {"cider", "n"}
    assert result["cider"] == pytest.approx(cider_score(FOUR_IMAGES)["cider"])


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("A dog's ball, (red).", "a dog 's ball -lrb- red -rrb-"),  # PTB keeps lowercased bracket escapes
        ("Don't worry; it's 3.5 meters-long!", "do n't worry it 's 3.5 meters-long"),
        ("1,000 people at 5:30 p.m. in the U.S.A.", "1,000 people at 5:30 p.m. in the u.s.a."),
        ('a sign that says "stop"', "a sign that says stop"),
        ("Hello...  world? they're here -- wow!!", "hello world they 're here wow !!"),
        ("", ""),
    ],
)
def test_ptb_like_tokenize(raw, expected):
    assert ptb_like_tokenize(raw) == expected


PLAIN_CAPTIONS = [s.output for s in FOUR_IMAGES] + [r for s in FOUR_IMAGES for r in s.answers] + [
    "A dog's ball (red) is on the grass.", "Don't worry, it's 3.5 meters-long!",
    "1,000 people; e.g. U.S.A. ... wow -- ok - fine", "isn't it great? No, it wasn't.",
]


@needs_java
def test_java_path_is_named_ptb_java():
    assert cider_tokenizer() == "ptb-java"


@needs_java
def test_fallback_tokeniser_agrees_with_ptb_on_plain_english():
    captions = {i: [c] for i, c in enumerate(PLAIN_CAPTIONS)}
    assert tokenize_captions(captions, use_java=False) == tokenize_captions(captions, use_java=True)


@needs_java
def test_java_path_survives_line_breaks_inside_captions():
    # A raw "\r" would split a PTBTokenizer line and shift every later caption.
    captions = {0: ["a\rcat"], 1: ["a dog"]}
    assert tokenize_captions(captions, use_java=True) == {0: ["a cat"], 1: ["a dog"]}


def test_auto_path_without_java_uses_fallback(monkeypatch):
    monkeypatch.setenv("PATH", "")
    assert not metrics.java_available() and cider_tokenizer() == "ptb-python"
    # "@home" is where the paths differ: PTB keeps it whole, the fallback splits it.
    assert tokenize_captions({0: ["At @home"]}) == {0: ["at @ home"]}
    assert cider_score(FOUR_IMAGES)["cider"] == pytest.approx(cider_score(FOUR_IMAGES, use_java=False)["cider"])


# ----------------------------------------------------------- registry ----


def test_registry_names():
    assert set(METRICS) == {"vqa_accuracy", "exact_match", "choice_accuracy", "yesno_pairs", "cider", "mme", "pathvqa"}


def test_unknown_metric_is_named():
    with pytest.raises(ValueError, match="bleu") as excinfo:
        score("bleu", [vqa("x", ["x"])])
    assert "vqa_accuracy" in str(excinfo.value)  # lists the known names


def test_empty_samples_refused():
    with pytest.raises(ValueError, match="empty"):
        score("exact_match", [])


def test_sample_without_references_refused():
    with pytest.raises(ValueError, match="no reference"):
        score("vqa_accuracy", [vqa("x", [])])
