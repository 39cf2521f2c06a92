"""`snakemake --report` on the finished small study, and the provenance stored beside its outputs."""

import base64
import hashlib
import io
import json
import re
import subprocess

import pytest
from PIL import Image
from workflow_helpers import ROOT, SMALL, snakemake

from tunebench import plan

PLAN = plan.load(SMALL)

CELLS = [("lora", "big_count"), ("last", "big_count")]


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def report(study):
    """Every file embedded in the self-contained HTML report, by its name in the report."""
    workdir, _ = study
    snakemake(workdir, "--report", str(workdir / "report.html"))
    page = (workdir / "report.html").read_text()
    embedded = re.findall(r'"filename": "([^"]+)".*?"data_uri": "data:[^;"]+;charset=[^;"]+;filename=[^;"]+;base64,'
                          r'([A-Za-z0-9+/=]+)"', page, re.S)
    return page, {name: base64.b64decode(data) for name, data in embedded}


def test_report_holds_the_tables_and_describes_the_study(report):
    page, files = report
    # workflow/report/workflow.rst, filled in from the config
    assert "tunebench study <strong>small</strong>" in page and "every method in lora, last" in page
    table = files["tiny.html"].decode()
    assert "<td>lora</td>" in table and "<td>last</td>" in table and "E = A_down(tuned)" in table
    assert "\\toprule" in files["tiny.tex"].decode() and "| lora |" in files["tiny.md"].decode()
    assert files["tiny.csv"].decode().startswith("method,dataset,E_mean")


def test_report_holds_the_plots(report):
    _, files = report
    plots = ["tiny_tradeoff.png", "scores.png"] + [f"{method}/{dataset}.png" for method, dataset in CELLS]
    for name in plots:
        with Image.open(io.BytesIO(files[name])) as img:
            assert img.format == "PNG" and img.size[0] > 300, name


def test_report_shows_each_cells_costs_and_provenance(study, report):
    _, results = study
    _, files = report
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
        assert len(data) == 1 + 4 + 1 + 4  # train, replay (4 upstream train), the test sets
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
