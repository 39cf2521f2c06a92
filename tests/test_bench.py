"""bench/compare_studies.py and the README blocks bench/docs.py (make docs) writes, on the small study."""

import json
import shutil
import subprocess
import sys

import pytest
from workflow_helpers import ROOT, SMALL

sys.path.insert(0, str(ROOT / "bench"))
import docs  # noqa: E402

from tunebench import plan as study_plan  # noqa: E402


def compare(a, b) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "compare_studies.py"), str(a), str(b)],
                          capture_output=True, text=True)


def test_two_runs_compare_identical_or_by_their_drift(study, tmp_path):
    _, results = study
    same = compare(results, results)
    assert same.returncode == 0 and same.stdout.startswith("identical: 20 prediction files, 3 cells")
    other = tmp_path / "other"
    shutil.copytree(results, other)
    cell = other / "cells" / "tiny" / "lora" / "big_count.json"
    data = json.loads(cell.read_text())
    data["seeds"]["0"]["E"] += 4.25
    cell.write_text(json.dumps(data))
    answers = other / "predictions" / "tiny" / "lora" / "big_count" / "seed0" / "shapes_vqa.jsonl"
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    rows[0]["output"] += " changed"
    answers.write_text("".join(json.dumps(r) + "\n" for r in rows))
    drift = compare(results, other)
    assert drift.returncode == 1
    assert f"tiny/lora/big_count/seed0/shapes_vqa.jsonl: 1 of {len(rows)} answers differ" in drift.stdout
    assert "seed 0 E: " in drift.stdout and "(+4.25)" in drift.stdout


@pytest.fixture
def small_docs(study, monkeypatch):
    workdir, _ = study
    monkeypatch.setattr(docs, "ROOT", workdir)
    return study_plan.load(SMALL)


def test_docs_blocks_come_from_the_results_stamped_with_their_commit(small_docs, study):
    cells = docs.cells_of(small_docs, "tiny")
    rows, notes = docs.markdown_table(cells)
    assert rows[0].startswith("| Method | big_count E |") and len(rows) == 2 + 3 and notes  # boom diverged
    commit = cells[0]["provenance"]["runs"]["0"]["environment"]["git"]["commit"][:10]
    assert f"`{commit}" in docs.stamp(cells) and "CPU numerics: pinned" in docs.stamp(cells)
    scores = json.loads((study[1] / "scores" / "tiny" / "zeroshot" / "all" / "seed0.json").read_text())
    base = docs.base_scores(small_docs, "tiny")
    assert f"| `shapes_vqa` (upstream) | vqa_accuracy (accuracy) | {scores['shapes_vqa']['scores']['accuracy']:.1f} |" \
        in base
    assert docs.select_columns(rows, docs.BEYOND_COLUMNS)[0] == "| Method | big_count E | Mean E | Mean F | Mean O |"
    text = docs.replace_block("a\n<!-- docs:table -->\nold\n<!-- /docs:table -->\nb", "table", rows)
    assert text == "a\n<!-- docs:table -->\n" + "\n".join(rows) + "\n<!-- /docs:table -->\nb"


def test_the_readme_has_every_block_make_docs_writes():
    readme = (ROOT / "README.md").read_text()
    for name in ("stages", "base-scores", "table", "beyond-table"):
        assert f"<!-- docs:{name} -->\n" in readme and f"<!-- /docs:{name} -->" in readme
