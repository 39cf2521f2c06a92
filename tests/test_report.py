"""The report of the finished small study (`tunebench report`, Snakemake's report machinery): its
landing page, figures and pages, the provenance stored beside its outputs, and what an unfinished
study gets instead."""

import base64
import hashlib
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from PIL import Image
from workflow_helpers import ROOT, SMALL, edited_small, snakemake

from tunebench import plan
from tunebench.files import read_json, read_jsonl
from tunebench.results import figures, samples

PLAN = plan.load(SMALL)

CELLS = [("lora", "big_count"), ("last", "big_count")]
UPSTREAM = ["shapes_vqa", "shapes_yesno", "shapes_caption", "own_colour"]


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tunebench_report(workdir, configfile=SMALL, out="report.html"):
    return subprocess.run([sys.executable, "-m", "tunebench.cli", "report", "--configfile", str(configfile),
                           "--directory", str(workdir), "--out", str(workdir / out)],
                          capture_output=True, text=True, cwd=ROOT)


def landing(page: str) -> str:
    """The report's landing page: the description it opens on, as HTML."""
    return json.loads(re.search(r"var workflow_desc = (\".*?\");\n", page, re.S)[1])


@pytest.fixture(scope="module")
def report(study):
    """The report's HTML, every file embedded in it (by its name in the report), and the command's output."""
    workdir, _ = study
    done = tunebench_report(workdir)
    assert done.returncode == 0, done.stderr
    page = (workdir / "report.html").read_text()
    embedded = re.findall(r'"filename": "([^"]+)".*?"data_uri": "data:[^;"]+;charset=[^;"]+;filename=[^;"]+;base64,'
                          r'([A-Za-z0-9+/=]+)"', page, re.S)
    return page, {name: base64.b64decode(data) for name, data in embedded}, done


def png(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.size[0] > 300
    return img


def test_the_report_opens_on_the_table_then_the_tradeoff_plot_and_the_loss_per_set(report):
    page, _, done = report
    front = landing(page)
    order = ["<h1>tunebench study small</h1>", "<h2>tiny</h2>", '<table class="efo">', 'alt="tiny: E against F"',
             'alt="tiny: training loss on big_count"', "More in this report"]
    where = [front.find(marker) for marker in order]
    assert -1 not in where and where == sorted(where), dict(zip(order, where))
    table = front[where[2]:front.index("</table>", where[2])]
    assert all(f"<td>{method}</td>" in table for method in ("lora", "last", "boom"))
    for alt in ("tiny: E against F", "tiny: training loss on big_count"):  # inlined, no click away
        png(base64.b64decode(re.search(rf'src="data:image/png;base64,([^"]+)" width="\d+" alt="{alt}"', front)[1]))
    assert "javascript:app.showCategory('Predictions')" in front
    assert "Missing metadata" not in done.stderr  # a finished study: every output has its record


def test_the_report_holds_the_tables_and_the_plots(report):
    _, files, _ = report
    table = files["tiny.html"].decode()
    assert "<td>lora</td>" in table and "<td>last</td>" in table and "E = A_down(tuned)" in table
    assert "\\toprule" in files["tiny.tex"].decode() and "| lora |" in files["tiny.md"].decode()
    assert files["tiny.csv"].decode().startswith("method,dataset,E_mean")
    # the trade-off and scores plots, the loss per downstream set and per cell
    for name in ["tiny_tradeoff.png", "scores.png", "big_count.png"] + [f"{m}/{d}.png" for m, d in CELLS]:
        png(files[name])


def test_the_loss_per_set_overlays_every_method(study):
    _, results = study
    cells = [read_json(results / "cells" / "tiny" / m / "big_count.json") for m in ("lora", "last", "boom")]
    logs = {(c["method"], "big_count"): {"0": results / "tune" / "tiny" / c["method"] / "big_count" / "seed0" /
                                         "train_log.jsonl"} for c in cells}
    lines = figures.loss_set_figure(cells, logs, "big_count").axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["lora", "last", "boom (diverged)"]
    for line, cell in zip(lines, cells):
        assert list(line.get_ydata()) == [r["loss"] for r in read_jsonl(logs[(cell["method"], "big_count")]["0"])]


def test_the_report_shows_a_sample_of_every_cells_answers(study, report):
    _, results = study
    _, files, _ = report
    page = files["predictions.html"].decode()
    for method, dataset in CELLS:
        section = page.split(f'<h3 id="{method}-{dataset}">', 1)[1].split("<h3", 1)[0]
        for name in [dataset] + UPSTREAM:
            table = section.split(f"<h4>{name} (", 1)[1].split("</table>", 1)[0]
            tuned = {p["id"]: p["output"] for p in read_jsonl(results / "predictions" / "tiny" / method / dataset /
                                                            "seed0" / f"{name}.jsonl")}
            zero = {p["id"]: p["output"] for p in read_jsonl(results / "predictions" / "tiny" / "zeroshot" / name /
                                                           "seed0" / f"{name}.jsonl")}
            rows = re.findall(r'<tr><td><img src="data:image/png;base64,[^"]+" alt="([^"]+)"></td><td><pre>(.*?)</pre>'
                              r"</td><td>.*?</td>(<td.*?</td>)(<td.*?</td>)</tr>", table, re.S)
            assert len(rows) == samples.PER_SET, (method, name)
            for record_id, _, zero_cell, tuned_cell in rows:  # both answers, each marked by the set's metric
                for cell, answer in ((zero_cell, zero[record_id]), (tuned_cell, tuned[record_id])):
                    assert (html.escape(answer) or "<i>(empty)</i>") in cell
                    marked = re.search(r'class="(right|wrong|part)"', cell)
                    assert bool(marked) == (name != "shapes_caption"), cell
        assert "cider scores the whole set" in section.split("<h4>shapes_caption", 1)[1].split("</h4>", 1)[0]
    assert "Seed 0 diverged: it has no answers." in page.split('<h3 id="boom-big_count">', 1)[1]


def test_a_sample_shows_the_changed_answers_first_and_scores_each_by_its_metric():
    assert samples.pick({"a": "x", "b": "y", "c": "z"}, {"a": "x", "b": "q", "c": "z"}, 2) == ["b", "a"]
    record = {"id": "1", "answers": ["red"] * 9 + ["crimson"], "choices": [], "image_id": "", "category": ""}
    vqa = {"metric": "vqa_accuracy", "protocol": "lmms_eval"}
    assert samples.verdict(vqa, record, "red") == 100 and samples.verdict(vqa, record, "blue") == 0
    assert round(samples.verdict(vqa, record, "crimson")) == 30  # VQA's soft accuracy: partly right
    choice = {"metric": "choice_accuracy", "protocol": "lmms_eval"}
    assert samples.verdict(choice, {**record, "answers": ["B"], "choices": ["1", "2"]}, "B") == 100
    assert samples.verdict({"metric": "cider", "protocol": "lmms_eval"}, record, "red") is None
    assert samples.references(["3"] * 9 + ["three"]) == "3 ×9 | three"


def test_the_report_in_a_browser_opens_on_the_table(report, study, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        assert not os.environ.get("TUNEBENCH_BROWSER"), "TUNEBENCH_BROWSER is set but there is no chromium"
        pytest.skip("no chromium (Debian: apt-get install chromium)")
    workdir, _ = study
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                          f"--user-data-dir={tmp_path}", "--dump-dom", f"file://{workdir / 'report.html'}"],
                         capture_output=True, text=True, timeout=120).stdout
    shown = dom.split('id="app"', 1)[1].split("<script", 1)[0]  # what the page rendered, not its data
    where = [shown.find(marker) for marker in ("tunebench study small", 'class="efo"', "tiny: E against F", 'id="rulegraph"')]
    assert -1 not in where and where == sorted(where), where  # the table and plot first, the rule graph after


def test_an_unfinished_study_gets_a_message_instead_of_a_report(study, tmp_path):
    workdir = tmp_path / "study"
    shutil.copytree(study[0], workdir, symlinks=True)
    configfile = edited_small(tmp_path / "grown.yaml",
                              lambda config: config["methods"].update(later={"kind": "last", "lr": 1.0e-3}))
    (workdir / "report.html").unlink(missing_ok=True)
    done = tunebench_report(workdir, configfile)
    assert done.returncode == 1 and not (workdir / "report.html").exists()
    assert re.search(r"study small is unfinished, so there is no report yet: 1 of 4 cells and \d+ of its tables", done.stderr)
    assert "tiny/later/big_count: missing: 0/1 seeds tuned, 0/1 scored" in done.stderr
    # Snakemake's own command still builds one, saying so once instead of once per missing output.
    output = snakemake(workdir, "--report", str(workdir / "direct.html"), configfile=configfile)
    assert "Missing metadata" not in output
    assert re.search(r"\[tunebench\] this report shows an unfinished study: \d+ outputs are not built yet", output)
    assert "<strong>small</strong> is not finished" in landing((workdir / "direct.html").read_text())


def test_report_shows_each_cells_costs_and_provenance(study, report):
    _, results = study
    _, files, _ = report
    page = files["cells.html"].decode()
    base_weights = sha256(results / "base" / "tiny" / "seed0" / "model.safetensors")
    for method, dataset in CELLS:
        section = page.split(f'<h3 id="{method}-{dataset}">', 1)[1].split("<h3", 1)[0]
        run = json.loads((results / "tune" / "tiny" / method / dataset / "seed0" / "run.json").read_text())
        assert f"{run['trainable_params']:,}" in section
        assert run["environment"]["git"]["commit"][:12] in section
        assert run["environment"]["hardware"]["cpu"] in section
        assert sha256(results / "data" / dataset / "train.parquet") in section
        assert sha256(results / "data" / "shapes_vqa" / "test.parquet") in section
        assert base_weights in section
        assert f"&quot;kind&quot;: &quot;{method}&quot;" in section  # the config values behind it
    provenance = json.loads(files["tiny.provenance.json"])
    assert set(provenance["cells"]) == {f"{m}/{d}" for m, d in CELLS} | {"boom/big_count"}  # boom diverges


def test_each_cell_stores_its_provenance(study):
    _, results = study
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    for method, dataset in CELLS:
        cell = json.loads((results / "cells" / "tiny" / method / dataset).with_suffix(".json").read_text())
        prov = cell["provenance"]
        # the plan's slice of the cell: the settings its runs resolved to, per model
        assert prov["plan"] == PLAN.cell_job("tiny", method, dataset)
        assert prov["plan"]["settings"] == cell["settings"] and cell["settings"]["kind"] == method
        assert prov["plan"]["seeds"] == [0] and set(prov["plan"]["scale"]) == {dataset, *cell["upstream"]}
        data = {path: digest for path, digest in prov["data"].items()}
        assert data[f"results/small/data/{dataset}/train.parquet"] == sha256(results / "data" / dataset / "train.parquet")
        assert len(data) == 1 + len(UPSTREAM) + 1 + len(UPSTREAM)  # train, replay (upstream train), the test sets
        run = prov["runs"]["0"]
        assert run["base_weights"] == {"model.safetensors": sha256(results / "base" / "tiny" / "seed0" / "model.safetensors")}
        env = run["environment"]
        assert env["git"]["commit"] == commit and isinstance(env["git"]["dirty"], bool)
        assert env["libraries"]["torch"] and env["libraries"]["snakemake"]
        assert env["hardware"]["cpus"] >= 1 and env["hardware"]["gpus"] == []  # tuned on CPU


def test_the_table_provenance_hashes_every_cell(study):
    _, results = study
    provenance = json.loads((results / "tables" / "tiny.provenance.json").read_text())
    assert provenance["plan"] == PLAN.table_job("tiny")
    for method, dataset in CELLS:
        entry = provenance["cells"][f"{method}/{dataset}"]
        assert entry["sha256"] == sha256(results / "cells" / "tiny" / method / f"{dataset}.json")
        assert entry["runs"]["0"]["git"]["commit"]
    assert provenance["base_weights"]["0"]["model.safetensors"]
