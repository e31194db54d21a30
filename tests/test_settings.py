"""Tests of prunebias.settings: the typed settings built from the JSON the rules pass."""

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from prunebias.config import analysis_settings
from prunebias.settings import AnalysisSettings, LRSchedule, Optimizer, TrainSpec
from prunebias.tasks import task_train_spec, tasks_from_config

ROOT = Path(__file__).resolve().parents[1]


def test_every_training_run_of_the_default_config_converts_and_round_trips(config):
    for task in tasks_from_config(config):
        for method in ["dense", *config["grid"]["methods"]]:
            data = task_train_spec(config, task, method)
            spec = TrainSpec.from_json(json.loads(json.dumps(data)))  # as the command line gets it
            assert isinstance(spec.optimizer, Optimizer) and isinstance(spec.lr_schedule, LRSchedule)
            assert spec.to_json() == {"task": None, "compression": None, **data}
            assert spec.epochs == data["epochs"] and spec.optimizer.lr == data["optimizer"]["lr"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.epochs = 1


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d.pop("epochs"), r"training settings: unknown keys \[\], missing keys \['epochs'\]"),
        (lambda d: d.update(epoch=3), r"training settings: unknown keys \['epoch'\], missing keys \[\]"),
        (lambda d: d["optimizer"].pop("lr"), r"training settings: optimizer: .*missing keys \['lr'\]"),
        (lambda d: d["augment"].update(scale=2), r"training settings: augment: unknown keys \['scale'\]"),
        (lambda d: d.update(lr_schedule=[1]), r"training settings: lr_schedule must be a JSON object, got list"),
    ],
)
def test_a_training_spec_with_a_wrong_key_is_one_error_naming_it(config, edit, match):
    data = json.loads(json.dumps(task_train_spec(config, "joint", "gmp_pt")))
    edit(data)
    with pytest.raises(ValueError, match=match):
        TrainSpec.from_json(data)


def test_analysis_settings_are_the_analysis_block_and_the_identities(config):
    data = analysis_settings(config)
    settings = AnalysisSettings.from_json(json.loads(json.dumps(data)))
    assert settings.identities == config["identities"] and settings.bootstrap == config["analysis"]["bootstrap"]
    assert settings.uncertainty_band == tuple(config["analysis"]["uncertainty_band"])
    assert isinstance(settings.identities, list)  # a tuple would be one column key to pandas
    with pytest.raises(ValueError, match=r"analysis settings: unknown keys \['bootstraps'\]"):
        AnalysisSettings.from_json({**data, "bootstraps": 5})


def test_compression_settings_round_trip():
    from snakemake.utils import validate

    from prunebias.config import train_spec

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["prune"]["methods"] |= yaml.safe_load((ROOT / "presets/families.yaml").read_text())["prune"]["methods"]
    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))
    for method, compression in (("nm", {"n_m": [2, 4]}), ("channels", {"importance": "l1"})):
        data = json.loads(json.dumps(train_spec(config, method)))
        assert TrainSpec.from_json(data).compression == compression
