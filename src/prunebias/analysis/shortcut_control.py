"""A known positive and a known null for the effects: dense models made to lean on identity.

The effects (:mod:`prunebias.analysis.effects`) say what pruning changed. To read a change
there as "the sparse model leans on identity" (or its absence as "it does not"), the same
measurement must be seen to find such leaning where it is known to be, at the run's own test
split, seeds, support rules and thresholds, and not to find it where a model only loses what
it learned. Here each dense model's logits are mixed with a reference predictor,

    z_w = (1 − w) · z_dense + w · z_reference,

for every weight w of ``analysis.shortcut_weights``, with two references fitted on the
training labels only:

- ``identity``: each attribute's logit given the sample's identity labels (a logistic
  regression on the identity attributes, the attribute itself left out): a model that has
  traded a share w of its evidence for identity, the study's mechanism planted;
- ``prior``: each attribute's training prevalence, the same for every sample: a model that
  loses as much of its evidence and gains nothing, degradation alone.

Each mixture is compared with its own dense model exactly as a sparse model is
(:func:`prunebias.analysis.effects.paired_effects`, both thresholds, one support per weight),
and the share of the dense model's information it keeps is measured as for a sparse model
(:func:`prunebias.analysis.effects.information_kept`), so a sparse model can be set beside
the mixtures that kept as much.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from prunebias.analysis.effects import prior_logits
from prunebias.vocabulary import SHORTCUT_REFERENCES

REFERENCES = tuple(SHORTCUT_REFERENCES)
#: What the control measures: the statistics that say whether a model leans on identity.
STATISTICS = ("bias_amplification", "identity_dependence")


def prior_reference(train_labels: np.ndarray, n: int) -> np.ndarray:
    """(n, A) logits of each attribute's training prevalence (:func:`prior_logits`), the same for every sample."""
    return np.tile(prior_logits(train_labels), (n, 1))


def identity_logits(
    train_labels: np.ndarray,
    train_groups: np.ndarray,
    groups: np.ndarray,
    *,
    attributes: Sequence[str],
    identities: Sequence[str],
) -> np.ndarray:
    """(n, A) logits of each attribute given the identity labels ``groups`` (n, G).

    One L2-regularised logistic regression per attribute on the training split's identity
    labels ``train_groups`` (n_train, G), fitted to its labels ``train_labels`` (n_train, A);
    an identity attribute is fitted on the other identities only (it would otherwise predict
    itself). An attribute with a single training value gets its :func:`prior_logits`.
    """
    train_labels = np.asarray(train_labels, dtype=bool)
    train_groups, groups = np.asarray(train_groups, dtype=float), np.asarray(groups, dtype=float)
    out = prior_reference(train_labels, len(groups))
    for j, name in enumerate(attributes):
        features = [k for k, g in enumerate(identities) if g != name]
        y = train_labels[:, j]
        if y.all() or not y.any() or not features:
            continue
        fit = LogisticRegression().fit(train_groups[:, features], y)
        out[:, j] = fit.decision_function(groups[:, features])
    return out


def reference_logits(
    reference: str,
    train_labels: np.ndarray,
    train_groups: np.ndarray,
    groups: np.ndarray,
    *,
    attributes: Sequence[str],
    identities: Sequence[str],
) -> np.ndarray:
    """(n, A) logits of the ``reference`` predictor (one of :data:`REFERENCES`) for samples with identity labels ``groups``."""
    if reference == "identity":
        return identity_logits(train_labels, train_groups, groups, attributes=attributes, identities=identities)
    if reference == "prior":
        return prior_reference(train_labels, len(groups))
    raise ValueError(f"unknown reference predictor {reference!r}; expected one of {list(REFERENCES)}")


def mix(dense: np.ndarray, reference: np.ndarray, weight: float) -> np.ndarray:
    """Logits ``(1 − weight) · dense + weight · reference`` (``reference`` broadcast over models)."""
    if not 0 <= weight <= 1:
        raise ValueError(f"shortcut weight {weight} is outside [0, 1]")
    return (1 - weight) * np.asarray(dense, dtype=np.float64) + weight * reference
