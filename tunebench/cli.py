"""The `tunebench` command.

- `tunebench status`: which cells of a study are done, outdated, running, failed or missing.
- `tunebench prepare`: one dataset split as the workflow prepares it (Parquet + manifest).
- `tunebench score`: a predictions file scored by the dataset's protocol (the metrics JSON), e.g.
  another tool's outputs.
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
from .results import status


def run_status(args, plan) -> None:
    sys.stdout.write(status.render(plan, status.study_status(args.directory, plan)))


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
    print(json.dumps(result, indent=1))


# Bad input (a schema fault, a mismatched predictions file, a missing file) is one line on stderr.
REPORTED = (OSError, ValueError, KeyError)  # DatasetError is a ValueError


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="tunebench", description=__doc__,
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = main_parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("status", help="print the state of every cell of a study")
    show.add_argument("--directory", default=".", help="the working directory snakemake ran in")
    show.set_defaults(run=run_status, reported=())
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
    for command in (show, prep, rate):
        command.add_argument("--configfile", nargs="+", default=["config/config.yaml"],
                             help="the study's config files, as given to snakemake (later ones override keys)")
    return main_parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # A relative config path: from here, else from the study's working directory.
    files = [f if Path(f).exists() or args.command != "status" else Path(args.directory) / f for f in args.configfile]
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
        args.run(args, plan)
    except args.reported as err:
        print(f"tunebench {args.command}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
