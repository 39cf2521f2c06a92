"""The trade-off plot and the scores figure: panels, intervals, the Pareto front, labels that do not
overlap with every method of config/beyond.yaml, one style per method in both, one axis per scale."""

import numpy as np
import pytest
from PIL import Image
from test_aggregation import (
    UPSTREAM,
    build_cell,
    entry,
    lora_full_cells,
    run,
    seed_inputs,
)

from tunebench.results import figures
from tunebench.results.tables import results_frame

# The 21 methods of config/beyond.yaml with mean E and F like the embedded study's (README): most of them
# crowd around E 45.
BEYOND = {"lora": (43.5, -28.0), "dora": (43.5, -25.3), "full": (46.4, -23.0), "top": (45.9, -11.9),
          "last": (44.0, -15.0), "projector": (49.2, -61.5), "pissa": (45.5, -31.9), "vera": (21.3, -8.5),
          "oft": (31.1, -24.0), "ia3": (14.4, -3.5), "prompt": (5.4, -3.5), "adapter": (36.4, -22.9),
          "attention": (45.7, -16.5), "mlp_gate_up": (45.9, -8.3), "sparse_random": (45.2, -9.6),
          "sparse_magnitude": (45.3, -10.1), "sparse_grad@0.01": (38.9, -6.6), "sparse_grad@0.1": (45.1, -11.6),
          "full_wise@0.25": (21.3, -0.9), "full_wise@0.5": (45.5, -5.2), "lora_replay": (44.8, -5.7)}
DOWNSTREAM = {"big_colour": 0.1, "count_choice": 2.0, "more_than_two": 0.9}  # each set's share of the mean E
EMBEDDED_UPSTREAM = ["shapes_vqa", "shapes_yesno", "shapes_choice", "shapes_caption"]
ZERO_SHOT = {"big_colour": 45.0, "count_choice": 0.0, "more_than_two": 65.0, "shapes_vqa": 70.0,
             "shapes_yesno": 100.0, "shapes_choice": 67.0, "shapes_caption": 290.0}
FULL_SCALE = {**dict.fromkeys(ZERO_SHOT, 100.0), "shapes_caption": 1000.0}  # CIDEr-D x 100


@pytest.fixture(scope="module")
def beyond_cells():
    """Two seeds of every method on every downstream set, with test-sampling noise."""
    rng = np.random.default_rng(0)
    cells = []
    for method, (e, f) in BEYOND.items():
        for dataset, share in DOWNSTREAM.items():
            per_seed = {}
            for seed in (0, 1):
                sets = [dataset] + EMBEDDED_UPSTREAM
                after = {dataset: ZERO_SHOT[dataset] + e * share + rng.normal(0, 3)}
                after |= {u: ZERO_SHOT[u] + f * (3 if u == "shapes_caption" else 0.5) + rng.normal(0, 3)
                          for u in EMBEDDED_UPSTREAM}
                per_seed[seed] = ({n: entry(n, ZERO_SHOT[n], spread=2.0) for n in sets},
                                  {n: entry(n, after[n], spread=2.0, own=2.0, tag=f"{method}{seed}") for n in sets},
                                  run(seed))
            cells.append(build_cell("tiny_llava_ov", method, dataset, EMBEDDED_UPSTREAM, per_seed,
                                    full_scale={n: FULL_SCALE[n] for n in [dataset] + EMBEDDED_UPSTREAM}))
    return cells


@pytest.fixture(scope="module")
def beyond_tradeoff(beyond_cells):
    return figures.tradeoff_figure(beyond_cells, "embedded")


def test_the_tradeoff_plot_is_a_png_and_an_svg(tmp_path):
    png, svg = figures.plot_tradeoff(lora_full_cells(), tmp_path / "plots" / "tradeoff.png", "Model m")
    assert png == tmp_path / "plots" / "tradeoff.png" and svg == png.with_suffix(".svg")
    with Image.open(png) as img:
        assert img.format == "PNG" and 300 <= img.size[0] <= 3000 and 200 <= img.size[1] <= 3000
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    # drawn again: the same bytes (no date, fixed ids), so regenerating the docs changes nothing
    _, again = figures.plot_tradeoff(lora_full_cells(), tmp_path / "again" / "tradeoff.png", "Model m")
    assert again.read_bytes() == svg.read_bytes() and "<dc:date>" not in svg.read_text()


def test_a_mean_panel_and_one_per_downstream_set_each_with_interval_bars(beyond_cells, beyond_tradeoff):
    fig = beyond_tradeoff
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Mean over the downstream sets"] + [f"tuned on {d}" for d in DOWNSTREAM]
    frame = results_frame(beyond_cells)
    top = frame.filter((frame["method"] == "top") & (frame["dataset"] == "mean")).row(0, named=True)
    # each method's bars span its interval: the horizontal bar of `top` runs from E_lo to E_hi
    segments = [seg for c in fig.axes[0].collections for seg in c.get_segments()]
    assert any(np.allclose(seg, [[top["E_lo"], top["F_mean"]], [top["E_hi"], top["F_mean"]]]) for seg in segments)
    assert any(np.allclose(seg, [[top["E_mean"], top["F_lo"]], [top["E_mean"], top["F_hi"]]]) for seg in segments)


def test_the_pareto_front_is_drawn_through_the_methods_nothing_beats_on_both(beyond_cells, beyond_tradeoff):
    points = {"a": (1, 5), "b": (2, 4), "c": (1, 1), "d": (3, 0), "e": (2, 4)}
    assert figures.pareto_front(points) == ["a", "b", "e", "d"]  # equal points do not beat each other
    front = next(line for line in beyond_tradeoff.axes[0].lines if line.get_label() == "Pareto front")
    frame = results_frame(beyond_cells).filter(results_frame(beyond_cells)["dataset"] == "mean")
    points = {r["method"]: (r["E_mean"], r["F_mean"]) for r in frame.iter_rows(named=True)}
    expected = figures.pareto_front(points)
    assert list(zip(front.get_xdata(), front.get_ydata())) == [points[m] for m in expected]
    assert "full_wise@0.25" in expected and "projector" in expected and "lora" not in expected


def overlaps(boxes) -> list[tuple[int, int]]:
    return [(i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes) if i < j and a.overlaps(b)]


def test_all_21_method_labels_are_readable(beyond_tradeoff, tmp_path):
    """Every method named once in the Mean panel, no two names overlapping, all inside the panel."""
    fig = beyond_tradeoff
    fig.savefig(tmp_path / "beyond.png")  # lays the figure out as it is saved
    ax = fig.axes[0]
    texts = [t for t in ax.texts if t.get_text() in BEYOND]
    assert sorted(t.get_text() for t in texts) == sorted(BEYOND)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert overlaps(boxes) == []
    panel = ax.get_window_extent(renderer)
    assert all(panel.x0 <= b.x0 and b.x1 <= panel.x1 and panel.y0 <= b.y0 and b.y1 <= panel.y1 for b in boxes)


def test_each_method_has_one_style_in_every_figure(beyond_cells, beyond_tradeoff):
    tradeoff = beyond_tradeoff
    scores = figures.scores_figure(beyond_cells, "embedded")
    markers = {c.get_label(): c.lines[0] for c in tradeoff.axes[0].containers if c.get_label() in BEYOND}
    bars = {c.get_label(): c for ax in scores.axes for c in ax.containers if c.get_label() in BEYOND}
    assert set(markers) == set(bars) == set(BEYOND)
    for method in BEYOND:
        assert np.allclose(markers[method].get_color()[:3], bars[method].patches[0].get_facecolor()[:3]), method
    colours = {m: tuple(np.round(markers[m].get_color()[:3], 3)) for m in BEYOND}
    assert colours["sparse_grad@0.01"] == colours["sparse_grad@0.1"]  # a sweep shares a colour ...
    assert markers["sparse_grad@0.01"].get_marker() != markers["sparse_grad@0.1"].get_marker()  # ... not a marker
    entries = {m.split("@")[0]: colours[m] for m in BEYOND}
    assert len(set(entries.values())) == len(entries)  # 19 entries, 19 colours


def test_the_scores_figure_gives_each_scale_its_own_axis(beyond_cells):
    fig = figures.scores_figure(beyond_cells, "embedded")
    assert len(fig.axes) == 2 * len(DOWNSTREAM)  # accuracies 0-100, CIDEr-D x 100 0-1000
    labels = [[t.get_text() for t in ax.get_xticklabels()] for ax in fig.axes]
    assert labels[1] == ["shapes_caption"] and "shapes_caption" not in labels[0]
    assert labels[0][0] == "big_colour\n(downstream)"
    assert "full scale 1000" in fig.axes[1].get_ylabel() and "full scale 100)" in fig.axes[0].get_ylabel()


def test_each_sweep_draws_one_curve_through_its_methods_in_sweep_order():
    sweep = {"wise@0.25": 40.0, "wise@0.5": 50.0, "wise@0.75": 60.0}
    cells = [build_cell("m", name, "down", UPSTREAM, {0: seed_inputs(0, down)}) for name, down in sweep.items()]
    cells.append(build_cell("m", "lora", "down", UPSTREAM, {0: seed_inputs(0, 70.0)}))
    ax = figures.tradeoff_figure(cells, "m").axes[0]
    curves = [line for line in ax.lines if line.get_linestyle() == "-" and len(line.get_xdata()) > 1]
    assert len(curves) == 1  # the sweep's, not lora's
    assert list(curves[0].get_xdata()) == [20.0, 30.0, 40.0]  # E = after - 20, in sweep order
    assert {t.get_text() for t in ax.texts} == set(sweep) | {"lora"}


def test_a_sweeps_later_members_are_hatched_in_the_bars():
    styles = figures.method_styles(["lora", "sparse_grad@0.01", "sparse_grad@0.1", "full"])
    assert styles["sparse_grad@0.01"].hatch == "" and styles["sparse_grad@0.1"].hatch != ""
    assert styles["sparse_grad@0.01"].colour == styles["sparse_grad@0.1"].colour != styles["lora"].colour
