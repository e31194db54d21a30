import copy
from pathlib import Path

import pytest
import yaml

from prunebias.config import ConfigError, check_config, method_levels, sparsity_label, train_spec, unknown_keys

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def test_default_config_is_valid(config):
    check_config(config, SCHEMA)


def test_every_schema_property_has_a_description():
    def walk(node, path):
        if isinstance(node, dict):
            for key, sub in node.get("properties", {}).items():
                resolved = sub
                if "$ref" in sub and "description" not in sub:
                    resolved = SCHEMA["definitions"][sub["$ref"].split("/")[-1]]
                assert "description" in resolved, f"{path}.{key} has no description"
                walk(resolved, f"{path}.{key}")
            if isinstance(node.get("additionalProperties"), dict):
                walk(node["additionalProperties"], f"{path}.*")

    walk(SCHEMA, "config")
    for name, d in SCHEMA["definitions"].items():
        walk(d, name)


def test_unknown_key_suggests_the_closest(config):
    config["train"]["epochz"] = 3
    config["analysis"]["bootstrp"] = 10
    messages = unknown_keys(config, SCHEMA)
    assert any("'train.epochz'" in m and "did you mean 'train.epochs'" in m for m in messages)
    assert any("did you mean 'analysis.bootstrap'" in m for m in messages)
    with pytest.raises(ConfigError, match="train.epochz"):
        check_config(config, SCHEMA)


def test_unknown_key_inside_a_dataset_and_a_method(config):
    config["datasets"]["synth"]["resolutoin"] = 32
    config["prune"]["methods"]["gmp_pt"]["schedule"]["stpe"] = 1
    messages = "\n".join(unknown_keys(config, SCHEMA))
    assert "datasets.synth.resolutoin" in messages and "datasets.synth.resolution" in messages
    assert "prune.methods.gmp_pt.schedule.stpe" in messages


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda c: c["grid"].update(datasets=["celeba"]), "grid.datasets: 'celeba' is not defined"),
        (
            lambda c: c["grid"].update(methods=["acdc", "gmp"]) or c["prune"]["methods"].pop("acdc"),
            "prune.methods.acdc",
        ),
        (lambda c: c["grid"].update(sparsities=[]), "grid.sparsities: empty"),
        (lambda c: c["datasets"]["synth"].pop("sizes"), "datasets.synth.sizes"),
        (lambda c: c["train"].update(crop_size=64), "train.crop_size: 64 is larger"),
    ],
)
def test_cross_checks(config, edit, match):
    edit(config)
    with pytest.raises(ConfigError, match=match):
        check_config(config, SCHEMA)


def test_sparsity_label():
    assert [sparsity_label(s) for s in (0.8, 0.9, 0.995, 0.99)] == ["0.8", "0.9", "0.995", "0.99"]


def test_train_spec_holds_only_training_settings(config):
    dense = train_spec(config, "dense")
    pruned = train_spec(config, "gmp_pt")
    for spec in (dense, pruned):
        assert "analysis" not in spec and "identities" not in spec and "report" not in spec
        assert spec["batch_size"] == config["train"]["batch_size"]
    assert dense["epochs"] == config["train"]["epochs"] and dense["schedule"] == {}
    assert (
        pruned["optimizer"]["name"] == "adam" and pruned["schedule"] == config["prune"]["methods"]["gmp_pt"]["schedule"]
    )
    changed = copy.deepcopy(config)
    changed["analysis"]["bootstrap"] = 5
    assert train_spec(changed, "dense") == dense


def test_schema_errors_name_the_dotted_key(config):
    from prunebias.config import schema_errors

    config["grid"]["sparsities"] = [0.5, 1.0]
    config["train"]["epochs"] = "ten"
    messages = schema_errors(config, SCHEMA)
    assert any(m.startswith("grid.sparsities.1: 1.0 is greater than or equal to the maximum") for m in messages), (
        messages
    )
    assert any(m.startswith("train.epochs: 'ten' is not of type 'integer'") for m in messages), messages


def test_epoch_counts_are_capped_before_any_plan_is_built(config):
    # Found by the config fuzzer: 3e10 experiment epochs made check_experiments build a
    # per-epoch plan until memory ran out. The schema refuses it, naming the key.
    from prunebias.config import schema_errors

    config.setdefault("experiments", {}).setdefault("single_label", {})["epochs"] = 30_311_463_856
    config["train"]["epochs"] = 10_001
    messages = schema_errors(config, SCHEMA)
    assert any(
        m.startswith("experiments.single_label.epochs: 30311463856 is greater than the maximum of 10000")
        for m in messages
    ), messages
    assert any(m.startswith("train.epochs: 10001 is greater than the maximum of 10000") for m in messages), messages


FAMILIES = yaml.safe_load((ROOT / "presets/families.yaml").read_text())


def test_method_levels_of_each_family(config):
    config["prune"]["methods"] |= FAMILIES["prune"]["methods"]
    grid = [0.9, 0.95]
    assert method_levels(config, "gmp_pt", grid) == grid
    assert method_levels(config, "nm", grid) == [0.5]  # 2:4
    assert method_levels(config, "channels", grid) == [0.5, 0.75]  # its own shares of FLOPs
    assert method_levels(config, "int8", grid) == [0.0]
    del config["prune"]["methods"]["channels"]["sparsities"]
    assert method_levels(config, "channels", grid) == grid


def test_compression_settings_only_where_a_method_has_them(config):
    """Adding the families changes no other method's training params (no retraining)."""
    before = train_spec(config, "gmp_pt")
    config["prune"]["methods"] |= FAMILIES["prune"]["methods"]
    assert train_spec(config, "gmp_pt") == before and "compression" not in before
    assert train_spec(config, "nm")["compression"] == {"n_m": [2, 4]}
    assert train_spec(config, "channels")["compression"] == {"importance": "l1"}


def test_method_only_keys_and_impossible_patterns_are_refused(config):
    config["prune"]["methods"]["gmp_pt"]["importance"] = "l1"
    with pytest.raises(ConfigError, match="prune.methods.gmp_pt.importance: only used by method channels"):
        check_config(config, SCHEMA)
    del config["prune"]["methods"]["gmp_pt"]["importance"]
    config["prune"]["methods"]["nm"] = {**FAMILIES["prune"]["methods"]["nm"], "n_m": [4, 2]}
    with pytest.raises(ConfigError, match=r"prune.methods.nm.n_m: \[4, 2\] keeps N of every M weights"):
        check_config(config, SCHEMA)


@pytest.mark.parametrize("preset", sorted(p.name for p in (ROOT / "presets").glob("*.yaml")))
def test_every_preset_over_the_default_config_is_valid(config, preset):
    """What `snakemake --configfile presets/<preset>` runs: the preset merged over config.yaml."""
    from snakemake.utils import update_config

    update_config(config, yaml.safe_load((ROOT / "presets" / preset).read_text()))
    check_config(config, SCHEMA)
