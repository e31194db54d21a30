"""The criteria stage: every table of the dense-model criteria and countermeasures of one
(dataset, task, arch), from test predictions and the tidy per-model metrics.

:func:`criteria_tables` is the one entry point of the workflow rule; the analysis it
assembles lives by concern:

- :mod:`prunebias.analysis.cies`: majority votes, compression-identified exemplars (CIEs),
  prediction flips and their rates per identity group;
- :mod:`prunebias.analysis.sample_criterion`: dense-only susceptibility scores, how well
  they find the targets, precision-recall curves, the most susceptible samples;
- :mod:`prunebias.analysis.attribute_criterion`: dense per-attribute statistics against ΔBA;
- :mod:`prunebias.analysis.countermeasures`: calibrated thresholds and routing to the dense
  model;
- :mod:`prunebias.analysis.rank_statistics`: the AUC and Spearman statistics with their
  bootstrap intervals.

Targets of the sample criterion (:data:`TARGETS`), per (method, sparsity) and (sample,
attribute): ``cie`` (sparse majority vote != dense majority vote) and ``sparse_error``
(sparse majority vote != label).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from prunebias.analysis.attribute_criterion import (
    ATTRIBUTE_CRITERION_COLUMNS,
    ATTRIBUTE_RANKING_COLUMNS,
    attribute_criterion,
    delta_bias_amplification,
    dense_attribute_statistics,
)
from prunebias.analysis.cies import CIE_GROUP_COLUMNS, cie_group_table, majority_vote, prediction_flips
from prunebias.analysis.countermeasures import (
    COUNTERMEASURE_COLUMNS,
    ROUTING_CURVE_COLUMNS,
    calibrated_threshold_recovery,
    routing_curve,
)
from prunebias.analysis.metrics import check_band, train_conditionals
from prunebias.analysis.sample_criterion import (
    EVALUATION_COLUMNS,
    HEADLINE_COLUMNS,
    PR_CURVE_COLUMNS,
    SUSCEPTIBLE_SAMPLE_COLUMNS,
    evaluate_scores,
    headline,
    precision_recall_curves,
    susceptibility_scores,
    susceptible_samples,
)
from prunebias.settings import AnalysisSettings
from prunebias.validation import as_count, as_fractions, as_logits, as_names, require_columns

__all__ = ["TABLE_COLUMNS", "TARGETS", "criteria_tables"]

#: What the sample criterion tries to find.
TARGETS = ("cie", "sparse_error")

_KEYS = ["method", "sparsity"]
_TARGET_KEYS = _KEYS + ["target"]
#: Columns of every table returned by :func:`criteria_tables` (``susceptible_samples``
#: has, in addition, one bool column per identity after ``prob_std``): the setting keys,
#: then the columns of the function that makes the table (the attribute criterion, the
#: calibrated-threshold recovery and the gallery name the setting themselves).
TABLE_COLUMNS = {
    "cie_groups": _KEYS + CIE_GROUP_COLUMNS,
    "sample_criterion": _TARGET_KEYS + EVALUATION_COLUMNS,
    "headline": _TARGET_KEYS + HEADLINE_COLUMNS,
    "pr_curve": _TARGET_KEYS + PR_CURVE_COLUMNS,
    "attribute_criterion": ATTRIBUTE_CRITERION_COLUMNS,
    "attribute_ranking": ATTRIBUTE_RANKING_COLUMNS,
    "countermeasures": COUNTERMEASURE_COLUMNS,
    "routing_curve": _KEYS + ROUTING_CURVE_COLUMNS,
    "susceptible_samples": SUSCEPTIBLE_SAMPLE_COLUMNS,
}


def _collect_runs(runs) -> tuple[list[str], np.ndarray, dict[tuple[str, float], tuple[list[int], np.ndarray]]]:
    """(attributes, test ids, {(method, sparsity): (seeds, logits (S, N, A))}), rows aligned by id."""
    if not isinstance(runs, Sequence) or len(runs) == 0:
        raise ValueError("runs must be a non-empty list of (metadata, predictions) pairs")
    models: dict[tuple[str, float], dict[int, np.ndarray]] = {}
    attributes = id_index = None
    for i, item in enumerate(runs):
        if not (isinstance(item, tuple) and len(item) == 2):
            raise ValueError(f"runs[{i}] must be a (metadata dict, predictions DataFrame) pair")
        meta, frame = item
        needed = ("method", "target_sparsity", "seed")
        missing = [k for k in needed if not isinstance(meta, Mapping) or k not in meta]
        if missing:
            raise ValueError(f"runs[{i}] metadata lacks keys {missing}")
        if not isinstance(frame, pd.DataFrame) or "id" not in frame.columns:
            raise ValueError(f"runs[{i}] predictions must be a DataFrame with an 'id' column")
        columns = [c for c in frame.columns if c != "id"]
        ids = pd.Index(frame["id"].astype(str))
        if attributes is None:
            if not columns or not ids.is_unique or len(ids) == 0:
                raise ValueError(f"runs[{i}] predictions need logit columns and unique, non-empty ids")
            attributes, id_index = columns, ids
        elif set(columns) != set(attributes) or len(columns) != len(attributes):
            raise ValueError(f"runs[{i}] has attribute columns {columns}, runs[0] has {attributes}")
        rows = id_index.get_indexer(ids)
        if len(ids) != len(id_index) or (rows < 0).any() or not ids.is_unique:
            raise ValueError(f"runs[{i}] predictions have other test ids than runs[0]")
        z = np.empty((len(id_index), len(attributes)), dtype=np.float32)
        try:
            z[rows] = frame[attributes].to_numpy(dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"runs[{i}] logit columns must be numeric") from None
        method = str(meta["method"])
        key = (method, 0.0 if method == "dense" else float(meta["target_sparsity"]))
        seed = int(meta["seed"])
        if seed in models.setdefault(key, {}):
            raise ValueError(f"runs has two models for method {key[0]}, sparsity {key[1]:g}, seed {seed}")
        models[key][seed] = z
    if ("dense", 0.0) not in models:
        raise ValueError("runs has no dense model (method 'dense')")
    stacked = {}
    for key, by_seed in models.items():
        seeds = sorted(by_seed)
        logits = np.stack([by_seed[s] for s in seeds])
        stacked[key] = (seeds, as_logits(logits, f"logits of {key}", ndim=3, dtype=None, nonempty=True))
    return attributes, id_index.to_numpy(dtype=object), stacked


def _labels(index: pd.DataFrame, ids: np.ndarray, attributes: list[str], identities: list[str]):
    """Test labels and groups of ``ids``, and training labels and groups, from the index."""
    require_columns(index, ["id", "split"] + attributes + identities, "index")
    not_bool = [c for c in attributes + identities if index[c].dtype != bool]
    if not_bool:
        raise ValueError(f"index label columns must be bool, not: {not_bool}")
    index_ids = pd.Index(index["id"].astype(str))
    if not index_ids.is_unique:
        raise ValueError("index has duplicate ids")
    rows = index_ids.get_indexer(ids)
    if (rows < 0).any():
        missing = ids[rows < 0]
        raise ValueError(f"{missing.size} prediction ids are missing from index, e.g. {missing[0]!r}")
    train = (index["split"] == "train").to_numpy()
    if not train.any():
        raise ValueError('index has no rows with split == "train" (needed for training prevalences)')
    y_all = index[attributes].to_numpy(dtype=bool)
    g_all = index[identities].to_numpy(dtype=bool)
    return y_all[rows], g_all[rows], y_all[train], g_all[train]


def _empty(name: str) -> pd.DataFrame:
    return pd.DataFrame(columns=TABLE_COLUMNS[name])


def criteria_tables(
    index: pd.DataFrame,
    runs: list[tuple[dict, pd.DataFrame]],
    metrics: pd.DataFrame,
    settings: AnalysisSettings,
) -> dict[str, pd.DataFrame]:
    """All criteria and countermeasure tables of one (dataset, task, arch).

    Parameters
    ----------
    index : DataFrame
        ``index.parquet``: ``id``, ``split`` and one bool column per attribute (the
        predicted attributes and the identities).
    runs : list of (metadata dict, DataFrame)
        Test predictions of every dense and sparse model: metadata as :func:`prunebias.io.read_predictions` returns it
        ("Predictions"; keys method, target_sparsity, seed are used) and a frame of ``id``
        plus one logit column per attribute. All frames hold the same ids and attributes.
    metrics : DataFrame
        Concatenated tidy per-model metrics of the same models.
    settings : AnalysisSettings
        Used: ``identities`` (index columns; they need not be predicted), ``uncertainty_band``
        (band of the "flag" score), ``flag_fractions`` (top fractions of pairs flagged by the
        continuous scores), ``routing_fractions`` (fractions of samples routed to the dense
        model), ``bootstrap`` (resamples of the AUC and Spearman intervals), ``gallery_size``
        (susceptible samples listed per attribute), ``seed`` (of the bootstraps and the random
        routing) and the undefined-BA rules ``ba_min_positives``, ``ba_min_relative_gap``
        (:func:`prunebias.analysis.metrics.bias_amplification`).

    Returns
    -------
    dict of str -> DataFrame, keys and columns of :data:`TABLE_COLUMNS`:
        ``cie_groups``: :func:`cie_group_table` per (method, sparsity).
        ``sample_criterion``: :func:`evaluate_scores` of :func:`susceptibility_scores`
        against targets "cie" and "sparse_error".
        ``headline``: :func:`headline`.
        ``pr_curve``: :func:`precision_recall_curves` of the same scores and targets.
        ``attribute_criterion`` and ``attribute_ranking``: :func:`attribute_criterion` of
        :func:`dense_attribute_statistics` vs :func:`delta_bias_amplification`.
        ``countermeasures``: :func:`calibrated_threshold_recovery`, then routing to the
        dense model (countermeasure "routing") and its random control ("random_routing")
        for every routed fraction > 0, ``countered`` being the routed value.
        ``routing_curve``: :func:`routing_curve` per (method, sparsity).
        ``susceptible_samples``: :func:`susceptible_samples`.
        Sparse settings whose seeds share none with the dense seeds get no flip, routing
        rows.
    """
    identities = as_names(settings.identities, "identities")
    band = check_band(settings.uncertainty_band, "uncertainty_band")
    flag_fractions = as_fractions(settings.flag_fractions, "flag_fractions")
    routing_fractions = as_fractions(settings.routing_fractions, "routing_fractions")
    bootstrap = as_count(settings.bootstrap, "bootstrap")
    gallery_size = as_count(settings.gallery_size, "gallery_size", minimum=1)
    seed = settings.seed
    if not isinstance(metrics, pd.DataFrame):
        raise ValueError(f"metrics must be a DataFrame, got {type(metrics).__name__}")
    attributes, ids, models = _collect_runs(runs)
    y, g, y_train, g_train = _labels(index, ids, attributes, identities)
    conditionals = train_conditionals(y_train, g_train)
    dense_seeds, dense = models.pop(("dense", 0.0))
    dense_vote = majority_vote(dense)

    cie_frames, routing_frames, targets = [], [], {}
    for (method, sparsity), (seeds, sparse) in sorted(models.items()):
        setting = {"method": method, "sparsity": sparsity}
        vote = majority_vote(sparse)
        cie = vote != dense_vote
        for target, value in zip(TARGETS, (cie, vote != y)):
            targets[(method, sparsity, target)] = value
        matched = bool(set(seeds) & set(dense_seeds))
        flips = prediction_flips(dense, sparse, dense_seeds, seeds) if matched else None
        cie_frames.append(cie_group_table(cie, flips, g, attributes, identities).assign(**setting))
        if matched:
            curve = routing_curve(
                dense,
                sparse,
                y,
                g,
                conditionals,
                attributes=attributes,
                identities=identities,
                fractions=routing_fractions,
                dense_seeds=dense_seeds,
                sparse_seeds=seeds,
                seed=seed,
                min_positives=settings.ba_min_positives,
                min_relative_gap=settings.ba_min_relative_gap,
            )
            routing_frames.append(curve.assign(**setting))

    tables = {"cie_groups": pd.concat(cie_frames, ignore_index=True) if cie_frames else _empty("cie_groups")}
    if targets:
        scores = susceptibility_scores(dense, band)
        tables["sample_criterion"] = evaluate_scores(
            scores,
            targets,
            g,
            attributes,
            identities,
            key_names=_TARGET_KEYS,
            fractions=flag_fractions,
            bootstrap=bootstrap,
            seed=seed,
        )
        tables["headline"] = headline(tables["sample_criterion"])
        tables["pr_curve"] = precision_recall_curves(scores, targets, key_names=_TARGET_KEYS)
    else:
        tables["sample_criterion"], tables["headline"] = _empty("sample_criterion"), _empty("headline")
        tables["pr_curve"] = _empty("pr_curve")

    statistics = dense_attribute_statistics(metrics, y_train, g_train, attributes, identities)
    delta = delta_bias_amplification(metrics)
    delta = delta[delta["attribute"].isin(attributes)]
    tables["attribute_criterion"], tables["attribute_ranking"] = attribute_criterion(
        statistics, delta, bootstrap=bootstrap, seed=seed
    )

    routing = pd.concat(routing_frames, ignore_index=True) if routing_frames else _empty("routing_curve")
    routed = routing[routing["fraction"] > 0].rename(columns={"value": "countered"})
    names = {"susceptible": "routing", "random": "random_routing"}
    routed = routed.assign(countermeasure=routed["routing"].map(names))
    tables["countermeasures"] = pd.concat(
        [calibrated_threshold_recovery(metrics), routed[COUNTERMEASURE_COLUMNS]], ignore_index=True
    )
    tables["routing_curve"] = routing
    tables["susceptible_samples"] = susceptible_samples(
        ids, y, g, dense, {k: v[1] for k, v in models.items()}, attributes, identities, n=gallery_size
    )
    ordered = {}
    for name, frame in tables.items():
        columns = TABLE_COLUMNS[name]
        if name == "susceptible_samples":
            at = columns.index("prob_std") + 1
            columns = columns[:at] + identities + columns[at:]
        ordered[name] = frame[columns].reset_index(drop=True)
    return ordered
