"""What pruning changed, with confidence intervals, on a support that does not move.

The study's curves average BA over the (identity, attribute) pairs where it is defined, but
which pairs are defined changes with sparsity: an attribute a sparse model never predicts
drops out of the mean. Here every curve (one pruning method over its sparsities) averages over
a *support* fixed for the whole curve, and counts what collapsed beside it:

- an attribute is *live* in a model that predicts it positive for at least ``min_positives``
  test samples and negative for as many; below that the model has collapsed to "never" (or
  "always") on it, and a share of a handful of predicted positives is noise (BA from one
  predicted positive is ±the group's share);
- a curve's support is what is live, and for BA defined, in every model of the curve (dense
  models included): the *stable* pairs for BA, the live attributes for the two R² statistics.

For each sparse setting (method, sparsity) and each statistic,

- ``bias_amplification`` per identity: the mean BA over the identity's stable pairs;
- ``uncertainty``: the mean over attributes of the share of 0.1 < p < 0.9;
- ``interdependence``: the mean over live attributes of the R² of ŷ_j on the other ŷ;
- ``identity_dependence``: the mean over live non-identity attributes of the R² of ŷ_j on
  the true identity labels (:func:`prunebias.analysis.dependence.identity_dependence`),

the change against the dense model of the same seed, averaged over seeds, with a paired
bootstrap 95 % interval: each replicate draws the test samples with replacement (the same
draw for the dense and the sparse models, hence *paired*) and, when there are several, the
seeds with replacement, and averages the dense-vs-sparse differences of the drawn seeds. The
support is decided once, on the whole test split; a replicate recomputes the values on it
(re-applying the support rules per replicate would average each replicate over different
pairs, a different statistic from the estimate's). Thresholds are fixed (default: z > 0;
calibrated: set on the full validation split).

:func:`information_kept` says how much of what the dense model learned a sparse one keeps:
``(BCE_prior − BCE_model) / (BCE_prior − BCE_dense)`` on the validation split, the prior
predicting each attribute's training prevalence.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import expit, log_expit

from prunebias.analysis import dependence, metrics
from prunebias.vocabulary import MODEL, model_columns

STATISTICS = ("bias_amplification", "uncertainty", "interdependence", "identity_dependence")
EFFECT_COLUMNS = [
    "threshold",
    "method",
    "sparsity",
    "statistic",
    "identity",
    "pairs",
    "collapsed",
    "seeds",
    "dense",
    "value",
    "delta",
    "ci_low",
    "ci_high",
    "seed_delta_min",
    "seed_delta_max",
]


def model_statistics(
    preds: np.ndarray,
    uncertain: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    conditionals: tuple[np.ndarray, np.ndarray],
    weights: np.ndarray,
    *,
    attributes: Sequence[str],
    identities: Sequence[str],
    min_positives: int,
    min_relative_gap: float,
    statistics: Sequence[str] = STATISTICS,
) -> dict[str, np.ndarray]:
    """Per-model statistics of M models under B resamplings of one test split, before any mean over attributes.

    ``preds`` (M, n, A) bool predictions, ``uncertain`` (M, n, A) bool (0.1 < p < 0.9),
    ``weights`` (B, n) integer counts of each test sample in each resampling (all ones: the
    sample itself). Returns, of the ``statistics`` asked for, ``ba`` (B, M, G, A),
    ``interdependence`` and ``identity_dependence`` (B, M, A) per attribute, and
    ``uncertainty`` (B, M), the mean over attributes.
    """
    out = {}
    if "bias_amplification" in statistics:
        out["ba"] = metrics.bias_amplification_batch(
            preds,
            labels,
            groups,
            conditionals,
            attributes=attributes,
            identities=identities,
            min_positives=min_positives,
            min_relative_gap=min_relative_gap,
            weights=weights,
        )
    if "uncertainty" in statistics:
        # Uncertain outputs per sample first (integers): the weighted sum is then a small, exact product.
        unc = weights.astype(np.float64) @ uncertain.sum(axis=2, dtype=np.float64).T
        out["uncertainty"] = unc / (weights.sum(axis=1, keepdims=True) * preds.shape[2])
    if "interdependence" in statistics:
        out["interdependence"] = np.stack([dependence.interdependence(p, weights=weights) for p in preds], axis=1)
    if "identity_dependence" in statistics:
        out["identity_dependence"] = np.stack(
            [
                dependence.identity_dependence(p, groups, attributes=attributes, identities=identities, weights=weights)
                for p in preds
            ],
            axis=1,
        )
    return out


def live_attributes(preds: np.ndarray, min_count: int) -> np.ndarray:
    """(M, A) mask: model m predicts attribute a positive, and negative, for at least ``min_count``
    samples of ``preds`` (M, n, A) (:func:`live_counts`)."""
    return live_counts(preds.sum(axis=1), preds.shape[1], min_count)


def live_counts(positives: np.ndarray, n: int, min_count: int) -> np.ndarray:
    """Whether ``positives`` predicted positives out of ``n`` samples make a live attribute: at
    least ``min_count`` positives and as many negatives, and at least one of each whatever
    ``min_count`` (a constant prediction has no R²)."""
    least = max(min_count, 1)
    return (positives >= least) & (n - positives >= least)


def supports(ba: np.ndarray, live: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """What a set of M models averages over, per statistic, from their whole-split BA (M, G, A),
    ``live`` (M, A) attributes and the (A,) ``targets`` mask of the non-identity attributes: the
    stable (G, A) pairs for BA (defined and live in every model), the (A,) attributes live in
    every model for the R² statistics (targets only for identity dependence)."""
    every = live.all(axis=0)
    return {
        "ba": np.isfinite(ba).all(axis=0) & every,
        "interdependence": every,
        "identity_dependence": every & targets,
    }


def _support_mean(values: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Mean over the last axis on ``support``; NaN when any value on it is NaN (a replicate whose
    resampled test split leaves a supported value undefined is left out, not averaged over
    fewer pairs) or the support is empty."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support, values, 0.0).sum(axis=-1) / support.sum(axis=-1)


def paired_effects(
    models: pd.DataFrame,
    preds: np.ndarray,
    probs: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    conditionals: tuple[np.ndarray, np.ndarray],
    *,
    attributes: Sequence[str],
    identities: Sequence[str],
    uncertainty_band: tuple[float, float] = (0.1, 0.9),
    min_positives: int = 10,
    min_relative_gap: float = 0.1,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    statistics: Sequence[str] = STATISTICS,
) -> pd.DataFrame:
    """Changes of each of ``statistics`` against dense, with paired bootstrap intervals (see module doc).

    ``min_positives`` is BA's rule (test positives per identity group) and the least number of
    predicted positives, and negatives, of a live attribute.

    Parameters
    ----------
    models : DataFrame
        One row per model, in the order of ``preds``: ``method``, ``sparsity``, ``seed``;
        every seed has one ``dense`` model.
    preds : bool array (M, n, A)
        Test predictions of each model at one threshold kind.
    probs : float array (M, n, A)
        Test probabilities (for the uncertainty band).
    labels, groups : bool arrays (n, A) and (n, G)
        Test labels and true identity labels.
    conditionals : (p1, p0)
        :func:`prunebias.analysis.metrics.train_conditionals` of the training split.

    Returns
    -------
    DataFrame with columns :data:`EFFECT_COLUMNS` minus ``threshold``: one row per sparse
    (method, sparsity), statistic and identity ("all" for the non-BA statistics).
    ``pairs``: what the mean covers, the curve's support (stable pairs for BA, live
    attributes for the R² statistics, every attribute for uncertainty); ``collapsed``: what is
    in the dense models' support but not in the curve's; ``seed_delta_min`` and
    ``seed_delta_max``: the smallest and largest of the seeds' own changes on that same support
    (``delta`` is their mean), to show how far the training seeds agree.
    """
    models = models.reset_index(drop=True)
    if len(models) != len(preds) or preds.shape != probs.shape:
        raise ValueError(f"models ({len(models)}), preds {preds.shape} and probs {probs.shape} do not match")
    seeds = sorted(models["seed"].unique())
    dense_of = {}
    for s in seeds:
        rows = models.index[(models["method"] == "dense") & (models["seed"] == s)]
        if len(rows) != 1:
            raise ValueError(f"seed {s} needs exactly one dense model, found {len(rows)}")
        dense_of[s] = int(rows[0])
    low, high = metrics.check_band(uncertainty_band, "uncertainty_band")
    uncertain = (probs > low) & (probs < high)
    kw = dict(attributes=attributes, identities=identities, min_relative_gap=min_relative_gap)
    n = labels.shape[0]
    whole = np.ones((1, n), int)
    unknown = sorted(set(statistics) - set(STATISTICS))
    if unknown:
        raise ValueError(f"unknown statistics {unknown}; expected some of {list(STATISTICS)}")
    # The whole split's BA always: it decides the supports.
    full = {
        k: v[0]
        for k, v in model_statistics(
            preds,
            uncertain,
            labels,
            groups,
            conditionals,
            whole,
            min_positives=min_positives,
            statistics={"bias_amplification", *statistics},
            **kw,
        ).items()
    }
    weights, seed_draws = bootstrap_draws(n, len(seeds), n_bootstrap, seed)
    # min_positives=0: the support rules were applied once, on the whole split (module doc).
    draws = model_statistics(
        preds, uncertain, labels, groups, conditionals, weights, min_positives=0, statistics=statistics, **kw
    )

    live = live_attributes(preds, min_positives)
    targets = np.array([a not in set(identities) for a in attributes])
    dense_rows = [dense_of[s] for s in seeds]
    dense_support = supports(full["ba"][dense_rows], live[dense_rows], targets)
    out = []
    for method in [m for m in dict.fromkeys(models["method"]) if m != "dense"]:
        curve = models.index[models["method"] == method].tolist()
        support = supports(full["ba"][dense_rows + curve], live[dense_rows + curve], targets)

        # Per model (and replicate): each statistic reduced to its mean over this curve's support, once.
        def reduce(key, values, support=support):
            return _support_mean(values, support[key]) if key in support else values

        full_values = {key: reduce(key, v) for key, v in full.items()}  # (M,) or (M, G)
        draw_values = {key: reduce(key, v) for key, v in draws.items()}  # (B, M) or (B, M, G)
        for sparsity in sorted(models.loc[curve, "sparsity"].unique()):
            sparse_of = {int(models.at[i, "seed"]): i for i in curve if models.at[i, "sparsity"] == sparsity}
            if set(sparse_of) != set(seeds):
                raise ValueError(f"{method} at sparsity {sparsity} lacks seeds {sorted(set(seeds) - set(sparse_of))}")
            sparse_rows = np.array([sparse_of[s] for s in seeds])
            for statistic in statistics:
                key = "ba" if statistic == "bias_amplification" else statistic
                dense_full = full_values[key][dense_rows]  # (S,) or (S, G)
                sparse_full = full_values[key][sparse_rows]
                seed_deltas = sparse_full - dense_full
                rep = draw_values[key]
                _, *ci = seed_mean_interval(seed_deltas, rep[:, sparse_rows] - rep[:, dense_rows], seed_draws, level)
                names = list(identities) if key == "ba" else ["all"]
                if key in support:
                    pairs = np.atleast_1d(support[key].sum(axis=-1))
                    collapsed = np.atleast_1d((dense_support[key] & ~support[key]).sum(axis=-1))
                else:
                    pairs, collapsed = [len(attributes)], [0]
                for i, name in enumerate(names):
                    sl = (slice(None), i) if key == "ba" else (slice(None),)
                    out.append(
                        {
                            "method": method,
                            "sparsity": float(sparsity),
                            "statistic": statistic,
                            "identity": name,
                            "pairs": int(pairs[i]),
                            "collapsed": int(collapsed[i]),
                            "seeds": len(seeds),
                            "dense": float(np.mean(dense_full[sl])),
                            "value": float(np.mean(sparse_full[sl])),
                            "delta": float(np.mean(seed_deltas[sl])),
                            "ci_low": float(np.atleast_1d(ci[0])[i]),
                            "ci_high": float(np.atleast_1d(ci[1])[i]),
                            "seed_delta_min": float(np.min(seed_deltas[sl])),
                            "seed_delta_max": float(np.max(seed_deltas[sl])),
                        }
                    )
    return pd.DataFrame(out, columns=[c for c in EFFECT_COLUMNS if c != "threshold"])


def bootstrap_draws(n_samples: int, n_seeds: int, n_bootstrap: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The resamplings of a paired bootstrap: ``weights`` (B, n_samples), the count of each test
    sample in each replicate, and ``seed_draws`` (B, n_seeds), positions into the sorted seeds
    drawn with replacement (the same draws as ``rng.choice(seeds, ...)`` would make)."""
    rng = np.random.default_rng(seed)
    weights = np.stack(
        [np.bincount(rng.integers(0, n_samples, n_samples), minlength=n_samples) for _ in range(n_bootstrap)]
    )
    seed_draws = np.stack([rng.choice(n_seeds, n_seeds) for _ in range(n_bootstrap)])
    return weights, seed_draws


def seed_mean_interval(
    full: np.ndarray, draws: np.ndarray, seed_draws: np.ndarray, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds of per-seed values, with its bootstrap interval.

    ``full`` (S, ...) holds each seed's value on the whole test split, ``draws`` (B, S, ...) the
    same under each replicate's test-sample weights; replicate b averages the seeds
    ``seed_draws[b]``. Returns (estimate, low, high), each of shape ``full.shape[1:]``;
    replicates where the value is undefined (NaN) are left out of the quantiles.
    """
    b = np.arange(len(seed_draws))[:, None]
    replicates = draws[b, seed_draws].mean(axis=1)
    tail = (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN replicates give NaN bounds, as meant
        low, high = np.nanquantile(replicates, [tail, 1 - tail], axis=0)
    return np.mean(full, axis=0), low, high


#: A training loss that fell by more than this share over the last two epochs is "still falling".
STILL_FALLING = 0.01


TREND_COLUMNS = [
    *MODEL,
    "seed",
    "epochs",
    "selected_epoch",
    "final_train_loss",
    "loss_drop_last_epochs",
    "still_falling",
    "val_loss_drop_last_epochs",
]


def training_trend(logs: Sequence[tuple[pd.DataFrame, dict]]) -> pd.DataFrame:
    """Per model, from its per-epoch training log and the log's metadata: epochs run, the selected
    epoch, the final training loss and its relative drop over the last two epochs, whether that
    drop exceeds :data:`STILL_FALLING` (the run ended before converging), and the same drop of
    the validation loss (NaN without one). Under a learning rate annealed to 0 the training loss
    keeps falling as the steps shrink; the validation loss says whether that still generalises."""
    rows = []
    for history, meta in logs:
        history = history.sort_values("epoch")
        loss = history["train_loss"].to_numpy()
        drop = _drop_last_epochs(loss)
        val = history["val_loss"].to_numpy(dtype=float) if "val_loss" in history else np.array([])
        rows.append(
            {
                **model_columns(meta),
                "epochs": len(loss),
                "selected_epoch": int(meta["selected_epoch"]),
                "final_train_loss": float(loss[-1]),
                "loss_drop_last_epochs": drop,
                "still_falling": bool(drop > STILL_FALLING),
                "val_loss_drop_last_epochs": _drop_last_epochs(val),
            }
        )
    return pd.DataFrame(rows, columns=TREND_COLUMNS)


def _drop_last_epochs(loss: np.ndarray) -> float:
    """Relative drop of ``loss`` over its last two epochs (NaN for fewer than three)."""
    return float((loss[-3] - loss[-1]) / loss[-3]) if len(loss) >= 3 else float("nan")


def mean_bce(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy over samples and attributes of logits against bool labels."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    return float(-np.where(y, log_expit(z), log_expit(-z)).mean())


def prior_logits(train_labels: np.ndarray) -> np.ndarray:
    """(A,) logits of each attribute's training prevalence, clipped away from 0 and 1."""
    prevalence = np.clip(np.asarray(train_labels, dtype=bool).mean(axis=0), 1e-6, 1 - 1e-6)
    return np.log(prevalence / (1 - prevalence))


def prior_bce(train_labels: np.ndarray, labels: np.ndarray) -> float:
    """BCE of predicting each attribute's training prevalence (:func:`prior_logits`) for ``labels``."""
    return mean_bce(np.broadcast_to(prior_logits(train_labels), labels.shape), labels)


def information_kept(bce_model: float, bce_dense: float, bce_prior: float) -> float:
    """Share of the dense model's gain over the prior that a model keeps: 1 = all, 0 = prior-level."""
    gain = bce_prior - bce_dense
    return float((bce_prior - bce_model) / gain) if gain > 0 else float("nan")


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Sigmoid of logits (float64)."""
    return expit(np.asarray(logits, dtype=np.float64))
