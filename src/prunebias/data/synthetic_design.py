"""The synthetic benchmark's design as measured numbers, not parameters.

For every attribute of :mod:`prunebias.data.synthetic`, one row of

- ``prevalence`` and, per identity attribute g, ``prevalence_<g>=0`` / ``=1``: the share of
  positives among training samples in each group, from the prepared index;
- ``identity_coupled``: whether the attribute's generative model depends on an identity
  (directly or through another attribute);
- ``cue``: the renderer's blending strength of its own overlay (a parameter, for reference);
- ``cue_delta``: how much the image changes when this attribute alone flips: the mean over
  faces of ``sum |Δpixel|`` (pixels in [0, 1]), rendered twice from the same random stream;
- ``probe_auc``: test ROC-AUC of a logistic regression on the raw pixels (trained on the
  training split): how linearly visible the attribute is, through its own cue or through
  correlated ones (identity included).

The same numbers on the decoupled twin show the cue without the identity shortcut.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prunebias.data import synthetic

#: The latent attribute whose overlay (stubble) is No_Beard's cue.
_FLIPPED = {"No_Beard": "_beard"}


def identity_coupled(attribute: str) -> bool:
    """Whether ``attribute``'s prevalence depends on an identity attribute, directly or via its parents."""
    if attribute == "No_Beard":
        return identity_coupled("_beard") or identity_coupled("Goatee")
    parents = synthetic.ATTRIBUTE_MODEL[attribute].parents
    return any(p in synthetic.IDENTITY_ATTRIBUTES or identity_coupled(p) for p in parents)


def cue_deltas(n: int = 2000, size: int = 32, seed: int = 0) -> pd.Series:
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


def probe_aucs(index: pd.DataFrame, images: np.ndarray, max_train: int = 3000) -> pd.Series:
    """Test ROC-AUC of a logistic regression on raw pixels, per attribute (NaN if a split has one class)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    split = index["split"].to_numpy()
    x = images.reshape(len(images), -1).astype(np.float32) / 255
    mean, std = x[split == "train"].mean(0), x[split == "train"].std(0) + 1e-3
    x = (x - mean) / std
    train = np.flatnonzero(split == "train")[:max_train]
    test = np.flatnonzero(split == "test")
    out = {}
    for attribute in synthetic.ATTRIBUTES:
        y = index[attribute].to_numpy(dtype=bool)
        if len(np.unique(y[train])) < 2 or len(np.unique(y[test])) < 2:
            out[attribute] = float("nan")
            continue
        model = LogisticRegression(C=0.01, max_iter=200).fit(x[train], y[train])
        out[attribute] = float(roc_auc_score(y[test], model.decision_function(x[test])))
    return pd.Series(out, name="probe_auc")


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

    ``decoupled``: the table of the negative-control twin (no target is identity-coupled).
    """
    table = group_prevalence(index)
    is_identity = [a in synthetic.IDENTITY_ATTRIBUTES for a in table.index]
    table.insert(0, "identity", is_identity)
    coupled = [identity_coupled(a) and (ident or not decoupled) for a, ident in zip(table.index, is_identity)]
    table.insert(1, "identity_coupled", coupled)
    cue = {a: m.cue for a, m in synthetic.ATTRIBUTE_MODEL.items()} | {"No_Beard": synthetic.ATTRIBUTE_MODEL["_beard"].cue}
    table["cue"] = pd.Series(cue)
    table["cue_delta"] = cue_deltas(size=size, seed=seed)
    table["probe_auc"] = probe_aucs(index, images)
    return table.rename_axis("attribute").reset_index()
