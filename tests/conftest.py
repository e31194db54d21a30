"""Shared fixtures: a tiny prepared synthetic data set and the validated default config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from prunebias.data import store, synthetic
from prunebias.io import save_array

# Tests must not fight over the two cores: one thread per test process.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A prepared synthetic data set (index.parquet + images.npy), 16 px, a few hundred images."""
    out = tmp_path_factory.mktemp("data")
    index, images = synthetic.generate({"train": 256, "valid": 96, "test": 128}, image_size=16, seed=1)
    save_array(images, out / "images.npy")
    store.write_index(index, out / "index.parquet", {"source": "synthetic", "resolution": 16})
    return out


@pytest.fixture
def config():
    """The default config.yaml, validated by the config schema (its defaults filled in) as the Snakefile does."""
    from snakemake.utils import validate

    root = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((root / "config.yaml").read_text())
    validate(cfg, str(root / "workflow/schemas/config.schema.yaml"))
    return cfg
