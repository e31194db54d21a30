"""The gallery: cards of the most susceptible samples per attribute, what the dense and every
pruned model predict for each, and their thumbnails as data URIs within a byte budget.

Input is the criteria table ``susceptible_samples``
(:func:`prunebias.analysis.sample_criterion.susceptible_samples`) and the image arrays already in memory; the page embeds every thumbnail, so the budget is what
keeps a CelebA-sized gallery from growing the file without bound.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from prunebias.report.format import method_text, sparsity_text
from prunebias.report.grid import in_setting, method_rank
from prunebias.validation import require_columns

#: Thumbnails are drawn at about this side in pixels (small images upscaled by an integer factor).
THUMB_SIZE = 96
#: JPEG quality of downscaled (photographic) thumbnails.
JPEG_QUALITY = 85
#: Past this many bytes of thumbnails the remaining gallery attributes are listed without images.
GALLERY_BUDGET_BYTES = 8 * 2**20
#: Gallery attributes shown open; the others are folded (one click opens them).
GALLERY_OPEN = 3


def gallery(samples: pd.DataFrame, identities: Sequence[str]) -> list[dict]:
    """Cards of the most susceptible samples, per attribute (attributes with most CIEs first).

    Parameters
    ----------
    samples : DataFrame
        Criteria table ``susceptible_samples`` of one setting.
    identities : sequence of str
        Identity columns of ``samples`` to show on each card.

    Returns
    -------
    list of dict
        ``{"attribute", "n_cie", "cards"}``; a card is ``{"id", "rank", "label", "groups"
        [(identity, bool)], "dense" {"p", "pred"}, "methods" [(method label, [{"method", "sparsity",
        "p", "pred", "cie"}, ...])] (every pruned setting, by method then ascending sparsity),
        "cie_at" [labels of the settings where it is a CIE]}``.
    """
    need = ["attribute", "rank", "id", "label", "method", "sparsity", "probability", "prediction", "cie"]
    require_columns(samples, need, "susceptible_samples")
    identities = [g for g in identities if g in samples.columns]
    out = []
    for attribute, rows in samples.groupby("attribute", sort=True):
        dense = rows[rows["method"] == "dense"].sort_values("rank")
        pruned = rows[rows["method"] != "dense"]
        pruned = pruned.assign(_m=method_rank(pruned["method"]))
        pruned = pruned.sort_values(["_m", "sparsity"])
        cards = []
        for r in dense.itertuples(index=False):
            mine = pruned[pruned["id"] == r.id]
            models = [
                {
                    "method": method_text(m.method),
                    "sparsity": sparsity_text(m.sparsity),
                    "p": float(m.probability),
                    "pred": bool(m.prediction),
                    "cie": bool(m.cie),
                }
                for m in mine.itertuples(index=False)
            ]
            by_method = {}
            for m in models:
                by_method.setdefault(m["method"], []).append(m)
            cards.append(
                {
                    "id": str(r.id),
                    "rank": int(r.rank),
                    "label": bool(r.label),
                    "groups": [(g, bool(getattr(r, g))) for g in identities],
                    "dense": {"p": float(r.probability), "pred": bool(r.prediction)},
                    "methods": list(by_method.items()),
                    "cie_at": [f"{m['method']} {m['sparsity']}" for m in models if m["cie"]],
                }
            )
        out.append({"attribute": str(attribute), "n_cie": sum(bool(c["cie_at"]) for c in cards), "cards": cards})
    out.sort(key=lambda a: (-a["n_cie"], a["attribute"]))
    return out


def thumbnail(image: np.ndarray, size: int = THUMB_SIZE) -> str:
    """A data URI of one uint8 RGB image, about ``size`` pixels on its longer side.

    Small images are upscaled by an integer factor with nearest neighbour, so their pixels
    stay crisp, and stored as PNG (lossless; repeated pixels compress well). Large ones
    (photographs) are downscaled with a Lanczos filter and stored as JPEG, several times
    smaller than PNG at no visible loss at this size.
    """
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"image must be uint8 of shape (H, W, 3), got {arr.dtype} {arr.shape}")
    h, w = arr.shape[:2]
    factor = size // max(h, w)
    if factor >= 2:
        arr = arr.repeat(factor, axis=0).repeat(factor, axis=1)
    img = Image.fromarray(arr)
    buf = io.BytesIO()
    if max(h, w) > size:
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
        img.save(buf, format="JPEG", quality=JPEG_QUALITY)
        kind = "jpeg"
    else:
        img.save(buf, format="PNG", optimize=True)
        kind = "png"
    return f"data:image/{kind};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def attach_thumbnails(
    sections: list[dict], images: np.ndarray, row_of: Mapping[str, int], budget: int = GALLERY_BUDGET_BYTES
) -> None:
    """Add ``card["src"]`` (a data URI, encoded once per sample) in place, within ``budget`` bytes.

    Every card counts against the budget (a sample shown under several attributes is
    embedded each time); attributes reached past the budget keep their cards without images
    (``section["no_images"]``).
    """
    cache: dict[str, str] = {}
    used = 0
    for section in sections:
        section["no_images"] = used > budget
        for card in section["cards"]:
            row = row_of.get(card["id"])
            if section["no_images"] or row is None:
                card["src"] = None
                continue
            if card["id"] not in cache:
                cache[card["id"]] = thumbnail(np.asarray(images[row]))
            card["src"] = cache[card["id"]]
            used += len(card["src"])


def setting_galleries(
    samples: pd.DataFrame,
    settings: Sequence[tuple[str, ...]],
    identities: Sequence[str],
    images: Mapping[str, tuple[np.ndarray, Mapping[str, int]]] | None,
) -> list[dict]:
    """One gallery per setting with susceptible samples: {"setting", "sections"} (see :func:`gallery`).

    ``images``: dataset -> (image array, {id: row}); a setting whose data set has none gets
    its cards without images.
    """
    galleries = []
    for setting in settings:
        rows = in_setting(samples, setting)
        if rows.empty:
            continue
        sections = gallery(rows, identities)
        if images and setting[0] in images:
            attach_thumbnails(sections, *images[setting[0]])
        else:
            for s in sections:
                s["no_images"] = True
                for c in s["cards"]:
                    c["src"] = None
        galleries.append({"setting": " / ".join(setting), "sections": sections})
    return galleries
