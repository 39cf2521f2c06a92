"""A stage module for tests/test_numerics.py: each process `accelerate launch` starts writes the
numerics it computes with (tunebench.numerics.record) and its thread count."""

import os

from tunebench import numerics
from tunebench.files import write_json
from tunebench.train.launch import stage_main


def main(args: dict) -> None:
    import torch

    write_json({**numerics.record(), "threads": torch.get_num_threads()}, f"{args['out']}/rank{os.environ['RANK']}.json")


if __name__ == "__main__":
    stage_main(main)
