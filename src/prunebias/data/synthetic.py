"""Synthetic faces: a deterministic, CelebA-like data set that needs no download.

Generative model
----------------
Each sample is drawn in two steps: its *true* attributes, then an RGB image rendered from them.

1. **Attributes.** They are drawn in a fixed order (:data:`ATTRIBUTE_MODEL`), each a Bernoulli
   variable with ``P(a = 1) = sigmoid(base + sum_k w_k * parent_k)`` over attributes drawn
   before it. The four identity attributes (``Male``, ``Young``, ``Chubby``, ``Pale_Skin``) come
   first, so every target's prevalence depends on identity the way it does in CelebA: blond
   hair, make-up and lipstick are mostly female, beards and baldness male, gray hair old,
   double chins chubby. ``Pale_Skin`` and ``Chubby`` are rare, so their groups are small.
   ``No_Beard`` is the negation of a latent beard or a goatee, ``Attractive`` has *no visual
   cue at all*: it is visible only through the attributes it depends on (young, female,
   not chubby, make-up).
2. **Image.** A face is drawn on a random background. Identity cues are coarse and survive
   downsampling and a small model, as identity does in CelebA's portraits: men have short
   hair (long hair behind the face for 92 % of women, 5 % of men, :data:`LONG_HAIR`), mostly
   dark clothing (:data:`CLOTHING_DARK`) and a squarer, wider jaw; old faces are desaturated
   and darker, with forehead wrinkles; chubby faces are wider; pale skin is very light.
   Targets are overlays blended with their own *cue strength* (the ``cue`` column): hair
   colour, baldness and bangs, hat, eyes and glasses, nose, mouth (open and wide when smiling,
   red with lipstick), eye shadow (make-up), moustache, goatee, stubble, rosy cheeks, a
   double-chin line, face length (oval). Strong cues (glasses, hat, smile) are easy, faint
   ones (make-up, lipstick, big nose, rosy cheeks) small and low-contrast, but never
   sub-pixel: each changes at least a few pixels at 32 px (the design table's within-group
   probe AUC shows how visible each is apart from identity). ``Smiling``,
   ``Wearing_Hat`` and ``Oval_Face`` are independent of identity: built-in negative controls.
   Position, size, lighting, colours and pixel noise vary per sample; every random draw of
   the renderer has the same size whatever the attributes, so a face can be re-rendered with
   one attribute flipped and nothing else changed (:mod:`prunebias.data.synthetic_design`
   measures each cue that way).
3. **Labels.** The stored labels are the true attributes with each label flipped with its
   own probability (``noise`` column, times ``label_noise_scale``), like CelebA's noisy
   annotations. Images are always drawn from the true attributes.

The *decoupled twin* (``decoupled=True``) takes its identity labels from an independent draw,
each shuffled on its own (:func:`sample_attributes`): same renderer, cues, prevalences and
couplings among targets, no coupling to the identities shown (nor among the identities). It
is the negative control.

Everything is drawn from one ``numpy.random.Generator`` seeded by ``seed``: the same
arguments give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from prunebias.vocabulary import SPLITS

IDENTITY_ATTRIBUTES = ("Male", "Young", "Chubby", "Pale_Skin")


@dataclass(frozen=True)
class AttributeModel:
    """How one attribute is drawn: logistic prevalence on earlier attributes, cue strength, label noise."""

    base: float
    parents: dict[str, float] = field(default_factory=dict)
    cue: float = 1.0
    noise: float = 0.02


# Order matters: an attribute may only depend on attributes listed before it.
# "_beard" is latent (not a label): it feeds No_Beard and the stubble overlay.
# Identity attributes have coarse cues that survive downsampling and a small model (hair
# length and jaw for Male, a desaturated, darker face for old age, face width for Chubby, skin
# for Pale_Skin); targets' own cues range from strong (glasses, hat, smile) to faint (make-up,
# big nose, rosy cheeks, oval face). Smiling, Wearing_Hat and Oval_Face are independent of
# every identity: built-in negative controls. Attractive holds about half of the faces, as
# in CelebA.
ATTRIBUTE_MODEL: dict[str, AttributeModel] = {
    "Male": AttributeModel(-0.32, noise=0.005),
    "Young": AttributeModel(1.6, {"Male": -0.8}, noise=0.03),
    "Chubby": AttributeModel(-3.6, {"Male": 1.6, "Young": -1.0}, cue=1.0, noise=0.02),
    "Pale_Skin": AttributeModel(-3.4, {"Male": -0.8}, cue=1.0, noise=0.01),
    "Smiling": AttributeModel(-0.1, cue=1.0, noise=0.03),
    "Blond_Hair": AttributeModel(-1.0, {"Male": -3.2, "Young": 0.5}, cue=0.55, noise=0.03),
    "Gray_Hair": AttributeModel(-0.8, {"Young": -3.6, "Male": 0.3}, cue=0.4, noise=0.02),
    "Bald": AttributeModel(-4.5, {"Male": 2.8, "Young": -1.8}, cue=0.5, noise=0.01),
    "Bangs": AttributeModel(-1.1, {"Male": -1.3}, cue=0.45, noise=0.03),
    "Heavy_Makeup": AttributeModel(0.3, {"Male": -4.5, "Young": 0.9}, cue=0.75, noise=0.05),
    "Wearing_Lipstick": AttributeModel(-1.4, {"Male": -4.0, "Heavy_Makeup": 3.0}, cue=0.8, noise=0.04),
    "Mustache": AttributeModel(-5.0, {"Male": 3.0, "Young": -0.6}, cue=0.9, noise=0.02),
    "Goatee": AttributeModel(-5.0, {"Male": 3.2}, cue=0.9, noise=0.02),
    "_beard": AttributeModel(-5.0, {"Male": 3.6, "Young": -0.5, "Mustache": 1.0}, cue=0.5),
    "Eyeglasses": AttributeModel(-3.0, {"Young": -1.2, "Male": 0.7}, cue=1.0, noise=0.005),
    "Wearing_Hat": AttributeModel(-3.0, cue=1.0, noise=0.01),
    "Big_Nose": AttributeModel(-1.9, {"Male": 1.7, "Young": -0.6}, cue=0.8, noise=0.06),
    "Double_Chin": AttributeModel(-3.4, {"Chubby": 2.8, "Young": -1.2}, cue=1.0, noise=0.03),
    "Rosy_Cheeks": AttributeModel(-2.0, {"Male": -2.0, "Heavy_Makeup": 0.8}, cue=0.8, noise=0.03),
    "Oval_Face": AttributeModel(-1.0, cue=0.5, noise=0.08),
    "Attractive": AttributeModel(
        -1.1,
        {"Male": -1.6, "Young": 1.8, "Chubby": -1.8, "Heavy_Makeup": 0.9, "Smiling": 0.3},
        cue=0.0,
        noise=0.08,
    ),
}
#: Identity cues of the renderer (not attributes of the model above): the share of women and
#: of men with long hair and in dark clothing, and how far an old face's skin is desaturated
#: and darkened.
LONG_HAIR = {"female": 0.92, "male": 0.05}
#: Share of women and of men in dark clothing.
CLOTHING_DARK = {"female": 0.2, "male": 0.85}
OLD_DESATURATION = 0.6
OLD_DARKENING = 0.15
# No_Beard is derived (not drawn): no latent beard and no goatee.
NO_BEARD_NOISE = 0.03

# Labels come out in CelebA's own attribute order.
CELEBA_ORDER = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
    "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
    "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
ATTRIBUTES = tuple(a for a in CELEBA_ORDER if a in ATTRIBUTE_MODEL or a == "No_Beard")

_CHUNK = 1024  # images rendered at once: bounds memory at large sizes


def sample_attributes(n: int, rng: np.random.Generator, decoupled: bool = False) -> dict[str, np.ndarray]:
    """Draw the true attributes of ``n`` samples (bool arrays, latent ``_beard`` included).

    With ``decoupled`` (the negative-control twin), the identity columns are replaced by those
    of a second, independent draw, each shuffled on its own: every attribute keeps its
    prevalence and the targets keep their couplings among themselves, but no target depends
    on the identities the image shows, and the identities are independent of each other.
    """
    if decoupled:
        drawn, other = sample_attributes(n, rng), sample_attributes(n, rng)
        return drawn | {g: rng.permutation(other[g]) for g in IDENTITY_ATTRIBUTES}
    drawn: dict[str, np.ndarray] = {}
    for name, model in ATTRIBUTE_MODEL.items():
        logit = np.full(n, model.base)
        for parent, weight in model.parents.items():
            logit += weight * drawn[parent]
        drawn[name] = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    drawn["No_Beard"] = ~(drawn["_beard"] | drawn["Goatee"])
    return drawn


def noisy_labels(true: dict[str, np.ndarray], rng: np.random.Generator, label_noise_scale: float = 1.0) -> pd.DataFrame:
    """Flip each true label with its attribute's noise rate; return one bool column per attribute."""
    noise = {name: m.noise for name, m in ATTRIBUTE_MODEL.items()} | {"No_Beard": NO_BEARD_NOISE}
    labels = {}
    for name in ATTRIBUTES:
        flip = rng.random(len(true[name])) < noise[name] * label_noise_scale
        labels[name] = true[name] ^ flip
    return pd.DataFrame(labels)


def _ellipse(u, v, cx, cy, a, b, power=2.0, soft=0.08):
    """Soft mask of the superellipse |x/a|^p + |y/b|^p <= 1 (1 inside, 0 outside)."""
    d = np.abs((u - cx) / a) ** power + np.abs((v - cy) / b) ** power
    return np.clip((1.0 - d) / soft, 0.0, 1.0)


def _blend(img, mask, color, alpha):
    """Alpha-blend ``color`` into ``img`` where ``mask`` is set, with per-sample strength ``alpha``."""
    weight = (mask * alpha)[..., None]
    img += (color[:, None, None, :] - img) * weight


def _col(x):
    return np.asarray(x, dtype=np.float32)[:, None, None]


def render(true: dict[str, np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    """Render faces for the given true attributes: uint8 array (n, size, size, 3)."""
    n = len(true["Male"])
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        part = {k: v[start : start + _CHUNK] for k, v in true.items()}
        out[start : start + _CHUNK] = _render_chunk(part, size, rng)
    return out


def _render_chunk(t: dict[str, np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    n = len(t["Male"])
    cue = {name: m.cue for name, m in ATTRIBUTE_MODEL.items()}
    on = {k: v.astype(np.float32) for k, v in t.items()}
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    u, v = grid[None, None, :], grid[None, :, None]
    jitter = lambda scale: _col(rng.normal(0, scale, n))  # noqa: E731

    # Background: random colour with a vertical gradient.
    img = np.broadcast_to(rng.uniform(0.1, 0.9, (n, 1, 1, 3)), (n, size, size, 3)).astype(np.float32)
    img = img * (1 + 0.25 * v[..., None]).astype(np.float32)

    cx, cy = jitter(0.05), 0.05 + jitter(0.04)
    a = 0.46 + 0.12 * cue["Chubby"] * _col(on["Chubby"]) + jitter(0.02)
    b = 0.60 + 0.10 * cue["Oval_Face"] * _col(on["Oval_Face"]) + jitter(0.02)
    a = a - 0.06 * cue["Oval_Face"] * _col(on["Oval_Face"])
    a = a + 0.04 * _col(on["Male"])
    jaw = 2.0 + 1.6 * _col(on["Male"])  # squarer, wider jaw for men

    tones = np.array([[0.87, 0.72, 0.60], [0.76, 0.57, 0.43], [0.58, 0.41, 0.29], [0.40, 0.27, 0.19]])
    skin = tones[rng.integers(0, len(tones), n)]
    pale = on["Pale_Skin"][:, None] * cue["Pale_Skin"]
    skin = skin * (1 - pale) + np.array([0.97, 0.90, 0.86]) * pale
    skin = (skin * rng.uniform(0.85, 1.1, (n, 1))).clip(0, 1)
    # Old faces: desaturated towards their own grey, and darker.
    old = (1 - on["Young"])[:, None]
    grey = skin.mean(axis=1, keepdims=True)
    skin = skin + OLD_DESATURATION * old * (grey - skin)
    skin = skin * (1 - OLD_DARKENING * old)

    dark_hair = np.array([[0.10, 0.07, 0.05], [0.30, 0.18, 0.10], [0.45, 0.30, 0.15]])
    hair = dark_hair[rng.integers(0, len(dark_hair), n)]
    blond = on["Blond_Hair"][:, None] * cue["Blond_Hair"]
    gray = on["Gray_Hair"][:, None] * cue["Gray_Hair"] * (1 - on["Blond_Hair"][:, None])
    hair = hair * (1 - blond) + np.array([0.92, 0.80, 0.42]) * blond
    hair = hair * (1 - gray) + np.array([0.70, 0.70, 0.72]) * gray

    # Clothing on the shoulders: mostly dark for men, mostly bright for women (a coarse,
    # low-frequency identity cue, as clothing is in CelebA's portraits).
    p_dark = CLOTHING_DARK["female"] + (CLOTHING_DARK["male"] - CLOTHING_DARK["female"]) * on["Male"]
    dark = (rng.random(n) < p_dark)[:, None]
    clothes = np.where(dark, rng.uniform(0.05, 0.25, (n, 3)), rng.uniform(0.55, 0.95, (n, 3)))
    shoulders = _ellipse(u, v, cx, cy + b * 1.75, a * 2.0, b * 0.85)
    _blend(img, shoulders, clothes, np.ones((n, 1, 1), np.float32))
    # Long hair behind the face (mostly women), then the face.
    p_long = LONG_HAIR["female"] + (LONG_HAIR["male"] - LONG_HAIR["female"]) * on["Male"]
    long_hair = _col((rng.random(n) < p_long).astype(np.float32))
    _blend(img, _ellipse(u, v, cx, cy + 0.15, a * 1.35, b * 1.15), hair, long_hair)
    _blend(img, _ellipse(u, v, cx, cy, a, b, jaw), skin, np.ones((n, 1, 1), np.float32))

    # Hair on top of the head, lower with bangs, absent when bald.
    hairline = cy - b * (0.45 - 0.30 * cue["Bangs"] * _col(on["Bangs"]))
    head_top = _ellipse(u, v, cx, cy - 0.04, a * 1.08, b * 1.08) * (v < hairline)
    _blend(img, head_top, hair, 1 - cue["Bald"] * _col(on["Bald"]))

    # Old faces: forehead wrinkles (besides the desaturated skin).
    wrinkles = (np.abs(np.sin((v - cy) * 40)) > 0.6) * (np.abs(u - cx) < a * 0.6)
    wrinkles = wrinkles * (v > cy - b * 0.5) * (v < cy - b * 0.2)
    _blend(img, wrinkles, skin * 0.6, 0.6 * (1 - _col(on["Young"])))

    eye_y = cy - 0.12 * b
    eyes = sum(_ellipse(u, v, cx + s * 0.38 * a, eye_y, 0.08, 0.05) for s in (-1, 1))
    shadow = sum(_ellipse(u, v, cx + s * 0.38 * a, eye_y - 0.04, 0.16, 0.10) for s in (-1, 1))
    _blend(img, shadow, np.tile([0.45, 0.20, 0.50], (n, 1)), cue["Heavy_Makeup"] * _col(on["Heavy_Makeup"]))
    _blend(img, eyes, np.tile([0.05, 0.05, 0.08], (n, 1)), np.ones((n, 1, 1), np.float32))
    rims = sum(
        _ellipse(u, v, cx + s * 0.38 * a, eye_y, 0.17, 0.13)
        * (1 - _ellipse(u, v, cx + s * 0.38 * a, eye_y, 0.12, 0.09))
        for s in (-1, 1)
    )
    bridge = (np.abs(u - cx) < 0.1) * (np.abs(v - eye_y) < 0.025)
    _blend(
        img,
        np.clip(rims + bridge, 0, 1),
        np.tile([0.05, 0.05, 0.05], (n, 1)),
        cue["Eyeglasses"] * _col(on["Eyeglasses"]),
    )

    cheeks = sum(_ellipse(u, v, cx + s * 0.55 * a, cy + 0.15 * b, 0.12, 0.09) for s in (-1, 1))
    _blend(img, cheeks, np.tile([0.90, 0.35, 0.35], (n, 1)), cue["Rosy_Cheeks"] * _col(on["Rosy_Cheeks"]))

    nose_w = 0.07 + 0.20 * cue["Big_Nose"] * _col(on["Big_Nose"])
    _blend(img, _ellipse(u, v, cx, cy + 0.12 * b, nose_w, 0.14), skin * 0.55, np.full((n, 1, 1), 0.8, np.float32))

    stubble = _ellipse(u, v, cx, cy + 0.55 * b, a * 0.9, b * 0.5, jaw) * (v > cy + 0.25 * b)
    _blend(img, stubble, skin * 0.45, cue["_beard"] * _col(on["_beard"]))
    mouth_y = cy + 0.48 * b
    _blend(
        img,
        _ellipse(u, v, cx, mouth_y - 0.10, 0.24, 0.06),
        np.tile([0.12, 0.08, 0.06], (n, 1)),
        cue["Mustache"] * _col(on["Mustache"]),
    )
    _blend(
        img,
        _ellipse(u, v, cx, mouth_y + 0.17, 0.12, 0.09),
        np.tile([0.12, 0.08, 0.06], (n, 1)),
        cue["Goatee"] * _col(on["Goatee"]),
    )

    smile = _col(on["Smiling"]) * cue["Smiling"]
    mouth = _ellipse(u, v, cx, mouth_y, 0.16 + 0.08 * smile, 0.045 + 0.05 * smile)
    # Lips: wider and taller than the mouth opening, so lipstick covers a few pixels at 32 px.
    lips = _ellipse(u, v, cx, mouth_y, 0.24 + 0.08 * smile, 0.10 + 0.05 * smile)
    _blend(img, lips, np.tile([0.80, 0.08, 0.15], (n, 1)), cue["Wearing_Lipstick"] * _col(on["Wearing_Lipstick"]))
    _blend(img, mouth, skin * 0.55, np.ones((n, 1, 1), np.float32))
    teeth = _ellipse(u, v, cx, mouth_y, 0.11 + 0.06 * smile, 0.02 + 0.02 * smile)
    _blend(img, teeth, np.tile([0.95, 0.95, 0.92], (n, 1)), smile)

    chin_line = _ellipse(u, v, cx, cy + b * 0.98, a * 0.6, 0.13) * (
        1 - _ellipse(u, v, cx, cy + b * 0.98, a * 0.45, 0.06)
    )
    _blend(img, chin_line, skin * 0.6, cue["Double_Chin"] * _col(on["Double_Chin"]))

    hat = (v < cy - b * 0.55) * (np.abs(u - cx) < a * 1.25) + (v < cy - b * 0.35) * (np.abs(u - cx) < a * 1.5) * (
        v > cy - b * 0.55
    )
    hat_colour = rng.uniform(0.0, 1.0, (n, 3)) * np.array([1.0, 0.6, 1.0])
    _blend(img, np.clip(hat, 0, 1), hat_colour, cue["Wearing_Hat"] * _col(on["Wearing_Hat"]))

    img *= rng.uniform(0.75, 1.15, (n, 1, 1, 1)).astype(np.float32)  # lighting
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def generate(
    sizes: dict[str, int],
    image_size: int = 32,
    seed: int = 0,
    label_noise_scale: float = 1.0,
    decoupled: bool = False,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Generate the synthetic data set.

    Parameters
    ----------
    sizes : dict
        Number of samples per split, keys ``train``, ``valid``, ``test``.
    image_size : int
        Side of the square RGB images in pixels (>= 16).
    seed : int
        Seed of the one random generator everything is drawn from.
    label_noise_scale : float
        Multiplier of every attribute's label-flip probability (0 = clean labels).
    decoupled : bool
        Draw the negative-control twin: targets independent of identity
        (:func:`sample_attributes`), same renderer and cues.

    Returns
    -------
    index : DataFrame
        ``id``, ``split``, ``source`` and one bool column per attribute (CelebA order).
    images : ndarray of uint8, shape (n, image_size, image_size, 3)
    """
    if set(sizes) != set(SPLITS) or any(int(v) < 1 for v in sizes.values()):
        raise ValueError(f"sizes must give a positive count for each of {SPLITS}, got {sizes}")
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
    rng = np.random.default_rng(seed)
    n = sum(int(sizes[s]) for s in SPLITS)
    true = sample_attributes(n, rng, decoupled)
    labels = noisy_labels(true, rng, label_noise_scale)
    images = render(true, image_size, rng)
    split = np.repeat(np.array(SPLITS), [int(sizes[s]) for s in SPLITS])
    index = pd.DataFrame({"id": [f"synth_{i:07d}" for i in range(n)], "split": split, "source": "synthetic"})
    return pd.concat([index, labels], axis=1), images
