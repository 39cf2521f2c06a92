import io

import polars as pl
import pytest
from PIL import Image

from tunebench.data import schema, sources, world


def test_generation_is_deterministic_and_seed_dependent():
    a = world.generate("attribute", 20, seed=3, split="train")
    assert a == world.generate("attribute", 20, seed=3, split="train")
    other = world.generate("attribute", 20, seed=4, split="train")
    # Another seed draws other scenes, not only other pixels: other questions and answers.
    assert [(r["question"], r["answers"]) for r in a] != [(r["question"], r["answers"]) for r in other]


def test_train_and_test_images_differ():
    train = {r["image"] for r in world.generate("caption", 50, seed=0, split="train")}
    test = {r["image"] for r in world.generate("caption", 50, seed=0, split="test")}
    assert not train & test


def test_size_pairs_share_an_image_and_hold_one_yes_and_one_no():
    records = world.generate("big_any", 10, seed=0, split="test")
    by_image = {}
    for r in records:
        by_image.setdefault(r["image_id"], []).append(r["answers"][0])
    assert all(sorted(v) == ["no", "yes"] for v in by_image.values()) and len(by_image) == 10


def test_big_count_choice_letters_map_to_counts():
    records = world.generate("big_count_choice", 60, seed=0, split="test")
    assert all(r["choices"] == ["0", "1", "2", "3"] for r in records)
    assert {r["answers"][0] for r in records} <= {"A", "B", "C", "D"} and len({r["answers"][0] for r in records}) > 2


def test_size_tasks_have_exactly_one_big_object():
    rng = __import__("random").Random(0)
    for _ in range(200):
        scene = world.random_scene(rng, n_min=2, one_big=True)
        assert sum(o.big for o in scene.objects) == 1 and len(scene.objects) >= 2


def test_choice_questions_list_lettered_options_and_a_valid_gold_letter():
    for r in world.generate("colour_choice", 30, seed=1, split="train"):
        assert r["choices"] == list(world.COLOURS)
        assert "\nA. red\nB. green\n" in r["question"]
        assert 0 <= ord(r["answers"][0]) - ord("A") < len(r["choices"])


def test_count_pairs_hold_one_true_and_one_false_statement_about_one_image():
    records = world.generate("count_yesno", 40, seed=0, split="test")
    for a, b in zip(records[::2], records[1::2]):
        assert a["image_id"] == b["image_id"] and a["question"] != b["question"]
        assert {a["answers"][0], b["answers"][0]} == {"yes", "no"}
    singles = [r for r in records if r["question"].startswith("Is there only one") and r["answers"] == ["yes"]]
    assert 0 < len(singles) < len(records) / 2


def test_vqa_references_are_ten_human_answers():
    for r in world.generate("attribute", 30, seed=0, split="train"):
        assert len(r["answers"]) == 10


def test_prepare_writes_the_record_schema(tmp_path):
    entry = {"source": "synthetic", "task": "caption", "metric": "cider", "train_images": 5, "test_images": 4}
    frame, manifest = sources.prepare("caps", entry, "test", seed=0)
    assert manifest["records"] == 4 and manifest["skipped"] == 0
    schema.write_split(frame, tmp_path / "caps" / "test.parquet")
    back = pl.read_parquet(tmp_path / "caps" / "test.parquet")
    assert back.schema == pl.Schema(schema.SCHEMA) and back.height == 4
    row = back.row(0, named=True)
    assert Image.open(io.BytesIO(row["image"])).size == (world.IMAGE_SIZE, world.IMAGE_SIZE)
    assert row["split"] == "test" and row["task_type"] == "caption" and len(row["answers"]) == 5


def test_bad_rows_are_named(monkeypatch):
    def broken(name, entry, spec, split, seed):
        rows = world.generate("attribute", 3, seed=0, split=split)
        rows[1]["answers"] = []
        return sources.Rows(rows, lambda r, i: [r], lambda r, i: r["id"])
    monkeypatch.setitem(sources.SOURCES, "broken", broken)
    with pytest.raises(sources.DatasetError, match=r"dataset 'x', split 'train', row 'attribute-train-1-0': no answer"):
        sources.prepare("x", {"source": "broken"}, "train", 0)
    with pytest.raises(sources.DatasetError, match="unknown split 'dev'"):
        sources.prepare("x", {"source": "synthetic"}, "dev", 0)


def test_big_any_is_balanced_so_a_constant_answer_scores_chance():
    records = world.generate("big_any", 400, seed=0, split="train")
    yes_to_big = [r["answers"][0] == "yes" for r in records if r["question"].startswith("Is there a big")]
    assert 0.45 < sum(yes_to_big) / len(yes_to_big) < 0.55


def test_any_big_forces_or_forbids_a_big_object():
    rng = __import__("random").Random(0)
    for _ in range(100):
        assert any(o.big for o in world.random_scene(rng, any_big=True).objects)
        assert not any(o.big for o in world.random_scene(rng, any_big=False).objects)


def test_count_choice_letters_name_the_number_of_shapes():
    rng = __import__("random").Random(0)
    for _ in range(30):
        scene = world.random_scene(rng)
        (q,) = world.ask_count_choice(scene, rng)
        assert q.choices == ["one", "two", "three"]
        assert q.answers == ["ABC"[len(scene.objects) - 1]]


def test_more_than_two_is_balanced_so_a_constant_answer_per_question_scores_chance():
    records = world.generate("more_than_two", 400, seed=0, split="train")
    for stem in ("Are there more than two shapes?", "Are there at most two shapes?"):
        answers = [r["answers"][0] for r in records if r["question"].startswith(stem)]
        assert 0.4 < answers.count("yes") / len(answers) < 0.6
    pairs = {}
    for r in records:
        pairs.setdefault(r["image_id"], []).append(r["answers"][0])
    assert all(sorted(a) == ["no", "yes"] for a in pairs.values())
