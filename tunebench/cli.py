"""The `tunebench` command. `tunebench status`: which cells of a study are done, running, failed or missing."""

from __future__ import annotations

import argparse
import sys

from . import config as study_config
from .results import status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tunebench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("status", help="print the state of every cell of a study")
    show.add_argument("--configfile", default="config/config.yaml", help="the study's config (as given to snakemake)")
    show.add_argument("--directory", default=".", help="the working directory snakemake ran in")
    args = parser.parse_args(argv)
    try:
        config = study_config.load(args.configfile)
    except (OSError, study_config.ConfigError) as err:
        print(f"tunebench status: {args.configfile}: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(status.render(config, status.study_status(args.directory, config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
