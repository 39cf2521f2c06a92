"""Code fingerprints: each stage's import closure, over code without comments or docstrings."""

import ast
import json

from tunebench import fingerprint


def closure(stage: str) -> set[str]:
    return fingerprint.closure(fingerprint.STAGES[stage])


def test_each_stage_covers_the_modules_it_runs_and_no_other():
    assert {"tunebench.evaluation.metrics", "tunebench.evaluation.scoring"} <= closure("score")
    assert "tunebench.evaluation.metrics" not in closure("tune") | closure("predict") | closure("prepare")
    assert {"tunebench.train.loop", "tunebench.methods.registry", "tunebench.models.loading"} <= closure("tune")
    assert "tunebench.train.loop" not in closure("predict") | closure("score") | closure("aggregate")
    # prediction rebuilds what a method added and interpolates (WiSE-FT), but never trains
    assert {"tunebench.methods.weights", "tunebench.methods.registry", "tunebench.evaluation.prediction"} <= closure("predict")
    assert {"tunebench.data.sources", "tunebench.data.formats", "tunebench.data.world"} <= closure("prepare")
    assert "tunebench.results.figures" in closure("report") and "tunebench.results.figures" not in closure("aggregate")
    # printing and recording shape no result
    assert not {"tunebench.progress", "tunebench.provenance", "tunebench.tracking"} & set().union(
        *map(closure, fingerprint.STAGES))
    assert {"tunebench.results.samples", "tunebench.results.landing"} <= closure("report")


def test_imports_inside_functions_count():
    # the bottleneck adapter is imported where an adapter run needs it, inside a function
    assert "tunebench.methods.bottleneck" in fingerprint.imports("tunebench.methods.registry")
    assert "tunebench.methods.bottleneck" in closure("tune") and "tunebench.methods.bottleneck" in closure("predict")


def test_normalised_code_drops_docstrings_but_keeps_code():
    tree = ast.parse(fingerprint.module_path("tunebench.results.cells").read_text())
    docstring = ast.get_docstring(tree)
    normalised = fingerprint.normalised("tunebench.results.cells")
    assert docstring and docstring not in normalised and "sample_std" in normalised


def test_fingerprints_are_kept_by_the_modules_sizes_and_modification_times(tmp_path):
    cache = tmp_path / "code_fingerprints.json"
    computed = fingerprint.fingerprints.__wrapped__(cache)
    assert computed == {stage: fingerprint._compute(stage) for stage in fingerprint.STAGES}
    kept = json.loads(cache.read_text())[str(fingerprint.ROOT)]
    assert kept["fingerprints"] == computed and len(kept["stamps"]) > 30
    # While every module's stamp holds, the kept fingerprints are believed (nothing is parsed)...
    cache.write_text(json.dumps({str(fingerprint.ROOT): {**kept, "fingerprints": {s: "kept" for s in computed}}}))
    assert set(fingerprint.fingerprints.__wrapped__(cache).values()) == {"kept"}
    # ... and a module whose size or modification time moved recomputes them all.
    stamps = [[path, size + 1, mtime] if path == "plan.py" else [path, size, mtime] for path, size, mtime in kept["stamps"]]
    cache.write_text(json.dumps({str(fingerprint.ROOT): {"stamps": stamps, "fingerprints": {s: "kept" for s in computed}}}))
    assert fingerprint.fingerprints.__wrapped__(cache) == computed
