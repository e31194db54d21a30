"""The synthetic benchmark's design as measured numbers, not parameters.

For every attribute of :mod:`prunebias.data.synthetic`, one row of

- ``prevalence`` and, per identity attribute g, ``prevalence_<g>=0`` / ``=1``: the share of
  positives among training samples in each group, from the prepared index;
- ``identity_coupled``: whether the attribute's generative model depends on an identity
  (directly or through another attribute);
- ``cue``: the renderer's blending strength of its own overlay (a parameter, for reference);
- ``cue_delta``: how much the image changes when this attribute alone flips: the mean over
  faces of ``sum |Δpixel|`` (pixels in [0, 1]), rendered twice from the same random stream;
- ``probe_auc``: test ROC-AUC of a linear probe (ridge regression) on the raw pixels, fitted on
  the training split: how linearly visible the attribute is, through its own cue or through
  correlated ones (identity included);
- ``probe_auc_within``: the same probe's ROC-AUC within each group of :data:`WITHIN`
  (``Male``; ``Young`` for ``Male`` itself), averaged over the groups: how visible the attribute
  is *apart from* that identity, i.e. through its own cue. A target whose ``probe_auc`` is high
  but ``probe_auc_within`` near 0.5 is read through identity alone.

The same numbers on the decoupled twin show the cue without the identity shortcut.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prunebias.data import synthetic

#: Ridge penalty of the linear probe (standardised pixels; 3,072 features at 32 px).
PROBE_ALPHA = 1000.0
#: The identity whose groups ``probe_auc_within`` separates, and the one used for that identity itself.
WITHIN, WITHIN_FOR_ITSELF = "Male", "Young"
#: The latent attribute whose overlay (stubble) is No_Beard's cue.
_FLIPPED = {"No_Beard": "_beard"}


def identity_coupled(attribute: str) -> bool:
    """Whether ``attribute``'s prevalence depends on an identity attribute, directly or via its parents."""
    if attribute == "No_Beard":
        return identity_coupled("_beard") or identity_coupled("Goatee")
    parents = synthetic.ATTRIBUTE_MODEL[attribute].parents
    return any(p in synthetic.IDENTITY_ATTRIBUTES or identity_coupled(p) for p in parents)


def cue_deltas(n: int = 500, size: int = 32, seed: int = 0) -> pd.Series:
    """Mean ``sum |Δpixel|`` per face (pixels in [0, 1]) when one attribute alone flips, per attribute.

    Each face is rendered twice from the same random stream, once as drawn and once with the
    attribute flipped, so only that attribute's cue differs.
    """
    true = synthetic.sample_attributes(n, np.random.default_rng(seed))
    base = synthetic.render(true, size, np.random.default_rng(seed + 1)).astype(np.float32) / 255
    out = {}
    for attribute in synthetic.ATTRIBUTES:
        key = _FLIPPED.get(attribute, attribute)
        flipped = {**true, key: ~true[key]}
        img = synthetic.render(flipped, size, np.random.default_rng(seed + 1)).astype(np.float32) / 255
        out[attribute] = float(np.abs(img - base).sum(axis=(1, 2, 3)).mean())
    return pd.Series(out, name="cue_delta")


def probe_aucs(index: pd.DataFrame, images: np.ndarray, alpha: float = PROBE_ALPHA) -> pd.DataFrame:
    """Test ROC-AUC of a linear probe on the raw pixels, per attribute: ``probe_auc`` overall and
    ``probe_auc_within`` the groups of :data:`WITHIN` (NaN where a split or group has one class).

    The probe is one ridge regression of all the 0/1 labels on the standardised pixels of the
    training split (closed form, all attributes at once).
    """
    from sklearn.linear_model import Ridge
    from sklearn.metrics import roc_auc_score

    split = index["split"].to_numpy()
    x = images.reshape(len(images), -1).astype(np.float32) / 255
    train, test = split == "train", split == "test"
    mean, std = x[train].mean(0), x[train].std(0) + 1e-3
    x = (x - mean) / std
    y = index[list(synthetic.ATTRIBUTES)].to_numpy(dtype=np.float64)
    scores = Ridge(alpha=alpha).fit(x[train], y[train]).predict(x[test])
    y = y[test]

    def auc(j: int, rows: np.ndarray) -> float:
        labels = y[rows, j]
        return float(roc_auc_score(labels, scores[rows, j])) if len(np.unique(labels)) == 2 else float("nan")

    everyone = np.ones(len(y), dtype=bool)
    out = {}
    for j, a in enumerate(synthetic.ATTRIBUTES):
        group = index.loc[test, WITHIN_FOR_ITSELF if a == WITHIN else WITHIN].to_numpy(dtype=bool)
        within = [auc(j, group == value) for value in (False, True)]
        out[a] = {"probe_auc": auc(j, everyone), "probe_auc_within": float(np.mean(within))}
    return pd.DataFrame.from_dict(out, orient="index")


def group_prevalence(index: pd.DataFrame) -> pd.DataFrame:
    """Training prevalence of every attribute overall and in each identity group."""
    train = index[index["split"] == "train"]
    cols = {"prevalence": train[list(synthetic.ATTRIBUTES)].mean()}
    for g in synthetic.IDENTITY_ATTRIBUTES:
        for value in (0, 1):
            cols[f"prevalence_{g}={value}"] = train.loc[train[g] == bool(value), list(synthetic.ATTRIBUTES)].mean()
    return pd.DataFrame(cols)


def design_table(
    index: pd.DataFrame, images: np.ndarray, size: int, seed: int, decoupled: bool = False
) -> pd.DataFrame:
    """One row per attribute: identity role, coupling, prevalence per group, cue parameter and measured strength.

    ``decoupled``: the table of the negative-control twin (nothing is identity-coupled).
    """
    table = group_prevalence(index)
    is_identity = [a in synthetic.IDENTITY_ATTRIBUTES for a in table.index]
    table.insert(0, "identity", is_identity)
    coupled = [identity_coupled(a) and not decoupled for a in table.index]
    table.insert(1, "identity_coupled", coupled)
    cue = {a: m.cue for a, m in synthetic.ATTRIBUTE_MODEL.items()} | {
        "No_Beard": synthetic.ATTRIBUTE_MODEL["_beard"].cue
    }
    table["cue"] = pd.Series(cue)
    table["cue_delta"] = cue_deltas(size=size, seed=seed)
    table[["probe_auc", "probe_auc_within"]] = probe_aucs(index, images)
    return table.rename_axis("attribute").reset_index()
