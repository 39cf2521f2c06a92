"""lmms-eval's own task code and task YAMLs, loaded from the pinned wheel (installed with --no-deps
by `make`: its declared dependencies are a GPU evaluation stack the tests do not need).

Importing `lmms_eval.tasks` runs its TaskManager module, which imports the whole harness; the task
modules themselves import little. So `lmms_eval.tasks` is registered as a bare package over the
wheel's own folder (its `__init__` is skipped, every file under it is lmms-eval's), and each task's
`utils.py` is loaded from that folder by path. lmms_eval/api/metrics.py (GQA's exact_match) imports
`sacrebleu` and the metric registry at its top for other metrics; those two imports are stubbed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
import types
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# The pin lives in pyproject.toml (the `lmms-eval-reference` extra); the Makefile installs it.
PIN = re.search(r'"lmms-eval==([^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)


def distribution() -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution("lmms_eval")
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(f"lmms-eval is not installed: pip install --no-deps lmms-eval=={PIN} (make does)") from None


PACKAGE = Path(distribution().locate_file("lmms_eval"))
TASKS = PACKAGE / "tasks"


def _bare_package(name: str, folder: Path) -> None:
    if name not in sys.modules:
        module = types.ModuleType(name)
        module.__path__ = [str(folder)]
        sys.modules[name] = module


def _load(name: str, path: Path) -> types.ModuleType:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def task_utils(task: str) -> types.ModuleType:
    """lmms_eval/tasks/<task>/utils.py, as lmms-eval ships it."""
    _bare_package("lmms_eval", PACKAGE)
    _bare_package("lmms_eval.tasks", TASKS)
    return _load(f"lmms_eval.tasks.{task}.utils", TASKS / task / "utils.py")


def api_metrics() -> types.ModuleType:
    """lmms_eval/api/metrics.py (exact_match_hf_evaluate), its two unrelated top-level imports stubbed."""
    _bare_package("lmms_eval", PACKAGE)
    _bare_package("lmms_eval.api", PACKAGE / "api")
    sys.modules.setdefault("sacrebleu", types.ModuleType("sacrebleu"))  # bleu/chrf/ter only
    registry = types.ModuleType("lmms_eval.api.registry")  # decorators that register metrics by name
    registry.register_metric = registry.register_aggregation = lambda *_, **__: (lambda fn: fn)
    sys.modules.setdefault("lmms_eval.api.registry", registry)
    return _load("lmms_eval.api.metrics", PACKAGE / "api" / "metrics.py")


class _TaskLoader(yaml.SafeLoader):
    """Task YAMLs tag functions `!function utils.name`: keep the name."""


_TaskLoader.add_constructor("!function", lambda loader, node: ("function", loader.construct_scalar(node)))


def task_config(task: str, yaml_name: str) -> dict:
    """A task YAML with its `include:` template merged under it, as lmms-eval reads it."""
    config = yaml.load((TASKS / task / yaml_name).read_text(), Loader=_TaskLoader)
    if "include" in config:
        config = {**task_config(task, config.pop("include")), **config}
    return config


def default_kwargs(task: str, yaml_name: str) -> dict:
    """The task's `lmms_eval_specific_kwargs.default` (pre_prompt, post_prompt, ...)."""
    return task_config(task, yaml_name)["lmms_eval_specific_kwargs"]["default"]
