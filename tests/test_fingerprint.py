from tunebench import fingerprint


def test_every_package_module_belongs_to_a_stage_and_every_listed_one_exists():
    on_disk = {p.stem for p in fingerprint.PACKAGE.glob("*.py")} - {"__init__", "fingerprint"}
    listed = {m for modules in fingerprint.STAGE_MODULES.values() for m in modules}
    assert listed | set(fingerprint.UNTRACKED) == on_disk


def test_light_stages_do_not_depend_on_model_code():
    for stage in ("prepare", "score", "aggregate"):
        assert not {"modeling", "training", "runs", "prediction"} & set(fingerprint.STAGE_MODULES[stage])
    assert "metrics" not in fingerprint.STAGE_MODULES["tune"]
