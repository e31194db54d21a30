"""The check scripts (benchmarks/validity.py, benchmarks/seed_effects.py) print an effect without a
stable pair as such, not as a change of NaNs."""

import numpy as np
import pandas as pd

from workflow_utils import benchmark_script


def _effects(pairs: int, delta: float) -> pd.DataFrame:
    rows = [
        dict(statistic="bias_amplification", identity="Male", pairs=pairs, collapsed=4, delta=delta),
        dict(statistic="uncertainty", identity="all", pairs=21, collapsed=0, delta=0.2),
        dict(statistic="interdependence", identity="all", pairs=9, collapsed=10, delta=0.03),
        dict(statistic="identity_dependence", identity="all", pairs=7, collapsed=8, delta=0.001),
    ]
    return (
        pd.DataFrame(rows)
        .assign(dataset="synth", task="joint", arch="small_cnn", method="gmp_pt", threshold="default")
        .assign(sparsity=0.98, seeds=2, dense=0.1, value=lambda t: 0.1 + t["delta"])
        .assign(ci_low=lambda t: t["delta"] - 0.01, ci_high=lambda t: t["delta"] + 0.01)
        .assign(seed_delta_min=lambda t: t["delta"], seed_delta_max=lambda t: t["delta"])
    )


def test_validity_lines_name_an_empty_support():
    validity = benchmark_script("validity")
    (male,) = [line for line in validity.effect_lines(_effects(0, np.nan)) if "dBA" in line]
    assert male == "synth gmp_pt 98 % (default): dBA[Male] not comparable: no stable pair (4 collapsed)"
    (male,) = [line for line in validity.effect_lines(_effects(6, 0.038)) if "dBA" in line]
    assert male.startswith("synth gmp_pt 98 % (default): dBA[Male] +0.0380 CI [+0.0280, +0.0480] (6 stable pairs")


def test_seed_lines_name_an_empty_support():
    seed_effects = benchmark_script("seed_effects")
    (line,) = seed_effects.seed_lines(_effects(0, np.nan).assign(seeds_used="all"))
    assert "Male no stable pair;" in line and "nan" not in line
    (line,) = seed_effects.seed_lines(_effects(6, 0.038).assign(seeds_used="all"))
    assert "Male +0.038 [+0.028, +0.048] (6);" in line
