"""Scores on resampled test sets (tunebench.evaluation.resampling and each metric's resampling form):
the test set itself gives each metric's own score, corpus-level metrics are recomputed on the resampled
corpus, and every run scored on a set sees the same resamples."""

import random

import numpy as np
import pytest
from test_metrics import FOUR_IMAGES

from tunebench.evaluation import resampling
from tunebench.evaluation.metrics import METRICS, Sample, cider_score, resampled, score


def on_the_test_set(form) -> float:
    """The form with every unit drawn once: the test set as it is."""
    return float(form.statistic.on(np.ones((1, form.layout.units)))[0])


rng = random.Random(0)
MME_CATEGORIES = ["existence", "count", "OCR", "commonsense_reasoning"]
MME_SAMPLES = [Sample(f"{c}{img}{q}", rng.choice(["yes", "no", "Yes.", "maybe"]), [truth], image_id=f"im{img}",
                      category=c)
               for c in MME_CATEGORIES for img in range(6) for q, truth in enumerate(["yes", "no"])]
TYPED = [Sample(str(i), rng.choice(["a", "b", "A."]), ["a"], category=rng.choice(["count", "presence", "rural"]))
         for i in range(40)]
PATH = [Sample(str(i), rng.choice(["yes", "no", "red cells", "a cell"]), [rng.choice(["yes", "no", "red cells"])])
        for i in range(40)]
CHOICE = [Sample(str(i), rng.choice(["A", "b", "The answer is B.", "B. two"]), [rng.choice("AB")],
                 choices=["one", "two"]) for i in range(40)]
VQA = [Sample(str(i), rng.choice(["two", "2", "red"]), ["2"] * 6 + ["two"] * 2 + ["red"] * 2) for i in range(20)]

CASES = [("vqa_accuracy", VQA, {}), ("exact_match", TYPED, {}), ("choice_accuracy", CHOICE, {}),
         ("choice_accuracy", CHOICE, {"protocol": "llava"}), ("yesno_pairs", MME_SAMPLES, {}),
         ("mme", MME_SAMPLES, {}), ("pathvqa", PATH, {}), ("cider", FOUR_IMAGES, {})]


@pytest.mark.parametrize("metric, samples, options", CASES, ids=[f"{m}-{o}" for m, _, o in CASES])
def test_every_key_on_the_test_set_itself_is_the_metrics_own_score(metric, samples, options):
    scores = score(metric, samples, **options)
    keys = [k for k in scores if k != "n" and METRICS[metric].reports(k) and not k.startswith("n_")]
    assert len(keys) >= 1
    for key in keys:
        assert on_the_test_set(resampled(metric, samples, key, **options)) == pytest.approx(scores[key]), key


def test_cider_is_recomputed_on_the_resampled_corpus():
    form = resampled("cider", FOUR_IMAGES, "cider")
    # A resample drawing image 0 twice, image 1 never: pycocoevalcap on exactly that corpus ...
    counts = np.array([[2.0, 0.0, 1.0, 1.0]])
    corpus = [FOUR_IMAGES[0], FOUR_IMAGES[0], FOUR_IMAGES[2], FOUR_IMAGES[3]]
    assert form.statistic.on(counts)[0] == pytest.approx(cider_score(corpus)["cider"])
    # ... which is not the mean of the images' own scores: its document frequencies are the resample's.
    per_item = np.array(form.item_scores)
    assert np.mean(per_item) == pytest.approx(cider_score(FOUR_IMAGES)["cider"])
    assert abs(form.statistic.on(counts)[0] - (counts[0] @ per_item) / 4) > 1.0
    # every resample, in chunks, as the scoring writes them
    many = form.replicates(300, 0, "captions")
    assert many.shape == (300,) and 0 < many.std() and np.all(many >= 0)


def test_mme_resamples_draw_image_pairs_within_categories():
    form = resampled("mme", MME_SAMPLES, "total")
    assert form.layout.units == len(MME_SAMPLES) // 2 and form.layout.unit_name == "image pair"
    counts = next(resampling.draw_counts(form.layout, 50, 0, "mme"))
    for category in range(len(MME_CATEGORIES)):  # each category keeps its 6 pairs on every resample
        assert (counts[:, form.layout.stratum == category].sum(axis=1) == 6).all()
    # one resample, written out as the questions it draws: the metric on them is the form's value
    row = counts[0]
    drawn = [s for u in range(form.layout.units) for _ in range(int(row[u]))
             for s, unit in zip(MME_SAMPLES, form.layout.unit) if unit == u]
    relabelled = [Sample(f"{s.id}.{i}", s.output, s.answers, image_id=f"{s.image_id}.{i // 2}", category=s.category)
                  for i, s in enumerate(drawn)]  # copies of a pair are pairs of their own
    assert form.statistic.on(row[None])[0] == pytest.approx(score("mme", relabelled)["total"])


def test_the_same_set_gets_the_same_resamples_however_they_are_chunked(monkeypatch):
    layout = resampling.item_layout(["a", "b", "b", "c"] * 25, strata_name="category")
    once = np.concatenate(list(resampling.draw_counts(layout, 300, 7, "set")))
    monkeypatch.setattr(resampling, "ROWS_PER_CHUNK", 64)
    chunked = np.concatenate(list(resampling.draw_counts(layout, 300, 7, "set")))
    assert (once == chunked).all() and once.shape == (300, 100) and (once.sum(axis=1) == 100).all()
    assert not (np.concatenate(list(resampling.draw_counts(layout, 300, 7, "other set"))) == once).all()
    assert not (np.concatenate(list(resampling.draw_counts(layout, 300, 8, "set"))) == once).all()
