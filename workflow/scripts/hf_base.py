import json
from pathlib import Path

from tunebench.files import write_json

write_json(json.loads(snakemake.params.spec), Path(snakemake.output[0]) / "base.json")
