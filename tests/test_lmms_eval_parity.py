"""Every protocol equal to lmms-eval's, proven against lmms-eval's own code: the pinned wheel's task
`utils.py` functions (process_results, aggregation, doc_to_text) and task YAMLs run on the same
outputs and rows as tunebench's scoring and formats, per sample and in aggregate, on hand-written
edge cases per protocol and a few hundred generated outputs each.

lmms-eval's harness strips every generation before a task's process_results sees it
(lmms_eval/api/task.py, ConfigurableTask.process_results); `harness` does the same here.
"""

import copy
import random

import lmms_eval_reference as ref
import pytest
import yaml
from public_fixtures import PUBLIC, hub_spec, write_hub_folder

from tunebench.data import sources
from tunebench.evaluation import metrics
from tunebench.evaluation.metrics import Sample, score

pytestmark = pytest.mark.usefixtures("hf_cache")
ROUNDS = 300  # generated outputs per protocol
needs_java = pytest.mark.skipif(not metrics.java_available(), reason="lmms-eval tokenises captions with java")


def harness(output: str) -> list[str]:
    return [output.strip()]


def test_the_reference_is_the_pinned_wheel():
    assert ref.distribution().version == ref.PIN
    assert (ref.TASKS / "mme" / "utils.py").is_file()


# ---- generated outputs ------------------------------------------------------------------------

NUMBER_WORDS = {"0": "zero", "1": "one", "2": "two", "3": "three", "7": "seven", "10": "ten"}
LEADS = ["", "", "", "The answer is ", "I think ", "answer: ", "It is ", "the ", "a ", "An ", "\n", "  "]
TAILS = ["", "", "", ".", "!", "?", ",", " .", "...", " because it is", " in the image.", "\n", "  ", "'s", ")"]


def recase(rng: random.Random, text: str) -> str:
    how = rng.choice(["same", "lower", "upper", "title", "capitalize", "random"])
    if how == "random":
        return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)
    return text if how == "same" else getattr(text, how)()


def noisy(rng: random.Random, answer: str) -> str:
    """An answer as a model might write it: casing, number words, punctuation, leading/trailing text."""
    words = [NUMBER_WORDS.get(w, w) if rng.random() < 0.3 else w for w in answer.split()]
    return rng.choice(LEADS) + recase(rng, " ".join(words)) + rng.choice(TAILS)


# ---- VQA soft accuracy: ok_vqa and textvqa ----------------------------------------------------

VQA_ANSWERS = ["2", "two", "red", "dont", "don't", "black and white", "black-and-white", "3.5", "1,000", "mr. smith",
               "yes", "no", "the dog", "dog", "a cat", "10", "none", "8:00", "bus stop", "people's"]
VQA_CASES = [  # (output, the 10 references)
    ("Two", ["2"] * 10), ("the dog.", ["dog"] * 10), ("dont", ["don't"] * 6 + ["no"] * 4),
    ("1,000", ["1000"] * 3 + ["1,000"] * 7), ("3.5", ["35"] * 10), ("red", ["red"] * 2 + ["blue"] * 8),
    ("black-and-white", ["black and white"] * 10), ("Mr. Smith?", ["mr smith"] * 4 + ["smith"] * 6),
    ("", ["yes"] * 10), ("none", ["0"] * 5 + ["none"] * 5), ("It's 8:00.", ["8:00"] * 10), ("a", ["a"] * 10),
]


def vqa_sets(rng):
    cases = list(VQA_CASES)
    for _ in range(ROUNDS):
        refs = [rng.choice(VQA_ANSWERS) for _ in range(10)]
        cases.append((noisy(rng, rng.choice(refs + VQA_ANSWERS)), refs))
    return cases


@pytest.mark.parametrize("task, fn", [("ok_vqa", "ok_vqa_process_results"), ("textvqa", "textvqa_process_results")])
def test_vqa_accuracy_equals_lmms_eval(task, fn):
    process_results = getattr(ref.task_utils(task), fn)
    cases = vqa_sets(random.Random(task))
    theirs = [process_results({"question_id": i, "answers": list(refs)}, harness(out))["exact_match"]
              for i, (out, refs) in enumerate(cases)]
    samples = [Sample(str(i), out, refs) for i, (out, refs) in enumerate(cases)]
    ours = [metrics.vqa_soft_score(out.strip(), refs) for out, refs in cases]
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert score("vqa_accuracy", samples)["accuracy"] == pytest.approx(100 * ref.api_metrics().mean(theirs))
    assert 0 < sum(theirs) < len(theirs)  # the set holds right, wrong and partly right answers


# ---- exact match: gqa -------------------------------------------------------------------------

GQA_ANSWERS = ["left", "right", "yes", "no", "red", "black and white", "t-shirt", "man's", "2", "the table"]
GQA_CASES = [("Left", "left"), ("left.", "left"), (". left", "left"), ("left .", "left"), (" left ", "left"),
             ("The table", "table"), ("two", "2"), ("T-shirt", "tshirt"), ("t shirt", "t-shirt"), ("man's", "mans"),
             ("yes!", "yes"), ("", "no"), ("Yes, it is.", "yes")]


def test_gqa_exact_match_equals_lmms_eval():
    rng = random.Random("gqa")
    cases = GQA_CASES + [(noisy(rng, rng.choice(GQA_ANSWERS)), rng.choice(GQA_ANSWERS)) for _ in range(ROUNDS)]
    config = ref.task_config("gqa", "gqa.yaml")["metric_list"][0]
    options = {k: config[k] for k in ("ignore_case", "ignore_punctuation")}
    exact_match = ref.api_metrics().exact_match_hf_evaluate
    theirs = [float(exact_match(predictions=harness(out), references=[gold], **options)["exact_match"])
              for out, gold in cases]
    ours = [metrics.exact_score(out.strip(), [gold]) for out, gold in cases]
    assert ours == theirs
    samples = [Sample(str(i), out, [gold]) for i, (out, gold) in enumerate(cases)]
    assert score("exact_match", samples)["accuracy"] == pytest.approx(100 * ref.api_metrics().mean(theirs))
    assert 0 < sum(theirs) < len(theirs)


# ---- option letters: scienceqa (and iconqa, scored by the same rule) --------------------------

LETTER_FORMS = ["{L}", "{l}", "{L}.", "{l}.", "({L})", "{L})", "{L}:", "{L}. {text}", "{L}.{text}", "{l}. {text}",
                "Answer: {L}", "The answer is {L}.", "The answer is {L}", "the answer is {L}.", "Option {L}", "{L}, {M}",
                "{L} {text}", "{L} is correct", "{text}", "{L}\n", "\n{L}. {text}", "{L}{M}", "Because {text}",
                "The answer is {L}. The answer is {M}.", "I pick ({L})", "{L}. The answer is {M}."]
CHOICES = ["cat", "dog", "bird", "fish", "cow", "ant"]


def letter_cases(rng):
    """(output, gold letter, number of choices): every form, right and wrong letters, letters out of range."""
    cases = [("C", "C", 3), ("c", "C", 3), ("(C)", "C", 3), ("Answer: B", "B", 3), ("Option B", "B", 3),
             ("A, B", "A", 3), ("B. dog", "B", 3), ("B.dog", "B", 3), ("b. dog", "B", 3), ("The answer is B.", "B", 3),
             ("F", "F", 6), ("F. ant", "F", 6), ("The answer is F.", "F", 6), ("", "A", 2), ("D.", "A", 3)]
    for _ in range(ROUNDS):
        n = rng.randint(2, 6)
        gold = "ABCDEF"[rng.randrange(n)]
        shown = gold if rng.random() < 0.6 else rng.choice("ABCDEFG")
        form = rng.choice(LETTER_FORMS).format(L=shown, l=shown.lower(), M=rng.choice("ABCD"),
                                               text=rng.choice(CHOICES[:n]))
        cases.append((rng.choice(["", " ", "\n"]) + form + rng.choice(["", " ", "\n"]), gold, n))
    return cases


def test_option_letters_equal_lmms_eval_scienceqa():
    process_results = ref.task_utils("scienceqa").sqa_process_results
    cases = letter_cases(random.Random("scienceqa"))
    theirs = [process_results({"choices": CHOICES[:n], "answer": "ABCDEF".index(gold)}, harness(out))["exact_match"]
              for out, gold, n in cases]
    samples = [Sample(str(i), out, [gold], choices=CHOICES[:n]) for i, (out, gold, n) in enumerate(cases)]
    ours = [score("choice_accuracy", [s])["accuracy"] / 100 for s in samples]
    assert ours == theirs
    assert score("choice_accuracy", samples)["accuracy"] == pytest.approx(100 * ref.api_metrics().mean(theirs))
    assert 0 < sum(theirs) < len(theirs)


# The LLaVA protocol, by LLaVA's llava/eval/eval_science_qa.py (haotian-liu/LLaVA c121f04), read by hand:
# a letter alone, "X. " at the start, or exactly one "The answer is X." match; only A-E.
LLAVA_CASES = [("B", "B", 3, 1.0), ("B. dog", "B", 3, 1.0), ("The answer is B.", "B", 3, 1.0),
               ("Sure. The answer is B!", "B", 3, 1.0), ("The answer is B", "B", 3, 0.0), ("b", "B", 3, 0.0),
               ("B.", "B", 3, 0.0), ("B.dog", "B", 3, 0.0), ("(B)", "B", 3, 0.0), ("Answer: B", "B", 3, 0.0),
               ("The answer is B. The answer is B.", "B", 3, 0.0), ("D", "D", 3, 0.0), ("F", "F", 6, 0.0),
               ("E. cow", "E", 5, 1.0), ("  C  ", "C", 3, 1.0)]


@pytest.mark.parametrize("output, gold, n, expected", LLAVA_CASES)
def test_option_letters_llava_protocol(output, gold, n, expected):
    sample = Sample("1", output, [gold], choices=CHOICES[:n])
    assert score("choice_accuracy", [sample], protocol="llava")["accuracy"] == 100 * expected


def test_the_protocols_differ_where_lmms_eval_and_llava_do():
    # lmms-eval credits "c" and "B." and refuses "The answer is B."; LLaVA the other way round.
    for output, lmms_eval, llava in (("c", 100.0, 0.0), ("C.", 100.0, 0.0), ("The answer is C.", 0.0, 100.0)):
        sample = [Sample("1", output, ["C"], choices=CHOICES[:3])]
        assert (score("choice_accuracy", sample)["accuracy"],
                score("choice_accuracy", sample, protocol="llava")["accuracy"]) == (lmms_eval, llava)


def test_lmms_eval_iconqa_scores_a_field_icon_qa_lacks():
    """Why IconQA is scored by the authors' protocol (choose_txt, the option letter) instead: lmms-eval's
    iconqa task targets `answers` (ANLS), which ICON-QA's rows do not have."""
    config = ref.task_config("iconqa", "iconqa_test.yaml")
    assert config["doc_to_target"] == "answers" and config["metric_list"][0]["metric"] == "anls"
    assert "answers" not in PUBLIC["iconqa"]().features and "answer" in PUBLIC["iconqa"]().features


# ---- yes/no: mme ------------------------------------------------------------------------------

YES_NO_FORMS = ["yes", "no", "Yes", "No", "YES.", "No.", "y", "n", "Y.", "N", "yes, there is", "No, it is not",
                "not at all", "nope", "know", "(yes)", '"No"', "Sure, yes", "The answer is yes", "I don't know",
                "yes.", " no ", "Yes\n", "nah", "absolutely yes", "noo", "yeah", "", "maybe", "no yes", "Yes!"]
MME_CATEGORIES = list(metrics.MME_PERCEPTION + metrics.MME_COGNITION)


def mme_docs(rng, images_per_category):
    """Two questions per image (answers Yes and No), image names repeating across categories."""
    docs = []
    for category in MME_CATEGORIES:
        for k in range(images_per_category):
            for answer in ("Yes", "No"):
                out = rng.choice(YES_NO_FORMS) if rng.random() < 0.7 else noisy(rng, rng.choice(["yes", "no"]))
                docs.append(({"question_id": f"{k:04d}.png", "category": category, "answer": answer}, out))
    return docs


def test_mme_equals_lmms_eval_per_sample_and_in_its_sums():
    mme = ref.task_utils("mme")
    docs = mme_docs(random.Random("mme"), images_per_category=11)  # 14 x 11 x 2 = 308 questions
    processed = [mme.mme_process_results(doc, harness(out)) for doc, out in docs]
    theirs = {part: mme.mme_aggregate_results([r[key] for r in processed if key in r])
              for part, key in (("perception", "mme_perception_score"), ("cognition", "mme_cognition_score"))}
    samples = [Sample(str(i), out, [doc["answer"]], image_id=doc["question_id"], category=doc["category"])
               for i, (doc, out) in enumerate(docs)]
    ours = score("mme", samples)
    per_sample = [next(iter(r.values()))["score"] for r in processed]
    assert [metrics.parse_yes_no(out.strip()) == doc["answer"].lower() for doc, out in docs] == \
        [bool(s) for s in per_sample]
    assert ours["perception"] == pytest.approx(theirs["perception"])
    assert ours["cognition"] == pytest.approx(theirs["cognition"])
    assert 0 < sum(per_sample) < len(per_sample)


@pytest.mark.parametrize("output", YES_NO_FORMS)
def test_mme_answer_parser_equals_lmms_eval(output):
    assert metrics.parse_yes_no(output.strip()) == ref.task_utils("mme").parse_pred_ans(output.strip())


def test_mme_broken_pairs_are_refused_as_lmms_eval_refuses_them():
    samples = [Sample("1", "yes", ["yes"], image_id="a.png", category="count")]
    with pytest.raises(ValueError, match=r"mme: \(category, image\) \[\('count', 'a.png'\)\] hold \[1\] questions"):
        score("mme", samples)
    with pytest.raises(AssertionError, match="pairwise"):
        mme = ref.task_utils("mme")
        mme.mme_aggregate_results([{"question_id": "a.png", "category": "count", "score": 1.0}])


# ---- CIDEr: coco_cap and flickr30k ------------------------------------------------------------

WORDS = ["a", "man", "woman", "dog", "riding", "on", "the", "beach", "red", "bus", "two", "people", "sitting",
         "bench", "near", "water", "with", "is", "an", "old", "black", "cat", "street", "playing", "ball"]


def sentence(rng):
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10)))
    return recase(rng, text) + rng.choice(["", ".", " .", "!", ","])


CAPTION_CASES = [  # (prediction, references): PTB's punctuation, clitics, numbers, brackets, quotes, nothing
    ("A dog's ball (red) is on the grass.", ["a dog's ball is red", "A red ball (a dog's) on grass."]),
    ("Don't worry, it's 3.5 meters-long!", ["it is 3.5 meters long", "Don't worry: it's long."]),
    ('A sign that says "STOP" -- at 5:30 p.m.', ["a stop sign", 'The sign says "stop".']),
    ("", ["an empty street", "a street"]),
    ("   two  people ,  sitting   ", ["Two people sitting.", "two people are sitting on a bench"]),
]


def caption_set(rng, n):
    """Hand-written cases, then (prediction, five references) per image; predictions often share the
    references' words."""
    rows = list(CAPTION_CASES)
    for _ in range(n):
        refs = [sentence(rng) for _ in range(5)]
        pred = rng.choice(refs) if rng.random() < 0.3 else sentence(rng)
        rows.append((rng.choice(["", " ", "A photo of "]) + pred, refs))
    return rows


@needs_java
@pytest.mark.parametrize("task", ["coco_cap", "flickr30k"])
def test_cider_equals_lmms_eval(task, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # lmms-eval writes a submission file into ./submissions
    utils = ref.task_utils(task)
    rows = caption_set(random.Random(task), 250)
    if task == "coco_cap":
        docs = [{"question_id": f"COCO_val2014_{i:012d}.jpg", "id": i, "answer": refs} for i, (_, refs) in enumerate(rows)]
        results = [utils.coco_process_result(doc, harness(pred))["coco_CIDEr"] for doc, (pred, _) in zip(docs, rows)]
        theirs = utils.coco_cider(results, None)
    else:
        docs = [{"img_id": str(i), "caption": refs} for i, (_, refs) in enumerate(rows)]
        results = [utils.flickr_process_result(doc, harness(pred))["flickr_CIDEr"] for doc, (pred, _) in zip(docs, rows)]
        theirs = utils.flickr_cider(results, None)
    samples = [Sample(str(i), pred, refs) for i, (pred, refs) in enumerate(rows)]
    assert metrics.cider_tokenizer() == "ptb-java"
    assert score("cider", samples)["cider"] == pytest.approx(100 * theirs, abs=1e-9)
    assert 0 < theirs


# ---- prompts, string for string with the default task YAMLs -----------------------------------

def prompts(tmp_path, name, public, entry_options=None):
    hub = write_hub_folder(tmp_path / name, public)
    entry = {**public.entry, "options": entry_options or {}, "test": hub_spec(hub, public)}
    frame, _ = sources.prepare(name, entry, "test", 0)
    return frame["question"].to_list()


def with_rows(public, *rows):
    """`public` plus copies of its first row changed by `rows` (ids kept unique)."""
    for k, row in enumerate(rows, 1):
        new = {**copy.deepcopy(public.rows[0]), **row}
        for field in ("question_id", "id"):
            if field in new and public.entry["format"] != "mme":  # MME's question_id names the image
                new[field] = new[field] + 1000 * k if isinstance(new[field], int) else f"{new[field]}-{k}"
        public.rows.append(new)
    return public


# name -> (public rows, extra rows that exercise the prompt's edge cases, lmms-eval task, yaml, prompt builder)
PROMPT_TASKS = {
    "scienceqa": ([{"hint": ""}, {"hint": "Look at the map.", "question": "Which  state is  highlighted?"}],
                  "scienceqa", "scienceqa_img.yaml", "sqa_doc_to_text"),
    "iconqa": ([{"choices": "one ,two,  three", "answer": "two", "question": "Which is it?"}], "iconqa", "iconqa_test.yaml",
               "doc_to_text"),
    "okvqa": ([{"question": "What is the man holding? "}], "ok_vqa", "ok_vqa_val2014.yaml", "ok_vqa_doc_to_text"),
    "textvqa": ([{"question": "what does the NOKIA sign say?"}, {"question": "Who is 'JOHN'?"}], "textvqa",
                "textvqa_val.yaml", "textvqa_doc_to_text"),
    "gqa": ([], "gqa", "gqa.yaml", "gqa_doc_to_text"),
    "mme": ([{"question_id": "x.png", "question": "  Is this a cat?  Please answer yes or no. "},
             {"question_id": "x.png", "question": "Is this a dog?", "answer": "No"}], "mme",
            "mme.yaml", "mme_doc_to_text"),
}


@pytest.mark.parametrize("name", sorted(PROMPT_TASKS))
def test_prompts_equal_lmms_eval_default_task(tmp_path, name):
    extra, task, yaml_name, builder = PROMPT_TASKS[name]
    public = with_rows(PUBLIC[name](), *extra)
    if name == "gqa":  # ids are joined to images and must stay unique
        public.rows[0]["question"] = "What color is the car on the LEFT?"
    doc_to_text = getattr(ref.task_utils(task), builder)
    kwargs = ref.default_kwargs(task, yaml_name)
    rows = [r for r in public.rows if name != "iconqa" or r["ques_type"] == "choose_txt"]
    assert prompts(tmp_path, name, public) == [doc_to_text(copy.deepcopy(r), kwargs) for r in rows]


def test_textvqa_ocr_prompt_equals_lmms_eval_with_ocr(tmp_path):
    public = PUBLIC["textvqa"]()
    kwargs = {**ref.default_kwargs("textvqa", "textvqa_val.yaml"), "ocr": True}
    expected = [ref.task_utils("textvqa").textvqa_doc_to_text(r, kwargs) for r in public.rows]
    assert prompts(tmp_path, "textvqa", public, {"ocr_tokens": True}) == expected


@pytest.mark.parametrize("name, task, yaml_name", [("coco_caption", "coco_cap", "coco2014_cap_val.yaml"),
                                                   ("flickr30k", "flickr30k", "flickr30k_test.yaml")])
def test_caption_prompts_equal_lmms_eval(tmp_path, name, task, yaml_name):
    doc_to_text = ref.task_config(task, yaml_name)["doc_to_text"]
    if isinstance(doc_to_text, tuple):  # `!function utils.flickr_doc_to_text`
        doc_to_text = getattr(ref.task_utils(task), doc_to_text[1].split(".")[-1])({})
    assert set(prompts(tmp_path, name, PUBLIC[name]())) == {doc_to_text}


# ---- the paper grid reads the copies and splits lmms-eval evaluates, at its lengths -----------

PAPER_TASKS = {"scienceqa": ("scienceqa", "scienceqa_img.yaml"), "iconqa": ("iconqa", "iconqa_test.yaml"),
               "okvqa": ("ok_vqa", "ok_vqa_val2014.yaml"), "gqa": ("gqa", "gqa.yaml"),
               "textvqa": ("textvqa", "textvqa_val.yaml"), "coco_caption": ("coco_cap", "coco2014_cap_val.yaml"),
               "mme": ("mme", "mme.yaml")}


@pytest.mark.parametrize("name", sorted(PAPER_TASKS))
def test_paper_grid_evaluates_lmms_evals_copy_split_and_length(name):
    entry = yaml.safe_load((ref.ROOT / "config" / "paper.yaml").read_text())["datasets"][name]
    task = ref.task_config(*PAPER_TASKS[name])
    test = entry["test"]
    # lmms-eval renamed lmms-lab/* to lmms-lab-encoder/* (same names and configs).
    assert task["dataset_path"].replace("lmms-lab-encoder/", "lmms-lab/") == test["path"]
    assert (task.get("dataset_name"), task["test_split"]) == (test.get("name"), test["split"])
    length = task["generation_kwargs"].get("max_new_tokens")
    assert entry.get("max_new_tokens") == length  # None where lmms-eval leaves it to the model
