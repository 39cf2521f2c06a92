from tunebench import fingerprint


def test_light_stages_do_not_depend_on_model_code():
    for stage in ("prepare", "score", "aggregate"):
        assert not {m for m in fingerprint.closure(fingerprint.STAGES[stage]) if m.startswith(("tunebench.train", "tunebench.models.loading", "tunebench.models.inputs"))}
