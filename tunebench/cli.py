"""The `tunebench` command.

- `tunebench status`: which cells of a study are done, outdated, running, failed or missing.
- `tunebench report`: the study's HTML report (`snakemake --report`), or why there is none yet.
- `tunebench prepare`: one dataset split as the workflow prepares it (Parquet + manifest).
- `tunebench score`: a predictions file scored by the dataset's protocol (the metrics JSON), e.g.
  another tool's outputs.
- `tunebench compare A B`: the paired difference of two methods on every set, with its interval.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import plan as study_plan
from .config import ConfigError
from .data import schema, sources
from .evaluation import scoring
from .files import write_json
from .results import compare, status
from .stages import aggregate


def run_status(args, plan) -> None:
    cells = status.study_status(args.directory, plan, args.configfile, args.snakefile)
    if args.json:
        print(json.dumps(status.as_json(plan, cells), indent=1))
    else:
        sys.stdout.write(status.render(plan, cells))
        sys.stdout.write("".join(f"\n{line}\n" for line in status.seeds_needed(args.directory, plan)))


def run_report(args, plan) -> int:
    """The report of a finished study; for an unfinished one, which cells are not built, and no report."""
    cells = status.study_status(args.directory, plan, args.configfile, args.snakefile)
    directory = Path(args.directory)
    unbuilt = [c for c in cells if not (directory / plan.cell_path(c.model, c.method, c.dataset)).exists()]
    pages = [p for p in plan.all_outputs() if not (directory / p).exists()]  # tables, figures, front page
    if unbuilt or pages:
        print(f"tunebench report: study {plan.study} is unfinished, so there is no report yet: "
              f"{len(unbuilt)} of {len(cells)} cells and {len(pages)} of its tables and figures are not built",
              file=sys.stderr)
        for c in unbuilt:
            print(f"  {c.model}/{c.method}/{c.dataset}: {c.state}: {c.detail}", file=sys.stderr)
        print("Finish the study (the snakemake command that started it), then run this again.", file=sys.stderr)
        return 1
    for c in cells:
        if c.state == "outdated":
            print(f"tunebench report: {c.model}/{c.method}/{c.dataset} is outdated; the report shows it as built "
                  f"({c.detail})", file=sys.stderr)
    out = Path(args.out).resolve()
    status.snakemake(directory, args.configfile, ["--report", str(out)], args.snakefile)
    print(f"{out}: the report of study {plan.study} ({len(cells)} cells)")
    return 0


def run_prepare(args, plan) -> None:
    job = plan.prepare_job(args.dataset, args.split)
    frame, manifest = sources.prepare(args.dataset, job["entry"], args.split, job["data_seed"])
    out = Path(args.out)
    schema.write_split(frame, out / f"{args.split}.parquet")
    write_json(manifest, out / f"{args.split}.manifest.json")
    print(f"{out / args.split}.parquet: {manifest['records']} records ({manifest['skipped']} rows skipped, "
          f"{manifest['filtered']} filtered); manifest {out / args.split}.manifest.json")


def run_score(args, plan) -> None:
    job = plan.score_job([args.dataset])[args.dataset]
    result = scoring.score_predictions(args.dataset, job, Path(args.predictions), Path(args.test))
    out = Path(args.out) if args.out else Path(args.predictions).with_suffix(".scores.json")
    write_json(result, out)
    # The per-item scores and resamples stay in the file.
    print(json.dumps({k: v for k, v in result.items() if k not in ("items", "resampled")}, indent=1))


def run_compare(args, plan) -> None:
    aggregation = plan.config["aggregation"]
    for method in args.methods:
        if method not in plan.methods:
            raise ValueError(f"method {method!r} is not in the config; it has {plan.methods}")
    a, b = args.methods
    for model in plan.models:
        sets = {d: tuple(aggregate.scored_arrays(plan, args.directory, model, m, d) for m in (a, b))
                for d in plan.downstream}
        sys.stdout.write(compare.report(model, a, b, sets, plan.upstream, aggregation["ci"],
                                        aggregation["resample_seed"]))


def methods_after_config_files(args) -> bool:
    """`compare --configfile C A B`: the config files' list swallows the two methods named after it;
    take back the names at its end that are no files. False unless two methods are named."""
    while len(args.methods) < 2 and len(args.configfile) > 1 and not Path(args.configfile[-1]).exists():
        args.methods.insert(0, args.configfile.pop())
    return len(args.methods) == 2


# Bad input (a schema fault, a mismatched predictions file, a missing file) is one line on stderr.
REPORTED = (OSError, ValueError, KeyError)  # DatasetError is a ValueError


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="tunebench", description=__doc__,
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = main_parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("status", help="print the state of every cell of a study")
    show.add_argument("--json", action="store_true", help="print it as JSON (counts, and per cell its state, "
                                                          "detail, result and what runs)")
    show.set_defaults(run=run_status, reported=(RuntimeError,))
    build = commands.add_parser("report", help="build the study's HTML report, or say which cells it still lacks")
    build.add_argument("--out", default="report.html", help="the report's file (.html; .zip keeps files as files)")
    build.set_defaults(run=run_report, reported=(RuntimeError,))
    for command in (show, build):
        command.add_argument("--directory", default=".", help="the working directory snakemake ran in")
        command.add_argument("--snakefile", default=str(status.SNAKEFILE), help="the workflow the study ran")
    prep = commands.add_parser("prepare", help="write one dataset split as Parquet and its manifest")
    prep.add_argument("--dataset", required=True, help="a datasets entry of the config")
    prep.add_argument("--split", default="test", choices=sources.SPLITS)
    prep.add_argument("--out", required=True, help="folder for <split>.parquet and <split>.manifest.json")
    prep.set_defaults(run=run_prepare, reported=REPORTED)
    rate = commands.add_parser("score", help="score a predictions JSONL ({id, output} per line) by the dataset's protocol")
    rate.add_argument("--dataset", required=True, help="a datasets entry of the config")
    rate.add_argument("--predictions", required=True, help="JSONL: one {\"id\", \"output\"} per test row")
    rate.add_argument("--test", required=True, help="the prepared test split (tunebench prepare: <out>/test.parquet)")
    rate.add_argument("--out", help="where the metrics JSON goes (default: <predictions>.scores.json)")
    rate.set_defaults(run=run_score, reported=REPORTED)
    pair = commands.add_parser("compare", help="the paired difference of two methods on every set, with its interval")
    pair.add_argument("methods", nargs="*", metavar="A B", help="two methods of the config: A - B is reported")
    pair.add_argument("--directory", default=".", help="the working directory snakemake ran in")
    pair.set_defaults(run=run_compare, reported=REPORTED)
    for command in (show, build, prep, rate, pair):
        command.add_argument("--configfile", nargs="+", default=["config/config.yaml"],
                             help="the study's config files, as given to snakemake (later ones override keys)")
    return main_parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "compare" and not methods_after_config_files(args):
        print(f"tunebench compare: name two methods (A B), got {args.methods}", file=sys.stderr)
        return 2
    # A relative config path: from here, else from the study's working directory.
    in_study = args.command in ("status", "report")
    files = [Path(f) if Path(f).exists() or not in_study else Path(args.directory) / f for f in args.configfile]
    args.configfile = [f.resolve() for f in files]  # status and report hand them to snakemake, run elsewhere
    try:
        plan = study_plan.load(*files)
    except (OSError, ConfigError) as err:
        print(f"tunebench {args.command}: {' '.join(map(str, files))}: {err}", file=sys.stderr)
        return 2
    if getattr(args, "dataset", None) is not None and args.dataset not in plan.config["datasets"]:
        print(f"tunebench {args.command}: dataset {args.dataset!r} is not in {' '.join(map(str, files))}; "
              f"it has {sorted(plan.config['datasets'])}", file=sys.stderr)
        return 2
    try:
        return args.run(args, plan) or 0
    except args.reported as err:
        print(f"tunebench {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
