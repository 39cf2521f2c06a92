"""The README's numbers and the docs/ figures, regenerated from a finished embedded study, so nothing
in them is typed by hand.

    PYTHONPATH=$PWD python bench/readme_figures.py [--directory .] [--readme README.md] [--docs docs]

It reads the cells of `make run` (config/config.yaml; --configfile) and, once `make beyond` has finished
them, those of config/beyond.yaml layered on it (--beyond); replaces what stands between each
`<!-- readme: NAME -->` and the next `<!-- /readme -->` in the README (NAME: zero-shot, table, beyond; a
block whose cells are not all built is left as it is and named); and writes, as PNG and SVG, docs/embedded_tradeoff, docs/embedded_scores and
docs/embedded_beyond_tradeoff. `--directory`: the working directory snakemake ran in.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from tunebench import plan as study_plan
from tunebench.files import read_json
from tunebench.results import figures, tables
from tunebench.stages.aggregate import table_caption

ROOT = Path(__file__).resolve().parent.parent


def built_cells(plan, directory: Path, model: str) -> list[dict] | None:
    paths = [directory / p for p in plan.cell_paths(model)]
    return [read_json(p) for p in paths] if all(p.exists() for p in paths) else None


def zero_shot_table(cells: list[dict]) -> str:
    """The base model's score on every set, per seed and as the mean with its interval."""
    seeds = sorted({s for c in cells for s in c["seeds"]}, key=int)
    level = tables.percent(tables.Statistics.of(cells).level)
    lines = [f"| set | metric (x scale) | {' | '.join(f'seed {s}' for s in seeds)} | mean [{level} interval] |",
             "|---|---|" + "---:|" * (len(seeds) + 1)]
    first = {}
    for c in cells:  # a finished cell per downstream set holds the zero-shot scores of its sets
        if c["mean"]:
            first.setdefault(c["dataset"], c)
    sets = [(d, c, c["mean"]["downstream"], c["interval"]["downstream"], lambda r: r["downstream"])
            for d, c in first.items()]
    any_cell = next(iter(first.values()))
    sets += [(u, any_cell, any_cell["mean"]["upstream"][u], any_cell["interval"]["upstream"][u],
              lambda r, u=u: r["upstream"][u]) for u in any_cell["upstream"]]
    for name, cell, mean, interval, part in sets:
        per_seed = [f"{part(cell['seeds'][s])['before']:.1f}" for s in seeds]
        role = " (downstream)" if name in first else ""
        lines.append(f"| `{name}`{role} | {cell['metric'][name]} | {' | '.join(per_seed)} | "
                     f"{mean['before']:.1f} [{interval['before'][0]:.1f}, {interval['before'][1]:.1f}] |")
    return "\n".join(lines) + "\n"


def replace_block(readme: str, name: str, text: str) -> str:
    pattern = re.compile(rf"(<!-- readme: {re.escape(name)} -->\n).*?(<!-- /readme -->)", re.S)
    if not pattern.search(readme):
        raise SystemExit(f"README has no <!-- readme: {name} --> block")
    return pattern.sub(lambda m: m.group(1) + "\n" + text + "\n" + m.group(2), readme)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--directory", type=Path, default=ROOT)
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    parser.add_argument("--configfile", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--beyond", type=Path, default=ROOT / "config" / "beyond.yaml")
    args = parser.parse_args()
    readme = args.readme.read_text()
    paper, beyond = study_plan.load(args.configfile), study_plan.load(args.configfile, args.beyond)
    model = paper.models[0]
    cells = built_cells(paper, args.directory, model)
    if cells is None:
        raise SystemExit(f"the cells of {model} under {args.directory / paper.root} are not all built: run `make run`")
    caption = table_caption(paper.table_job(model), cells)
    readme = replace_block(readme, "zero-shot", zero_shot_table(cells))
    readme = replace_block(readme, "table", tables.markdown(cells, caption))
    written = figures.plot_tradeoff(cells, args.docs / "embedded_tradeoff.png", paper.title(model))
    written += figures.score_bars(cells, args.docs / "embedded_scores.png", paper.title(model))
    every = built_cells(beyond, args.directory, model)
    if every is None:
        print("beyond: not every cell of config/beyond.yaml is built (`make beyond`); its block is left as it is")
    else:
        shorter = tables.markdown(every, table_caption(beyond.table_job(model), every),
                                  keep=lambda group, metric: metric == "E" or group == tables.MEAN_GROUP)
        readme = replace_block(readme, "beyond", shorter)
        written += figures.plot_tradeoff(every, args.docs / "embedded_beyond_tradeoff.png", beyond.title(model))
    args.readme.write_text(readme)
    print("wrote", args.readme, *written)


if __name__ == "__main__":
    main()
