"""The `tunebench` command. `tunebench status`: which cells of a study are done, running, failed or missing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import plan as study_plan
from .config import ConfigError
from .results import status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tunebench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("status", help="print the state of every cell of a study")
    show.add_argument("--configfile", nargs="+", default=["config/config.yaml"],
                      help="the study's config files, as given to snakemake (later ones override keys)")
    show.add_argument("--directory", default=".", help="the working directory snakemake ran in")
    args = parser.parse_args(argv)
    # A relative config path: from here, else from the study's working directory.
    files = [f if Path(f).exists() else Path(args.directory) / f for f in args.configfile]
    try:
        plan = study_plan.load(*files)
    except (OSError, ConfigError) as err:
        print(f"tunebench status: {' '.join(map(str, files))}: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(status.render(plan, status.study_status(args.directory, plan)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
