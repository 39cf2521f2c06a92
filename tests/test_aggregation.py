import json
import shutil
import subprocess
import zlib

import numpy as np
import polars as pl
import pytest

from tunebench.results import intervals
from tunebench.results.cells import (
    FORMULAS,
    O_FORMULAS,
    build_cell,
    primary_score,
    seed_arrays,
    seed_result,
)
from tunebench.results.tables import write_tables

UPSTREAM = ["up_a", "up_b"]
RESAMPLES = 400


def set_noise(dataset: str) -> np.ndarray:
    """A test set's resampling error: the same in every run scored on it (that is what pairs them)."""
    return np.random.default_rng(zlib.crc32(dataset.encode())).standard_normal(RESAMPLES)


def entry(dataset: str, value: float, spread: float = 0.0, own: float = 0.0, tag: str = "") -> dict:
    """A scores entry whose resamples move by `spread` x the set's shared error, plus `own` x an error of
    this run alone (`tag` names it: the items a method gets right that others do not)."""
    mine = np.random.default_rng(zlib.crc32(f"{dataset}/{tag}".encode())).standard_normal(RESAMPLES)
    return {"metric": "vqa_accuracy", "primary": "accuracy", "scores": {"accuracy": value, "n": 400},
            "items": {"id": ["q1", "q2"], "score": [100.0, 0.0]},
            "resampled": {"resamples": RESAMPLES, "seed": 0, "unit": "item", "strata": None,
                          "primary": (value + spread * set_noise(dataset) + own * mine).tolist()}}


def scores(**values: float) -> dict:
    return {ds: entry(ds, v) for ds, v in values.items()}


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


def one_seed(base, tuned, downstream="down", upstream=UPSTREAM, **options):
    """E, F, O of one seed (with its before/after scores) from two scores dicts."""
    return seed_result(seed_arrays(base, tuned, downstream, upstream, **options), run(0), downstream)


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
    mme = {"mme": {**entry("mme", 1400.0), "metric": "mme", "primary": "total", "scores": {"total": 1400.0}}}
    assert primary_score(mme, "mme", 100 / 2800) == pytest.approx(50.0)
    tuned = {"mme": {**entry("mme", 1260.0), "primary": "total", "scores": {"total": 1260.0}}}
    result = one_seed({**BASE, **mme}, {**scores(down=30.0, up_a=80.0), **tuned}, upstream=["up_a", "mme"],
                      scales={"mme": 100 / 2800})
    assert result["F"] == pytest.approx((0.0 + (45.0 - 50.0)) / 2)  # MME fell 140 of 2800 = 5 points


def test_seed_result_hand_computed():
    tuned = scores(down=70.0, up_a=70.0, up_b=62.0)
    res = one_seed(BASE, tuned)
    assert res["E"] == pytest.approx(50.0)
    assert res["F"] == pytest.approx(-4.0)  # mean(70-80, 62-60)
    assert res["O"] == pytest.approx(46.0)
    assert res["downstream"] == {"before": 20.0, "after": 70.0}
    assert res["upstream"]["up_a"] == {"before": 80.0, "after": 70.0}
    assert res["trainable_params"] == 1000 and res["total_params"] == 10000
    assert res["train_seconds"] == 100.0 and res["peak_memory_mb"] == 2048.0

    assert one_seed(BASE, tuned, o_formula="mean")["O"] == pytest.approx(23.0)
    assert O_FORMULAS["sum"](50.0, -4.0) == 46.0 and O_FORMULAS["mean"](50.0, -4.0) == 23.0


def test_seed_result_rejects_unknown_o_formula_and_missing_upstream_score():
    tuned = scores(down=70.0, up_a=70.0)
    with pytest.raises(ValueError, match="o_formula"):
        one_seed(BASE, scores(down=70.0, up_a=70.0, up_b=62.0), o_formula="max")
    with pytest.raises(KeyError, match="up_b"):
        one_seed(BASE, tuned)


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


def test_markdown_has_formulas_and_mean_with_interval(tmp_path):
    paths = write_tables(lora_full_cells(), tmp_path / "m", "Model m")
    md = paths["md"].read_text()
    assert paths["md"] == tmp_path / "m.md"
    for text in FORMULAS.values():
        assert text in md
    assert "Model m" in md
    assert "| Method | ds_one E | ds_one F | ds_one O |" in md
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    csv = pl.read_csv(paths["csv"])
    lora_one = csv.filter((pl.col("method") == "lora") & (pl.col("dataset") == "ds_one")).row(0, named=True)
    assert f"**52.0 [{lora_one['E_lo']:.1f}, {lora_one['E_hi']:.1f}]**" in rows["lora"]
    assert lora_one["E_lo"] < 52.0 - 10 and lora_one["E_hi"] > 52.0 + 10  # two seeds 4 apart: a t(1) interval
    assert "-4.0 [-4.0, -4.0]" in rows["lora"]  # the same on every seed and resample
    # Mean E over the seeds with a result on every set (seed 0 alone): (50 + 34) / 2, no spread
    assert rows["lora"].endswith("**42.0 [42.0, 42.0]** | **-4.0 [-4.0, -4.0]** | **38.0 [38.0, 38.0]** |")


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
    # Its interval is the seed level's over those two per-seed means, 45 and 44 ...
    resampled = np.stack([np.full(RESAMPLES, 45.0), np.full(RESAMPLES, 44.0)])
    expected = intervals.interval([45.0, 44.0], resampled, 0.95, 0)
    assert (mean["E_lo"], mean["E_hi"]) == pytest.approx((expected.lo, expected.hi))
    # ... as narrow as a spread of 1 against the per-set spreads of 4 and 6 makes it.
    per_set = csv.filter(pl.col("dataset") != "mean")
    assert (mean["E_hi"] - mean["E_lo"]) * 4 < (per_set["E_hi"] - per_set["E_lo"]).mean()


def test_csv_reread_with_polars(tmp_path):
    csv = pl.read_csv(write_tables(lora_full_cells(), tmp_path / "m", "c")["csv"])
    assert csv.columns == ["method", "dataset"] + [f"{m}_{part}" for m in "EFO"
                                                   for part in ("mean", "lo", "hi", "std", "tied_best")] + [
        "n_seeds", "trainable_params", "train_seconds"]
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
    assert r"\textbf{42.0 {\scriptsize[42.0, 42.0]}}" in tex  # best Mean E (lora)
    assert r"& 40.0 {\scriptsize[40.0, 40.0]} &" in tex  # full's Mean E: worse on the same seed, no spread
    assert r"$-$4.0 {\scriptsize[$-$4.0, $-$4.0]}" in tex  # F as a real minus sign
    assert r"\textbf{40.0 {\scriptsize[40.0, 40.0]}}" in tex  # best E on ds2 (full)
    assert "not significantly worse" in tex.split(r"\resizebox")[0]  # the bold rule, in the caption


def test_missing_cell_shows_dash_and_footnote(tmp_path):
    cells = lora_full_cells()[:2] + [
        build_cell("m", "full", "ds_one", UPSTREAM, {0: diverged_inputs(0, "grad norm exploded")}),
        build_cell("m", "full", "ds2", UPSTREAM, {0: seed_inputs(0, 60.0, dataset="ds2")}),
    ]
    paths = write_tables(cells, tmp_path / "m", "c")
    md = paths["md"].read_text()
    full_row = next(line for line in md.splitlines() if line.startswith("| full"))
    assert "–[^1]" in full_row
    assert "40.0 [40.0, 40.0]" in full_row  # ds2 still reported
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
    assert "<b>42.0 <small>[42.0, 42.0]</small></b>" in page and "<td>40.0 <small>[40.0, 40.0]</small></td>" in page
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
    tex = write_tables(cells, tmp_path / "table", "Model m_1 & friends, mean [95% interval]")["tex"].read_text()
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


# ------------------------------------------------------------------ caption


def test_the_caption_names_methods_with_their_own_replay_fraction(tmp_path):
    from tunebench.stages import aggregate

    cells = [{**build_cell("m", method, "down", UPSTREAM, {0: seed_inputs(0, 50.0)}), "settings": {"replay": replay}}
             for method, replay in (("lora", 0.05), ("lora_replay", 0.3))]
    job = {"model": "m", "study": "s", "seeds": [0], "upstream": UPSTREAM, "replay": 0.05}
    caption = aggregate.table_caption(job, cells)
    assert caption.endswith("mixes in 5% upstream replay (a forgetting mitigation), except: lora_replay 30%.")


# ------------------------------------------------------------------ intervals, ties, captions


def three_seed_cell(method: str, e_per_seed: list[float], dataset: str = "down", **options) -> dict:
    """A cell whose seeds gain `e_per_seed` on `dataset` (zero-shot 20) and keep the upstream sets."""
    per_seed = {s: (scores(**{dataset: 20.0}, up_a=80.0, up_b=60.0),
                    scores(**{dataset: 20.0 + e}, up_a=80.0, up_b=60.0), run(s)) for s, e in enumerate(e_per_seed)}
    return build_cell("m", method, dataset, UPSTREAM, per_seed, **options)


def test_the_tie_rule_bolds_every_method_not_significantly_worse_than_the_best(tmp_path):
    cells = [three_seed_cell("best", [50.0, 52.0, 54.0]),
             three_seed_cell("close", [51.0, 49.0, 53.0]),  # 1 lower on average, but seed 1 is 3 lower and seed 0 1 higher
             three_seed_cell("steady", [49.0, 51.0, 53.0]),  # 1 lower on every seed: paired, that is a real difference
             three_seed_cell("worse", [30.0, 31.0, 32.0])]
    paths = write_tables(cells, tmp_path / "m", "c")
    csv = pl.read_csv(paths["csv"]).filter(pl.col("dataset") == "down")
    assert dict(zip(csv["method"], csv["E_tied_best"])) == {"best": True, "close": True, "steady": False, "worse": False}
    rows = {line.split("|")[1].strip(): line.split("|")[2] for line in paths["md"].read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| Method")}
    assert rows["best"].strip().startswith("**52.0") and rows["close"].strip().startswith("**51.0")
    assert not rows["worse"].strip().startswith("**") and not rows["steady"].strip().startswith("**")


def test_a_cell_keeps_its_mean_interval_seeds_and_test_sizes():
    cell = three_seed_cell("lora", [50.0, 52.0, 54.0])
    assert cell["n_seeds"] == 3 and cell["mean"]["E"] == pytest.approx(52.0)
    assert cell["test_size"] == {"down": 400, "up_a": 400, "up_b": 400}
    lo, hi = cell["interval"]["E"]
    t_2 = 4.302652729911275
    assert (lo, hi) == pytest.approx((52.0 - t_2 * 2 / 3 ** 0.5, 52.0 + t_2 * 2 / 3 ** 0.5), rel=0.05)
    assert cell["interval"]["downstream"]["after"] == pytest.approx([lo + 20, hi + 20])
    assert cell["interval"]["level"] == 0.95 and cell["resampled"]["seeds"] == ["0", "1", "2"]
    assert np.shape(cell["resampled"]["E"]) == (3, RESAMPLES)
    assert json.loads(json.dumps(cell)) == cell


def test_normalise_by_zero_shot_or_full_scale():
    gain = {"down": (20.0, 30.0), "up_a": (80.0, 60.0), "up_b": (50.0, 50.0)}
    base = scores(**{k: b for k, (b, _) in gain.items()})
    tuned = scores(**{k: a for k, (_, a) in gain.items()})
    relative = one_seed(base, tuned, normalise="zeroshot")
    assert (relative["E"], relative["F"]) == pytest.approx((50.0, (-25.0 + 0.0) / 2))  # 10 of 20, -20 of 80
    full = {"down": 200.0, "up_a": 100.0, "up_b": 100.0}
    ranged = one_seed(base, tuned, normalise="range", full_scale=full)
    assert (ranged["E"], ranged["F"]) == pytest.approx((5.0, -10.0))  # 10 of 200, -20 of 100
    nothing = scores(down=0.0, up_a=80.0, up_b=50.0)
    cell = build_cell("m", "lora", "down", UPSTREAM, {0: (nothing, tuned, run(0))}, normalise="zeroshot")
    assert cell["mean"] is None and "zero-shot score of down is 0" in cell["missing_reason"]


def noisy_cell(method: str, after: float, dataset: str = "down", own: float = 2.0) -> dict:
    """One seed; the downstream score's resamples spread by `own` points (its test set's sampling)."""
    base = {dataset: entry(dataset, 20.0), "up_a": entry("up_a", 80.0), "up_b": entry("up_b", 60.0)}
    tuned = {dataset: entry(dataset, after, own=own, tag=method), "up_a": entry("up_a", 80.0),
             "up_b": entry("up_b", 60.0)}
    return build_cell("m", method, dataset, UPSTREAM, {0: (base, tuned, run(0))})


def test_the_notes_give_test_sizes_what_they_detect_and_warn_where_a_set_cannot_separate_methods(tmp_path):
    cells = [noisy_cell("lora", 60.0), noisy_cell("full", 62.0)]
    md = write_tables(cells, tmp_path / "m", "c")["md"].read_text()
    se = cells[0]["sampling_se"]["down"]["after"]
    assert se == pytest.approx(2.0, rel=0.1)
    detects = intervals.detectable(max(c["sampling_se"]["down"]["after"] for c in cells), 0.95)
    assert f"downstream down 400 ({detects:.1f})" in md and "upstream up_a 400 (no spread), up_b 400 (no spread)" in md
    assert (f"Warning: down (400 items) is too small to separate the methods: their scores on it span 2.0 points, "
            f"less than the {detects:.1f} it detects.") in md
    assert "Warning: up_a" not in md  # every method scores it alike: nothing to separate
    assert "Mean columns: each seed's mean over the downstream sets" in md and "points of each set's primary" in md


def test_the_notes_say_how_many_seeds_would_separate_the_two_best_methods(tmp_path):
    cells = [three_seed_cell("best", [50.0, 55.0, 60.0]), three_seed_cell("second", [50.0, 50.0, 50.0]),
             three_seed_cell("third", [10.0, 10.0, 10.0])]
    md = write_tables(cells, tmp_path / "m", "c")["md"].read_text()
    # per-seed difference 0, 5, 10: gap 5, seed sd 5, no test-sampling error: 10 seeds (tests/test_intervals.py)
    assert ("Seeds: separating the two best methods on Mean O, best (55.0) and second (50.0), at 95% with 80% power "
            "takes about 10 seeds (their difference has a seed-to-seed standard deviation of 5.0; 3 ran).") in md
