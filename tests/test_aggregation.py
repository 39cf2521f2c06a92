import json
import shutil
import subprocess

import polars as pl
import pytest
from PIL import Image

from tunebench.results.cells import (
    FORMULAS,
    O_FORMULAS,
    build_cell,
    primary_score,
    seed_result,
)
from tunebench.results.figures import plot_tradeoff, tradeoff_figure
from tunebench.results.tables import write_tables

UPSTREAM = ["up_a", "up_b"]


def scores(**values: float) -> dict:
    return {
        ds: {"metric": "vqa_accuracy", "primary": "accuracy", "scores": {"accuracy": v, "n": 400}}
        for ds, v in values.items()
    }


def run(seed: int, train_seconds: float = 100.0, diverged: dict | None = None) -> dict:
    return {
        "trainable_params": 1000,
        "total_params": 10000,
        "train_seconds": train_seconds,
        "peak_memory_mb": 2048.0,
        "seed": seed,
        "diverged": diverged,
    }


BASE = scores(down=20.0, up_a=80.0, up_b=60.0)


def seed_inputs(seed, down_after, a_after=70.0, b_after=62.0, train_seconds=100.0, dataset="down"):
    base = scores(**{dataset: 20.0}, up_a=80.0, up_b=60.0)
    tuned = scores(**{dataset: down_after}, up_a=a_after, up_b=b_after)
    return base, tuned, run(seed, train_seconds)


def diverged_inputs(seed, reason="loss is NaN"):
    return BASE, {}, run(seed, diverged={"step": 120, "reason": reason})


# ------------------------------------------------------------------ E/F/O arithmetic


def test_primary_score_reads_primary_metric_and_names_missing_dataset():
    assert primary_score(BASE, "up_a") == 80.0
    with pytest.raises(KeyError, match="nocaps"):
        primary_score(BASE, "nocaps")
    broken = {"coco": {"metric": "cider", "primary": "cider", "scores": {"bleu4": 30.0}}}
    with pytest.raises(KeyError, match="coco"):
        primary_score(broken, "coco")


def test_scale_puts_mme_in_percent_of_its_maximum():
    # MME total 1400 of 2800 with scale 100/2800 enters E/F/O as 50 points.
    mme = {"mme": {"metric": "mme", "primary": "total", "scores": {"total": 1400.0}}}
    assert primary_score(mme, "mme", 100 / 2800) == pytest.approx(50.0)
    tuned = {"mme": {**mme["mme"], "scores": {"total": 1260.0}}}
    result = seed_result({**BASE, **mme}, {**scores(down=30.0, up_a=80.0), **tuned}, run(0), "down", ["up_a", "mme"],
                         {"mme": 100 / 2800})
    assert result["F"] == pytest.approx((0.0 + (45.0 - 50.0)) / 2)  # MME fell 140 of 2800 = 5 points


def test_seed_result_hand_computed():
    tuned = scores(down=70.0, up_a=70.0, up_b=62.0)
    res = seed_result(BASE, tuned, run(0), "down", UPSTREAM)
    assert res["E"] == pytest.approx(50.0)
    assert res["F"] == pytest.approx(-4.0)  # mean(70-80, 62-60)
    assert res["O"] == pytest.approx(46.0)
    assert res["downstream"] == {"before": 20.0, "after": 70.0}
    assert res["upstream"]["up_a"] == {"before": 80.0, "after": 70.0}
    assert res["trainable_params"] == 1000 and res["total_params"] == 10000
    assert res["train_seconds"] == 100.0 and res["peak_memory_mb"] == 2048.0

    assert seed_result(BASE, tuned, run(0), "down", UPSTREAM, o_formula="mean")["O"] == pytest.approx(23.0)
    assert O_FORMULAS["sum"](50.0, -4.0) == 46.0 and O_FORMULAS["mean"](50.0, -4.0) == 23.0


def test_seed_result_rejects_unknown_o_formula_and_missing_upstream_score():
    tuned = scores(down=70.0, up_a=70.0)
    with pytest.raises(ValueError, match="o_formula"):
        seed_result(BASE, scores(down=70.0, up_a=70.0, up_b=62.0), run(0), "down", UPSTREAM, o_formula="max")
    with pytest.raises(KeyError, match="up_b"):
        seed_result(BASE, tuned, run(0), "down", UPSTREAM)


# ------------------------------------------------------------------ cells


def test_build_cell_mean_std_three_seeds():
    per_seed = {
        0: seed_inputs(0, 70.0, a_after=70.0, train_seconds=100.0),  # E 50, F -4, O 46
        1: seed_inputs(1, 72.0, a_after=74.0, train_seconds=200.0),  # E 52, F -2, O 50
        2: seed_inputs(2, 74.0, a_after=78.0, train_seconds=300.0),  # E 54, F  0, O 54
    }
    cell = build_cell("m", "lora", "down", UPSTREAM, per_seed)
    assert cell["n_seeds"] == 3
    assert set(cell["seeds"]) == {"0", "1", "2"}
    mean, std = cell["mean"], cell["std"]
    assert (mean["E"], mean["F"], mean["O"]) == pytest.approx((52.0, -2.0, 50.0))
    assert (std["E"], std["F"], std["O"]) == pytest.approx((2.0, 2.0, 4.0))  # ddof=1
    assert mean["downstream"] == pytest.approx({"before": 20.0, "after": 72.0})
    assert std["downstream"] == pytest.approx({"before": 0.0, "after": 2.0})
    assert mean["upstream"]["up_a"]["after"] == pytest.approx(74.0)
    assert std["upstream"]["up_a"]["after"] == pytest.approx(4.0)
    assert mean["train_seconds"] == pytest.approx(200.0) and std["train_seconds"] == pytest.approx(100.0)
    assert mean["trainable_params"] == 1000 and mean["peak_memory_mb"] == 2048.0
    assert cell["formulas"]["O"] == FORMULAS["O"]
    assert json.loads(json.dumps(cell)) == cell  # one JSON per cell


def test_build_cell_two_seeds_one_seed_and_o_formula_text():
    per_seed = {0: seed_inputs(0, 70.0), 1: seed_inputs(1, 74.0)}
    two = build_cell("m", "lora", "down", UPSTREAM, per_seed, o_formula="mean")
    assert two["mean"]["E"] == pytest.approx(52.0)
    assert two["std"]["E"] == pytest.approx(8**0.5)  # sample std of 50, 54
    assert two["formulas"]["O"] == "O = (E + F) / 2"
    assert two["mean"]["O"] == pytest.approx((52.0 - 4.0) / 2)

    one = build_cell("m", "lora", "down", UPSTREAM, {3: seed_inputs(3, 70.0)})
    assert one["std"]["E"] == 0.0 and one["n_seeds"] == 1


def test_diverged_seed_is_excluded_but_kept_with_reason():
    per_seed = {0: seed_inputs(0, 70.0), 1: diverged_inputs(1, "loss is NaN"), 2: seed_inputs(2, 74.0)}
    cell = build_cell("m", "full", "down", UPSTREAM, per_seed)
    assert cell["n_seeds"] == 2
    assert cell["seeds"]["1"] == {"diverged": {"step": 120, "reason": "loss is NaN"}}
    assert cell["mean"]["E"] == pytest.approx(52.0)
    assert "missing_reason" not in cell


def test_all_diverged_cell_is_missing_with_reason():
    cell = build_cell("m", "full", "down", UPSTREAM, {0: diverged_inputs(0), 1: diverged_inputs(1)})
    assert cell["mean"] is None and cell["std"] is None and cell["n_seeds"] == 0
    assert "loss is NaN" in cell["missing_reason"]


# ------------------------------------------------------------------ tables


def lora_full_cells():
    """lora beats full on E for ds_one; ds2 has one seed per method."""
    lora_one = {0: seed_inputs(0, 70.0, dataset="ds_one"), 1: seed_inputs(1, 74.0, dataset="ds_one")}
    full_one = {0: seed_inputs(0, 60.0, dataset="ds_one"), 1: seed_inputs(1, 62.0, dataset="ds_one")}
    return [
        build_cell("m", "lora", "ds_one", UPSTREAM, lora_one),  # E 52 ± 2.8, F -4, O 48
        build_cell("m", "lora", "ds2", UPSTREAM, {0: seed_inputs(0, 54.0, dataset="ds2")}),  # E 34
        build_cell("m", "full", "ds_one", UPSTREAM, full_one),  # E 41 ± 1.4
        build_cell("m", "full", "ds2", UPSTREAM, {0: seed_inputs(0, 60.0, dataset="ds2")}),  # E 40
    ]


def test_markdown_has_formulas_and_mean_pm_std(tmp_path):
    paths = write_tables(lora_full_cells(), tmp_path / "m", "Model m")
    md = paths["md"].read_text()
    assert paths["md"] == tmp_path / "m.md"
    for text in FORMULAS.values():
        assert text in md
    assert "Model m" in md
    assert "| Method | ds_one E | ds_one F | ds_one O |" in md
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    assert "52.0 ± 2.8" in rows["lora"]
    assert "-4.0 ± 0.0" in rows["lora"]
    assert "41.0 ± 1.4" in rows["full"]
    # Mean E over the seeds with a result on every set (seed 0 alone): (50 + 34) / 2, no spread
    assert rows["lora"].endswith("**42.0 ± 0.0** | **-4.0 ± 0.0** | **38.0 ± 0.0** |")


def test_the_mean_columns_spread_is_over_each_seeds_mean_over_the_sets(tmp_path):
    """Anti-correlated seeds: seed 0 gains more on one set, seed 1 on the other. Per seed, the mean
    E over the sets is 45 and 44 (mean 44.5, std 0.71); averaging the per-set stds (2.83 and 4.24)
    would claim 3.5."""
    cells = [build_cell("m", "lora", "ds_one", UPSTREAM, {0: seed_inputs(0, 70.0, dataset="ds_one"),
                                                         1: seed_inputs(1, 74.0, dataset="ds_one")}),
             build_cell("m", "lora", "ds2", UPSTREAM, {0: seed_inputs(0, 60.0, dataset="ds2"),
                                                      1: seed_inputs(1, 54.0, dataset="ds2")})]
    csv = pl.read_csv(write_tables(cells, tmp_path / "m", "c")["csv"])
    mean = csv.filter(pl.col("dataset") == "mean").row(0, named=True)
    assert mean["E_mean"] == pytest.approx(44.5) and mean["E_std"] == pytest.approx(0.5 ** 0.5)
    assert mean["n_seeds"] == 2


def test_csv_reread_with_polars(tmp_path):
    csv = pl.read_csv(write_tables(lora_full_cells(), tmp_path / "m", "c")["csv"])
    assert csv.columns == [
        "method", "dataset", "E_mean", "E_std", "F_mean", "F_std", "O_mean", "O_std",
        "n_seeds", "trainable_params", "train_seconds",
    ]
    assert csv.height == 6  # 2 methods x (2 datasets + mean)
    lora_one = csv.filter((pl.col("method") == "lora") & (pl.col("dataset") == "ds_one")).row(0, named=True)
    assert lora_one["E_mean"] == pytest.approx(52.0)
    assert lora_one["E_std"] == pytest.approx(8**0.5)
    assert lora_one["F_mean"] == pytest.approx(-4.0)
    assert lora_one["O_mean"] == pytest.approx(48.0)
    assert lora_one["n_seeds"] == 2 and lora_one["trainable_params"] == 1000
    full_mean = csv.filter((pl.col("method") == "full") & (pl.col("dataset") == "mean")).row(0, named=True)
    assert full_mean["E_mean"] == pytest.approx((40.0 + 40.0) / 2)  # seed 0, the one with a result on both sets
    assert full_mean["n_seeds"] == 1


def test_latex_booktabs_escaping_and_bold_best(tmp_path):
    tex = write_tables(lora_full_cells(), tmp_path / "m", "Model 100% m_1")["tex"].read_text()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert rule in tex
    assert r"ds\_one" in tex and "ds_one" not in tex.replace(r"ds\_one", "")
    assert r"Model 100\% m\_1" in tex
    assert r"$E = A_{\mathrm{down}}^{\mathrm{tuned}} - A_{\mathrm{down}}^{\mathrm{base}}$" in tex  # caption
    assert r"\sum_{u \in U}" in tex and "$O = E + F$" in tex
    assert r"\textbf{52.0 $\pm$ 2.8}" in tex  # best E on ds_one (lora)
    assert r"full & 41.0 $\pm$ 1.4 &" in tex  # full's E on ds_one is not best
    assert r"\textbf{42.0 $\pm$ 0.0}" in tex  # best Mean E (lora)
    assert r"$-$4.0 $\pm$ 0.0" in tex  # F as a real minus sign
    assert r"\textbf{40.0 $\pm$ 0.0}" in tex  # best E on ds2 (full)


def test_missing_cell_shows_dash_and_footnote(tmp_path):
    cells = lora_full_cells()[:2] + [
        build_cell("m", "full", "ds_one", UPSTREAM, {0: diverged_inputs(0, "grad norm exploded")}),
        build_cell("m", "full", "ds2", UPSTREAM, {0: seed_inputs(0, 60.0, dataset="ds2")}),
    ]
    paths = write_tables(cells, tmp_path / "m", "c")
    md = paths["md"].read_text()
    full_row = next(line for line in md.splitlines() if line.startswith("| full"))
    assert "–[^1]" in full_row
    assert "40.0 ± 0.0" in full_row  # ds2 still reported
    assert "[^1]: full / ds_one:" in md and "grad norm exploded" in md
    assert "[^2]: full / Mean:" in md  # no mean over an incomplete set of datasets

    csv = pl.read_csv(paths["csv"])
    full = csv.filter(pl.col("method") == "full")
    assert full.filter(pl.col("dataset") == "ds_one")["E_mean"].to_list() == [None]
    assert full.filter(pl.col("dataset") == "mean")["E_mean"].to_list() == [None]

    tex = paths["tex"].read_text()
    assert "--$^{1}$" in tex and "grad norm exploded" in tex


def test_write_tables_rejects_several_models(tmp_path):
    cells = lora_full_cells()
    cells[0] = {**cells[0], "model": "other"}
    with pytest.raises(ValueError, match="one model"):
        write_tables(cells, tmp_path / "m", "c")


def test_html_table_bolds_the_best_and_states_the_formulas(tmp_path):
    page = write_tables(lora_full_cells(), tmp_path / "m", "Model <m>")["html"].read_text()
    assert "<b>52.0 ± 2.8</b>" in page and "<td>41.0 ± 1.4</td>" in page
    assert "Model &lt;m&gt;" in page and "E = A_down(tuned) - A_down(zero-shot)" in page
    assert page.count("<tr>") == 2 + 2  # two header rows, one row per method


def latex_document(tmp_path, table: str) -> str:
    """The minimal document a paper would include the table in: booktabs and graphicx, nothing else."""
    return ("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
            f"\\begin{{document}}\n\\input{{{table}}}\n\\end{{document}}\n")


def test_latex_compiles_or_is_well_formed(tmp_path):
    """Compiled with pdflatex where it is installed (CI installs it); otherwise its structure is checked."""
    cells = lora_full_cells()
    cells[2] = build_cell("m", "full", "ds_one", UPSTREAM, {0: diverged_inputs(0, "loss_is_nan & 100%")})
    tex = write_tables(cells, tmp_path / "table", "Model m_1 & friends, mean ± std")["tex"].read_text()
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule", 1)[0]
    assert all(row.count(" & ") == 3 * 3 for row in body.strip().splitlines())  # method, then 3 groups x E/F/O
    for opener, closer in [(r"\begin{table}", r"\end{table}"), (r"\begin{tabular}", r"\end{tabular}")]:
        assert tex.count(opener) == tex.count(closer) == 1
    assert tex.count("{") == tex.count("}") and tex.count("$") % 2 == 0
    if shutil.which("pdflatex") is None:
        return
    (tmp_path / "doc.tex").write_text(latex_document(tmp_path, "table.tex"))
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0
    assert "Overfull" not in (tmp_path / "doc.log").read_text()  # resized to the text width


# ------------------------------------------------------------------ plot


def test_plot_tradeoff_writes_png(tmp_path):
    out = plot_tradeoff(lora_full_cells(), tmp_path / "plots" / "tradeoff.png", "Model m")
    assert out == tmp_path / "plots" / "tradeoff.png"
    assert out.stat().st_size > 0
    with Image.open(out) as img:
        assert img.format == "PNG"
        width, height = img.size
    assert 300 <= width <= 3000 and 200 <= height <= 3000


def test_each_sweep_draws_one_curve_through_its_methods_in_sweep_order():
    sweep = {"wise@0.25": 40.0, "wise@0.5": 50.0, "wise@0.75": 60.0}
    cells = [build_cell("m", name, "down", UPSTREAM, {0: seed_inputs(0, down)}) for name, down in sweep.items()]
    cells.append(build_cell("m", "lora", "down", UPSTREAM, {0: seed_inputs(0, 70.0)}))
    ax = tradeoff_figure(cells, "m").axes[0]
    curves = [line for line in ax.lines if len(line.get_xdata()) > 2]
    assert len(curves) == 1  # the sweep's, not lora's
    assert list(curves[0].get_xdata()) == [20.0, 30.0, 40.0]  # E = after - 20, in sweep order
    assert {t.get_text() for t in ax.texts} == set(sweep) | {"lora"}


def test_the_caption_names_methods_with_their_own_replay_fraction(tmp_path):
    from tunebench.stages import aggregate

    cells = [{**build_cell("m", method, "down", UPSTREAM, {0: seed_inputs(0, 50.0)}), "settings": {"replay": replay}}
             for method, replay in (("lora", 0.05), ("lora_replay", 0.3))]
    job = {"model": "m", "study": "s", "seeds": [0], "upstream": UPSTREAM, "replay": 0.05}
    caption = aggregate.table_caption(job, cells)
    assert caption.endswith("mixes in 5% upstream replay (a forgetting mitigation), except: lora_replay 30%.")
