"""Which (identity, attribute) pairs a pooled BA change at the highest sparsity rests on.

The effects table averages BA over the pairs stable in every model of a curve: defined, and
whose attribute every model predicts positive, and negative, for at least ``ba_min_positives``
test samples (:mod:`prunebias.analysis.effects`). Adding a seed adds models that must all keep
an attribute, so the support can only shrink, and the pairs that leave it first are those a
sparse model predicts for a handful of faces, often with the largest BA. This prints, per
results directory, data set, method, threshold and identity of the joint task, every pair with
a defined dense BA: each seed's change at the method's highest sparsity, the fewest predicted
positives of any of the curve's models, and whether the pair is in the support; then the mean
over the support, which equals the effects table's ``delta`` (a workflow test checks it).

    .venv/bin/python benchmarks/support_pairs.py [--identities Male Young] [--threshold default] results [...]

Read from the run's per-model metrics (``metrics.parquet``) and the test split's size;
nothing is recomputed from predictions. Nothing here is a test: it reports what came out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from prunebias.analysis import effects
from prunebias.data import store

TASK = "joint"


def pair_table(metrics: pd.DataFrame, n_test: int, min_positives: int) -> pd.DataFrame:
    """One (method, threshold, identity, attribute) curve's pairs, for the per-model ``metrics`` of
    one data set and arch: per seed the BA change at the highest sparsity, the fewest predicted
    positives or negatives over the curve's models, and ``in_support``."""
    ba = metrics[metrics["metric"] == "bias_amplification"]
    rate = metrics[(metrics["metric"] == "positive_rate") & (metrics["identity"] == "all")]
    predicted = rate.assign(value=(rate["value"] * n_test).round())
    rows = []
    for method in sorted(set(metrics["method"]) - {"dense"}):
        curve = metrics["method"].isin(["dense", method])
        top = metrics.loc[metrics["method"] == method, "sparsity"].max()
        for (threshold, identity), part in ba[curve.loc[ba.index]].groupby(["threshold", "identity"]):
            value = part.pivot_table(index="attribute", columns=["sparsity", "seed"], values="value", dropna=False)
            counts = predicted[curve.loc[predicted.index] & (predicted["threshold"] == threshold)]
            counts = counts.pivot_table(index="attribute", columns=["sparsity", "seed"], values="value")
            fewest = pd.concat([counts, n_test - counts]).groupby(level=0).min().min(axis=1)
            change = value[top] - value[0.0]
            defined = value[0.0].notna().all(axis=1)
            live = effects.live_counts(counts, n_test, min_positives).all(axis=1).reindex(value.index, fill_value=False)
            table = change[defined].add_prefix("seed ")
            table["fewest_predicted"] = fewest.reindex(table.index).astype(int)
            table["in_support"] = value.notna().all(axis=1)[defined] & live[defined]
            rows.append(table.assign(method=method, sparsity=top, threshold=threshold, identity=identity))
    return pd.concat(rows).rename_axis("attribute").reset_index()


def run_pairs(results: Path, min_positives: int) -> pd.DataFrame:
    """:func:`pair_table` of every data set and arch of the joint task of a results directory."""
    metrics = pd.read_parquet(results / "tables" / "metrics.parquet")
    tables = []
    for (dataset, arch), part in metrics[metrics["task"] == TASK].groupby(["dataset", "arch"]):
        index = store.load_index(results / "data" / dataset / "index.parquet")
        table = pair_table(part, int((index["split"] == "test").sum()), min_positives)
        tables.append(table.assign(dataset=dataset, arch=arch))
    return pd.concat(tables, ignore_index=True)


#: What a curve's pairs are grouped by.
CURVE = ["dataset", "arch", "method", "sparsity", "threshold", "identity"]


def support_means(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per curve of :func:`run_pairs`: the number of pairs in the support and the mean over seeds
    of each seed's mean BA change over them (the effects table's ``pairs`` and ``delta``)."""
    seeds = [c for c in pairs.columns if c.startswith("seed ")]

    def mean(part: pd.DataFrame) -> pd.Series:
        kept = part.loc[part["in_support"], seeds].dropna(axis=1, how="all")
        return pd.Series({"pairs": len(kept), "delta": kept.mean().mean() if len(kept) else float("nan")})

    return pairs.groupby(CURVE).apply(mean, include_groups=False).reset_index()


def support_lines(pairs: pd.DataFrame, identities: list[str], threshold: str) -> list[str]:
    """Each chosen curve's pairs, fewest predicted first, then the mean over its support."""
    pairs = pairs[(pairs["threshold"] == threshold) & pairs["identity"].isin(identities)]
    means = support_means(pairs).set_index(CURVE)
    lines = []
    for curve, part in pairs.groupby(CURVE):
        dataset, arch, method, sparsity, _, identity = curve
        seeds = [c for c in part.columns if c.startswith("seed ") and part[c].notna().any()]
        lines.append(f"{dataset} {arch} {method} {100 * sparsity:g} % ({threshold}), BA w.r.t. {identity}:")
        shown = part[["attribute", *seeds, "fewest_predicted", "in_support"]].sort_values("fewest_predicted")
        lines += ["  " + line for line in shown.to_string(index=False, float_format="%+.3f").splitlines()]
        mean = means.loc[curve]
        lines.append(f"  mean over the {int(mean['pairs'])} pairs in the support {mean['delta']:+.4f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", nargs="+", default=["Male", "Young"])
    parser.add_argument("--threshold", default="default", choices=["default", "calibrated"])
    parser.add_argument("--min-positives", type=int, default=10, help="analysis.ba_min_positives of the run")
    parser.add_argument("results", type=Path, nargs="+", help="results directories")
    args = parser.parse_args()
    for results in args.results:
        print(f"== {results}")
        print("\n".join(support_lines(run_pairs(results, args.min_positives), args.identities, args.threshold)))


if __name__ == "__main__":
    main()
