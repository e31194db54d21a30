"""Tests of prunebias.analysis.criteria, the entry point: every table from a small index, runs and metrics."""

import numpy as np
import pandas as pd
import pytest

from prunebias.analysis import criteria as cr
from prunebias.analysis import metrics as pm
from workflow_utils import analysis_settings

IDENTITIES = ["Male", "Young"]


@pytest.fixture(scope="module")
def synthetic():
    """A small index, dense and sparse runs and their tidy metrics (via metrics.model_metrics)."""
    rng = np.random.default_rng(8)
    attributes = ["Smiling", "Blond_Hair", "Male", "Young", "Bald", "Eyeglasses"]
    n_train, n_valid, n_test = 600, 200, 400
    n = n_train + n_valid + n_test
    latent = rng.normal(size=(n, len(attributes))) + rng.normal(size=(n, 1))
    labels = latent > np.array([0.3, 1.0, 0.0, -0.5, 1.5, 1.2])
    split = np.repeat(["train", "valid", "test"], [n_train, n_valid, n_test])
    index = pd.DataFrame({"id": [f"{i:05d}.jpg" for i in range(n)], "split": split, "source": "synthetic"})
    for j, name in enumerate(attributes):
        index[name] = labels[:, j]
    runs, metrics = [], []
    seeds = (23, 24, 25)
    settings = [("dense", 0.0, seeds), ("gmp", 0.9, seeds), ("gmp", 0.99, seeds), ("acdc", 0.99, seeds[:2])]
    for method, sparsity, seeds in settings:
        for seed in seeds:
            r = np.random.default_rng(seed)
            noise = (1 + 3 * sparsity) * r.normal(size=labels.shape)  # sparser: noisier
            z = np.where(labels, 2.0, -2.0) + noise
            frames = {}
            for part in ("valid", "test"):
                rows = split == part
                frames[part] = pd.DataFrame(z[rows].astype(np.float32), columns=attributes)
                frames[part].insert(0, "id", index["id"][rows].to_numpy())
            meta = {
                "dataset": "synth",
                "task": "joint",
                "arch": "cnn",
                "method": method,
                "target_sparsity": sparsity,
                "measured_sparsity": sparsity,
                "seed": seed,
            }
            runs.append((meta, frames["test"]))
            m = pm.model_metrics(index, frames["valid"], frames["test"], IDENTITIES, min_positives=3)
            metrics.append(m.assign(method=method, sparsity=sparsity, seed=seed))
    return index, runs, pd.concat(metrics, ignore_index=True)


def test_criteria_tables_returns_every_table_with_the_documented_columns(synthetic):
    index, runs, metrics = synthetic
    settings = analysis_settings(bootstrap=50, gallery_size=3, ba_min_positives=3, routing_fractions=[0, 0.1, 0.5])
    tables = cr.criteria_tables(index, runs[::-1], metrics, settings)
    assert set(tables) == set(cr.TABLE_COLUMNS)
    for name, table in tables.items():
        expected = cr.TABLE_COLUMNS[name]
        if name == "susceptible_samples":
            at = expected.index("prob_std") + 1
            expected = expected[:at] + IDENTITIES + expected[at:]
        assert list(table.columns) == expected, name
        assert len(table) > 0, name
    settings = {("gmp", 0.9), ("gmp", 0.99), ("acdc", 0.99)}
    for name in ("cie_groups", "sample_criterion", "headline", "routing_curve", "attribute_criterion"):
        assert set(map(tuple, tables[name][["method", "sparsity"]].drop_duplicates().to_numpy())) == settings, name
    curve = tables["routing_curve"]
    assert curve.loc[curve["method"] == "acdc", "n_seeds"].eq(2).all()  # seeds 23, 24 matched
    head = tables["headline"]
    assert head["auc"].between(0, 1).all() and (head["auc_low"] <= head["auc_high"]).all()
    assert set(tables["countermeasures"]["countermeasure"]) == {"calibrated_threshold", "routing", "random_routing"}
    gallery = tables["susceptible_samples"]
    assert len(gallery) == 3 * 6 * 4 and set(gallery["method"]) == {"dense", "gmp", "acdc"}


def test_criteria_tables_rejects_inconsistent_runs(synthetic):
    index, runs, metrics = synthetic
    sparse_only = [r for r in runs if r[0]["method"] != "dense"]
    with pytest.raises(ValueError, match="no dense model"):
        cr.criteria_tables(index, sparse_only, metrics, analysis_settings(bootstrap=0))
    meta, frame = runs[0]
    with pytest.raises(ValueError, match="other test ids"):
        cr.criteria_tables(index, [runs[1], (meta, frame.iloc[1:])], metrics, analysis_settings(bootstrap=0))
    with pytest.raises(ValueError, match="two models"):
        cr.criteria_tables(index, [runs[0], runs[0]], metrics, analysis_settings(bootstrap=0))
    with pytest.raises(ValueError, match="index is missing columns"):
        cr.criteria_tables(index, runs, metrics, analysis_settings(identities=["Chubby"], bootstrap=0))
