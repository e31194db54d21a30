"""The attribute criterion: do dense per-attribute statistics predict which attributes' BA grows?

:func:`dense_attribute_statistics` computes the predictors from the dense models and the
training labels, :func:`delta_bias_amplification` the outcome (ΔBA = BA_sparse − BA_dense)
from the tidy per-model metrics, and :func:`attribute_criterion` ranks and correlates them
(Spearman with a bootstrap interval, overlap of the predicted and realised top k).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from prunebias.analysis.aggregate import metric_rows, seed_mean
from prunebias.analysis.metrics import train_conditionals
from prunebias.analysis.rank_statistics import ordinal_rank, spearman_ci
from prunebias.validation import as_bool, as_count, as_names, require_columns, safe_divide

__all__ = [
    "ATTRIBUTE_CRITERION_COLUMNS",
    "ATTRIBUTE_RANKING_COLUMNS",
    "STATISTICS",
    "attribute_criterion",
    "delta_bias_amplification",
    "dense_attribute_statistics",
]

#: Dense per-attribute statistics of the attribute criterion and their a-priori risk
#: direction: +1 when a larger value is expected to come with a larger ΔBA. The direction
#: is fixed in advance (not fitted) so that the predicted ranking uses no sparse model.
STATISTICS = {
    "uncertainty": 1,
    "interdependence": 1,
    "auc": -1,  # harder attributes (lower AUC) are expected to lose more
    "train_prevalence": -1,  # CelebA positives are mostly the rare value
    "train_rarity": 1,  # min(prevalence, 1 - prevalence)
    "group_gap": 1,  # |P(a | g=1) - P(a | g=0)| on the training split
}
#: Columns of the criterion table of :func:`attribute_criterion`.
ATTRIBUTE_CRITERION_COLUMNS = [
    "method",
    "sparsity",
    "identity",
    "statistic",
    "direction",
    "n_attributes",
    "spearman",
    "spearman_low",
    "spearman_high",
    "p_value",
    "rank",
    "top_k",
    "top_k_overlap",
    "top_k_chance",
]
#: Columns of the ranking table of :func:`attribute_criterion`.
ATTRIBUTE_RANKING_COLUMNS = [
    "method",
    "sparsity",
    "identity",
    "statistic",
    "attribute",
    "value",
    "delta_ba",
    "predicted_rank",
    "realised_rank",
    "predicted_top_k",
    "realised_top_k",
]


def dense_attribute_statistics(
    metrics: pd.DataFrame,
    train_labels,
    train_groups,
    attributes: Sequence[str],
    identities: Sequence[str],
    *,
    threshold: str = "default",
) -> pd.DataFrame:
    """Dense-model statistics per attribute, the predictors of the attribute criterion.

    Parameters
    ----------
    metrics : DataFrame
        Tidy per-model metrics (:func:`prunebias.analysis.metrics.model_metrics`) including the dense models.
    train_labels : array-like of bool, shape (n_train, n_attributes)
    train_groups : array-like of bool, shape (n_train, n_identities)
    attributes, identities : sequence of str
    threshold : str, default "default"
        Threshold kind of the metrics rows (interdependence depends on it).

    Returns
    -------
    DataFrame
        Columns ``identity, attribute, statistic, value``, statistics of :data:`STATISTICS`.
        uncertainty, interdependence and auc are means over dense seeds (identity "all"
        rows of ``metrics``); train_prevalence and train_rarity come from the training
        labels. These do not depend on the identity and are repeated for identity "all"
        and each identity. group_gap is |P(a | g=1) − P(a | g=0)| on the training split for
        identity g (NaN for a = g or an empty group); for identity "all" it is the mean
        over the identities whose dense BA(g, a) is defined (NaN if none).
    """
    attributes = as_names(attributes, "attributes")
    identities = as_names(identities, "identities")
    y = as_bool(train_labels, "train_labels", cols=len(attributes))
    g = as_bool(train_groups, "train_groups", rows=y.shape[0], cols=len(identities))
    if y.shape[0] == 0:
        raise ValueError("train_labels has no rows")
    metric_rows(metrics, "auc", threshold)  # checks the columns
    dense = metrics[metrics["method"] == "dense"]
    if dense.empty:
        raise ValueError("metrics has no dense rows (method == 'dense')")
    values = {}
    for stat in ("uncertainty", "interdependence", "auc"):
        rows = metric_rows(dense, stat, threshold)
        rows = rows[rows["identity"] == "all"]
        means = seed_mean(rows, ["attribute"]).set_index("attribute")["value"]
        values[stat] = means.reindex(attributes).to_numpy(dtype=np.float64)
    prevalence = y.mean(axis=0)
    values["train_prevalence"] = prevalence
    values["train_rarity"] = np.minimum(prevalence, 1 - prevalence)

    p1, p0 = train_conditionals(y, g)  # the conditionals that BA itself uses
    gap = np.abs(p1 - p0)
    gap[np.equal.outer(np.array(identities, dtype=object), np.array(attributes, dtype=object))] = np.nan
    ba = metric_rows(dense, "bias_amplification", threshold)
    ba = seed_mean(ba, ["identity", "attribute"]).pivot(index="identity", columns="attribute", values="value")
    defined = np.isfinite(ba.reindex(index=identities, columns=attributes).to_numpy(dtype=np.float64))
    pooled_gap = safe_divide(np.where(defined, gap, 0.0).sum(axis=0), defined.sum(axis=0))  # BA defined ⇒ gap defined

    frames = []
    for ident_index, ident in enumerate(["all"] + identities):
        for stat in STATISTICS:
            if stat == "group_gap":
                v = pooled_gap if ident == "all" else gap[ident_index - 1]
            else:
                v = values[stat]
            frames.append(pd.DataFrame({"identity": ident, "attribute": attributes, "statistic": stat, "value": v}))
    return pd.concat(frames, ignore_index=True)


def delta_bias_amplification(metrics: pd.DataFrame, *, threshold: str = "default") -> pd.DataFrame:
    """ΔBA = BA_sparse − BA_dense per (method, sparsity, identity, attribute).

    Parameters
    ----------
    metrics : DataFrame
        Tidy per-model metrics with dense and sparse models.
    threshold : str, default "default"

    Returns
    -------
    DataFrame
        Columns ``method, sparsity, identity, attribute, ba_dense, ba_sparse, delta_ba``.
        BA values are means over seeds (undefined seeds skipped), so the dense and sparse
        seed counts may differ; ΔBA is NaN where either is undefined. Identity "all" rows
        average ΔBA, ba_dense and ba_sparse over the identities with a defined ΔBA.
    """
    rows = metric_rows(metrics, "bias_amplification", threshold)
    ba = seed_mean(rows, ["method", "sparsity", "identity", "attribute"])
    dense = ba[ba["method"] == "dense"][["identity", "attribute", "value"]].rename(columns={"value": "ba_dense"})
    if dense.empty:
        raise ValueError("metrics has no dense bias_amplification rows")
    sparse = ba[ba["method"] != "dense"].rename(columns={"value": "ba_sparse"})
    out = sparse.merge(dense, on=["identity", "attribute"], how="left")
    out["delta_ba"] = out["ba_sparse"] - out["ba_dense"]
    out = out[["method", "sparsity", "identity", "attribute", "ba_dense", "ba_sparse", "delta_ba"]]
    setting = ["method", "sparsity", "attribute"]
    defined = out[np.isfinite(out["delta_ba"])].groupby(setting)[["ba_dense", "ba_sparse", "delta_ba"]].mean()
    # Left join: an attribute without any defined ΔBA keeps a NaN "all" row.
    pooled = out[setting].drop_duplicates().merge(defined.reset_index(), on=setting, how="left")
    return pd.concat([out, pooled.assign(identity="all")[out.columns]], ignore_index=True)


def attribute_criterion(
    statistics: pd.DataFrame,
    delta: pd.DataFrame,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    top_k: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Do dense per-attribute statistics predict which attributes' BA grows with pruning?

    Parameters
    ----------
    statistics : DataFrame
        From :func:`dense_attribute_statistics` (identity, attribute, statistic, value).
    delta : DataFrame
        From :func:`delta_bias_amplification` (method, sparsity, identity, attribute,
        delta_ba).
    bootstrap : int, default 1000
        Resamples of the attributes for the Spearman interval.
    seed : int, default 0
    top_k : int, optional
        Size of the at-risk set; default a quarter of the usable attributes (at least 1).

    Returns
    -------
    criterion : DataFrame
        One row per (method, sparsity, identity, statistic): ``direction`` (see
        :data:`STATISTICS`), ``n_attributes`` (with both values defined), ``spearman``
        between the statistic and ΔBA with its 95% bootstrap interval ``spearman_low,
        spearman_high`` and ``p_value``, ``rank`` of |spearman| among the statistics
        (1 = best predictor), ``top_k``, ``top_k_overlap`` (share of the k attributes with
        the largest realised ΔBA that are among the k predicted most at risk) and
        ``top_k_chance`` = k / n_attributes (expected overlap of a random prediction).
    ranking : DataFrame
        One row per (method, sparsity, identity, statistic, attribute): ``value``,
        ``delta_ba``, ``predicted_rank`` (1 = most at risk by the statistic in its
        direction), ``realised_rank`` (1 = largest ΔBA), ``predicted_top_k`` and
        ``realised_top_k``. Ranks are among usable attributes (NaN otherwise), ties
        broken by attribute order.
    """
    for name, frame, need in (
        ("statistics", statistics, ["identity", "attribute", "statistic", "value"]),
        ("delta", delta, ["method", "sparsity", "identity", "attribute", "delta_ba"]),
    ):
        require_columns(frame, need, name)
    unknown = sorted(set(statistics["statistic"]) - set(STATISTICS))
    if unknown:
        raise ValueError(f"statistics has unknown statistics {unknown}; known: {list(STATISTICS)}")
    bootstrap = as_count(bootstrap, "bootstrap")
    if top_k is not None:
        top_k = as_count(top_k, "top_k", minimum=1)
    joined = delta[["method", "sparsity", "identity", "attribute", "delta_ba"]].merge(
        statistics, on=["identity", "attribute"], how="inner"
    )
    keys = ["method", "sparsity", "identity", "statistic"]
    summary, ranking = [], []
    for key, rows in joined.groupby(keys, sort=True):  # one group per statistic and setting
        direction = STATISTICS[key[3]]
        x = rows["value"].to_numpy(dtype=np.float64)
        d = rows["delta_ba"].to_numpy(dtype=np.float64)
        res = spearman_ci(x, d, bootstrap=bootstrap, seed=seed)
        usable = np.isfinite(x) & np.isfinite(d)
        predicted = ordinal_rank(np.where(usable, direction * x, np.nan))
        realised = ordinal_rank(np.where(usable, d, np.nan))
        k = min(top_k or max(1, usable.sum() // 4), usable.sum())
        overlap = ((predicted <= k) & (realised <= k)).sum() / k if k else np.nan
        summary.append(
            dict(zip(keys, key))
            | {
                "direction": direction,
                "n_attributes": res["n"],
                "spearman": res["spearman"],
                "spearman_low": res["low"],
                "spearman_high": res["high"],
                "p_value": res["p_value"],
                "top_k": k,
                "top_k_overlap": overlap,
                "top_k_chance": k / usable.sum() if k else np.nan,
            }
        )
        ranking.append(
            rows[["method", "sparsity", "identity", "statistic", "attribute", "value", "delta_ba"]].assign(
                predicted_rank=predicted,
                realised_rank=realised,
                predicted_top_k=predicted <= k,
                realised_top_k=realised <= k,
            )
        )
    if not summary:
        return (
            pd.DataFrame(columns=ATTRIBUTE_CRITERION_COLUMNS),
            pd.DataFrame(columns=ATTRIBUTE_RANKING_COLUMNS),
        )
    criterion = pd.DataFrame(summary)
    criterion["rank"] = (
        criterion["spearman"].abs().groupby([criterion[c] for c in keys[:3]]).rank(ascending=False, method="min")
    )
    cols = ATTRIBUTE_CRITERION_COLUMNS
    return criterion[cols].reset_index(drop=True), pd.concat(ranking, ignore_index=True)
