"""Each training seed's own changes at the highest sparsity, beside the pooled ones.

The effects table pools the seeds: every bootstrap replicate redraws them with replacement, so
when two seeds disagree the pooled interval is wide even where each seed's own is narrow. This
prints, per results directory and data set of the joint task, the changes at the method's
highest sparsity for the seeds together and for each seed alone, from the run's predictions and
the same code as the effects job (:func:`prunebias.jobs.paired_effect_table`). A seed alone
gets its own support: the pairs and attributes its models keep.

    .venv/bin/python benchmarks/seed_effects.py [--config config.yaml] results [results/generator-seed1 ...]

The analysis settings are those of the config (its ``analysis`` block and identities, the
schema's defaults filled in). Nothing here is a test: it reports what came out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import yaml

from prunebias import config, jobs
from prunebias.data import store
from prunebias.io import read_predictions
from prunebias.settings import AnalysisSettings

TASK = "joint"
SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def analysis_settings(config_path: Path) -> AnalysisSettings:
    """The analysis settings of a config file, validated and with the schema's defaults, as the Snakefile reads it."""
    from snakemake.utils import validate

    cfg = yaml.safe_load(Path(config_path).read_text())
    validate(cfg, str(SCHEMA))
    return AnalysisSettings.from_json(config.analysis_settings(cfg))


def run_predictions(results: Path) -> dict[tuple[str, str, str], tuple[list, list]]:
    """The joint task's (valid, test) predictions of a results directory, per (dataset, task, arch)."""
    test_paths = sorted(results.glob(f"predictions/*/{TASK}/**/test.parquet"))
    valid = [read_predictions(p.with_name("valid.parquet")) for p in test_paths]
    return jobs.prediction_groups(valid, [read_predictions(p) for p in test_paths])


def seed_tables(results: Path, settings: AnalysisSettings) -> pd.DataFrame:
    """The effects of every (dataset, arch) of the joint task, for all seeds together
    (``seeds_used`` "all") and for each seed alone ("seed <s>")."""
    tables = []
    for (dataset, _, arch), (valid, test) in run_predictions(results).items():
        index = store.load_index(results / "data" / dataset / "index.parquet")
        subsets = {"all": range(len(test))}
        for seed in sorted({int(meta["seed"]) for _, meta in test}):
            subsets[f"seed {seed}"] = [i for i, (_, meta) in enumerate(test) if int(meta["seed"]) == seed]
        for name, rows in subsets.items():
            table = jobs.paired_effect_table(index, [valid[i] for i in rows], [test[i] for i in rows], settings)
            tables.append(table.assign(dataset=dataset, arch=arch, seeds_used=name))
    return pd.concat(tables, ignore_index=True)


def seed_lines(table: pd.DataFrame) -> list[str]:
    """One line per (dataset, arch, method, threshold, seeds used) at the method's highest sparsity."""
    lines = []
    for (dataset, arch, method, threshold), part in table.groupby(
        ["dataset", "arch", "method", "threshold"], sort=False
    ):
        top = part[part["sparsity"] == part["sparsity"].max()]
        for name, rows in top.groupby("seeds_used", sort=False):
            cells = [
                f"{r['identity'] if r['statistic'] == 'bias_amplification' else r['statistic']} "
                + (
                    f"{r['delta']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] ({r['pairs']})"
                    if r["pairs"]
                    else "no stable pair"
                )
                for _, r in rows.iterrows()
            ]
            lines.append(
                f"{dataset} {arch} {method} {100 * top['sparsity'].iloc[0]:g} % ({threshold}), {name}: "
                + "; ".join(cells)
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("config.yaml"), help="the run's config (analysis settings)")
    parser.add_argument("results", type=Path, nargs="+", help="results directories")
    args = parser.parse_args()
    settings = analysis_settings(args.config)
    for results in args.results:
        print(f"== {results}")
        for line in seed_lines(seed_tables(results, settings)):
            print(f"  {line}")


if __name__ == "__main__":
    main()
