"""What the models answered: per cell, a few test questions of its downstream set and of every
upstream set, each with its image, the references, the zero-shot answer and the tuned answer, each
scored right or wrong by the set's metric. Questions whose answer changed with tuning come first:
they are what E and F are made of."""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from pathlib import Path

import polars as pl

from ..evaluation import metrics
from ..files import read_jsonl, write_text

PER_SET = 4  # questions shown per set and cell
THUMBNAIL = 96  # pixels, the longer side
# Scored on the whole set, never per question (CIDEr's idf comes from the corpus).
CORPUS_LEVEL = {"cider"}
# MME's total needs both questions of an image; one question is read as its yes/no reading does.
PER_QUESTION = {"mme": "yesno_pairs"}


def scores_answers(metric: str) -> bool:
    return PER_QUESTION.get(metric, metric) not in CORPUS_LEVEL


def verdict(scoring: dict, record: dict, output: str) -> float | None:
    """One answer's score in % by its set's metric (`scoring`: the plan's scoring slice of the set),
    or None for a metric that scores only whole sets."""
    if not scores_answers(scoring["metric"]):
        return None
    metric = PER_QUESTION.get(scoring["metric"], scoring["metric"])
    sample = metrics.Sample(id=record["id"], output=output, answers=record["answers"], choices=record["choices"],
                            image_id=record["image_id"], category=record["category"])
    return metrics.score(metric, [sample], scoring["protocol"]).get("accuracy")


def _records(test_split: str, ids: list[str]) -> dict[str, dict]:
    """The test records `ids` (with their images), read alone: a real test split's images can take GBs."""
    frame = pl.scan_parquet(test_split).filter(pl.col("id").is_in(ids)).collect()
    return {r["id"]: r for r in frame.to_dicts()}


def thumbnail(image: bytes) -> str:
    """A PNG data URI of the image, its longer side THUMBNAIL pixels (small images scaled up sharp)."""
    from PIL import Image

    with Image.open(io.BytesIO(image)) as img:
        img = img.convert("RGB")
        scale = THUMBNAIL / max(img.size)
        resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), resample)
        buffer = io.BytesIO()
        img.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def references(answers: list[str]) -> str:
    """Distinct references in order, a repeated one with its count (VQA's ten answers)."""
    counts = Counter(answers)
    return " | ".join(f"{a} ×{counts[a]}" if counts[a] > 1 else a for a in counts)


def pick(zero_shot: dict[str, str], tuned: dict[str, str], n: int = PER_SET) -> list[str]:
    """Up to n question ids: those whose answer changed first, then the others, in test-split order."""
    changed = [i for i in tuned if tuned[i] != zero_shot.get(i)]
    return (changed + [i for i in tuned if i not in changed])[:n]


def _answer(text: str, score: float | None) -> str:
    shown = html.escape(text) or "<i>(empty)</i>"
    if score is None:
        return f"<td>{shown}</td>"
    mark, css = ("right", "right") if score >= 100 else ("wrong", "wrong") if score <= 0 else (f"{score:.0f}%", "part")
    return f'<td class="{css}">{shown} <small>{mark}</small></td>'


def _set_table(name: str, role: str, files: dict, scoring: dict) -> str:
    zero_shot = {p["id"]: p["output"] for p in read_jsonl(files["zeroshot"])}
    tuned = {p["id"]: p["output"] for p in read_jsonl(files["tuned"])}
    shown = pick(zero_shot, tuned)
    records = _records(files["test"], shown)
    rows = []
    for i in shown:
        record = records[i]
        image = f'<img src="{thumbnail(record["image"])}" alt="{html.escape(i)}">' if record["image"] else ""
        rows.append(f"<tr><td>{image}</td><td><pre>{html.escape(record['question'])}</pre></td>"
                    f"<td>{html.escape(references(record['answers']))}</td>"
                    + _answer(zero_shot[i], verdict(scoring, record, zero_shot[i]))
                    + _answer(tuned[i], verdict(scoring, record, tuned[i])) + "</tr>")
    note = "" if scores_answers(scoring["metric"]) else f", {scoring['metric']} scores the whole set, not one answer"
    return (f"<h4>{html.escape(name)} ({role}{html.escape(note)})</h4>\n<table><thead><tr><th>image</th><th>prompt</th>"
            "<th>references</th><th>zero-shot</th><th>tuned</th></tr></thead><tbody>\n" + "\n".join(rows)
            + "</tbody></table>\n")


def cell_section(cell: dict, files: dict[str, dict], scoring: dict[str, dict], seed) -> str:
    """`files`: per eval set, its test split and the zero-shot and tuned predictions of `seed`."""
    name = f"{cell['method']} / {cell['dataset']}"
    head = f'<h3 id="{html.escape(cell["method"])}-{html.escape(cell["dataset"])}">{html.escape(name)}</h3>\n'
    if "diverged" in cell["seeds"].get(str(seed), {}):
        return head + f"<p>Seed {seed} diverged: it has no answers.</p>\n"
    sets = [(cell["dataset"], "downstream")] + [(u, "upstream") for u in cell["upstream"]]
    return head + "".join(_set_table(s, role, files[s], scoring[s]) for s, role in sets)


def predictions_page(cells: list[dict], files: dict[str, dict], scoring: dict[str, dict], seed,
                     out_html: Path, title: str) -> Path:
    """`files`: per cell (`<method>/<dataset>`), per eval set, the test split and both predictions files."""
    style = ("body{font-family:sans-serif;font-size:90%}table{border-collapse:collapse;margin-bottom:1em}"
             "th,td{padding:3px 8px;border-bottom:1px solid #ccc;text-align:left;vertical-align:top}"
             "pre{white-space:pre-wrap;margin:0;font-size:85%;max-width:32em}img{image-rendering:pixelated}"
             ".right{background:#e3f4e3}.wrong{background:#fbe3e3}.part{background:#fdf3d8}")
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}: predictions</title>"
            f"<style>{style}</style></head><body>\n<h2>{html.escape(title)}: what the models answered</h2>\n"
            f"<p>Per cell, seed {seed}: up to {PER_SET} test questions of its downstream set and of each upstream set, "
            "those whose answer changed with tuning first; each answer scored by its set's metric.</p>\n"
            + "".join(cell_section(c, files[f"{c['method']}/{c['dataset']}"], scoring, seed) for c in cells)
            + "</body></html>\n")
    write_text(page, Path(out_html))
    return Path(out_html)
