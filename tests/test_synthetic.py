import numpy as np
import pandas as pd
import pytest

from prunebias.data import synthetic, synthetic_design
from prunebias.data.synthetic import ATTRIBUTES, IDENTITY_ATTRIBUTES


@pytest.fixture(scope="module")
def big():
    return synthetic.generate({"train": 8000, "valid": 100, "test": 100}, image_size=16, seed=3)


def test_deterministic_for_a_seed():
    a_index, a_images = synthetic.generate({"train": 50, "valid": 10, "test": 10}, 24, seed=7)
    b_index, b_images = synthetic.generate({"train": 50, "valid": 10, "test": 10}, 24, seed=7)
    c_index, c_images = synthetic.generate({"train": 50, "valid": 10, "test": 10}, 24, seed=8)
    assert a_index.equals(b_index)
    assert np.array_equal(a_images, b_images)
    assert not np.array_equal(a_images, c_images)


def test_layout_and_sizes():
    index, images = synthetic.generate({"train": 30, "valid": 5, "test": 7}, 20, seed=0)
    assert images.shape == (42, 20, 20, 3) and images.dtype == np.uint8
    assert list(index.columns[:3]) == ["id", "split", "source"]
    assert index["split"].value_counts().to_dict() == {"train": 30, "valid": 5, "test": 7}
    assert index["id"].is_unique
    assert len(ATTRIBUTES) >= 16
    assert set(IDENTITY_ATTRIBUTES) <= set(index.columns)
    assert all(index[a].dtype == bool for a in ATTRIBUTES)
    # CelebA's attribute order.
    order = [synthetic.CELEBA_ORDER.index(a) for a in ATTRIBUTES]
    assert order == sorted(order)


def test_prevalence_depends_on_identity(big):
    index, _ = big
    by_sex = index.groupby("Male")[list(ATTRIBUTES)].mean()
    # Female-typed, male-typed and age-typed attributes, as in CelebA.
    for attr in ("Blond_Hair", "Heavy_Makeup", "Wearing_Lipstick"):
        assert by_sex.loc[False, attr] > 4 * by_sex.loc[True, attr]
    for attr in ("Goatee", "Mustache", "Bald"):
        assert by_sex.loc[True, attr] > 4 * by_sex.loc[False, attr]
    by_age = index.groupby("Young")["Gray_Hair"].mean()
    assert by_age[False] > 5 * by_age[True]
    # Rare identity groups.
    assert index["Pale_Skin"].mean() < 0.1 and index["Chubby"].mean() < 0.12


def test_label_noise_scale_zero_gives_true_labels():
    rng = np.random.default_rng(0)
    true = synthetic.sample_attributes(2000, rng)
    clean = synthetic.noisy_labels(true, np.random.default_rng(1), label_noise_scale=0.0)
    noisy = synthetic.noisy_labels(true, np.random.default_rng(1), label_noise_scale=1.0)
    assert all((clean[a] == true[a]).all() for a in ATTRIBUTES)
    flipped = np.mean([(noisy[a] != true[a]).mean() for a in ATTRIBUTES])
    assert 0.005 < flipped < 0.1


def test_attractive_has_no_visual_cue():
    assert synthetic.ATTRIBUTE_MODEL["Attractive"].cue == 0.0
    assert synthetic.ATTRIBUTE_MODEL["Attractive"].parents  # visible only through correlated attributes


def test_images_carry_cues():
    # Eyeglasses (a strong cue) darken the eye region; the mean image differs by attribute.
    rng = np.random.default_rng(0)
    true = synthetic.sample_attributes(600, rng)
    true["Eyeglasses"][:] = np.arange(600) % 2 == 0
    images = synthetic.render(true, 32, rng).astype(float)
    eye_band = images[:, 12:18, 6:26].mean(axis=(1, 2, 3))
    assert eye_band[0::2].mean() < eye_band[1::2].mean() - 5


@pytest.mark.parametrize("bad", [{"train": 0, "valid": 1, "test": 1}, {"train": 5, "valid": 1}])
def test_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="sizes"):
        synthetic.generate(bad, 16)


def test_decoupled_twin_keeps_prevalence_and_drops_identity_coupling():
    rng = np.random.default_rng(5)
    coupled = synthetic.sample_attributes(40000, np.random.default_rng(5))
    twin = synthetic.sample_attributes(40000, rng, decoupled=True)
    for a in ("Male", "Young", "Chubby", "Pale_Skin"):  # identities keep their prevalence ...
        assert abs(coupled[a].mean() - twin[a].mean()) < 0.01
        for g in synthetic.IDENTITY_ATTRIBUTES:  # ... but do not depend on each other
            if g != a:
                assert abs(twin[a][twin[g]].mean() - twin[a][~twin[g]].mean()) < 0.03, (a, g)
    for a in ("Blond_Hair", "Heavy_Makeup", "Goatee", "Gray_Hair", "Big_Nose", "Double_Chin"):
        assert abs(coupled[a].mean() - twin[a].mean()) < 0.012
        for g in synthetic.IDENTITY_ATTRIBUTES:
            gap = twin[a][twin[g]].mean() - twin[a][~twin[g]].mean()
            assert abs(gap) < 0.03, (a, g, gap)
    # Couplings among targets survive (lipstick follows make-up in both).
    for t in (coupled, twin):
        assert t["Wearing_Lipstick"][t["Heavy_Makeup"]].mean() > 3 * t["Wearing_Lipstick"][~t["Heavy_Makeup"]].mean()


def test_negative_control_targets_are_independent_of_identity(big):
    index, _ = big
    for a in ("Smiling", "Wearing_Hat", "Oval_Face"):
        assert not synthetic_design.identity_coupled(a)
        for g in synthetic.IDENTITY_ATTRIBUTES:
            p = index.groupby(g)[a].mean()
            assert abs(p[True] - p[False]) < 0.05, (a, g)


def test_identity_cues_are_coarse_and_stronger_than_faint_target_cues():
    delta = synthetic_design.cue_deltas(n=300, size=32, seed=1)
    for identity in ("Male", "Young", "Chubby", "Pale_Skin"):
        for faint in ("Heavy_Makeup", "Wearing_Lipstick", "Big_Nose", "Rosy_Cheeks", "Mustache"):
            assert delta[identity] > 3 * delta[faint], (identity, faint)
    assert delta["Attractive"] == 0  # no cue of its own
    # Faint, not invisible: every own cue changes at least a few pixels at 32 px (lipstick
    # used to colour a mouth under one pixel high, Σ|Δ| ≈ 3).
    assert all(delta[a] > 5 for a in ATTRIBUTES if a != "Attractive"), delta.sort_values().head(3)
    # Coarse: the identity cues survive downsampling to 16 px about as well (per pixel) as at 32 px.
    small = synthetic_design.cue_deltas(n=300, size=16, seed=1)
    for identity in ("Male", "Young"):
        assert small[identity] * 4 > 0.6 * delta[identity]


def test_design_table_has_every_attribute_and_measured_columns():
    index, images = synthetic.generate({"train": 600, "valid": 50, "test": 300}, 16, seed=2)
    table = synthetic_design.design_table(index, images, 16, 2)
    assert list(table["attribute"]) == list(ATTRIBUTES)
    assert {
        "prevalence",
        "prevalence_Male=0",
        "prevalence_Male=1",
        "cue_delta",
        "probe_auc",
        "probe_auc_within",
    } <= set(table.columns)
    male = table.set_index("attribute").loc["Male"]
    assert male["probe_auc"] > 0.9 and male["prevalence_Male=1"] == 1.0
    twin = synthetic_design.design_table(index, images, 16, 2, decoupled=True)
    assert not twin["identity_coupled"].any()


def test_within_group_probe_auc_separates_an_own_cue_from_the_identity_shortcut():
    # Images hold one bright pixel for Male and one for Smiling, nothing else. Heavy_Makeup
    # follows Male (20 % flipped) but has no pixel of its own: the overall probe reads it
    # through Male, within the Male groups it is at chance. Smiling's own pixel reads the
    # same overall and within.
    rng = np.random.default_rng(0)
    n = 4000
    index = pd.DataFrame({a: rng.random(n) < 0.4 for a in ATTRIBUTES})
    index["Heavy_Makeup"] = ~index["Male"] ^ (rng.random(n) < 0.2)
    index.insert(0, "split", np.where(np.arange(n) < 3000, "train", "test"))
    images = rng.integers(0, 20, (n, 4, 4, 3)).astype(np.uint8)
    images[:, 0, 0, 0] += 200 * index["Male"].to_numpy(dtype=np.uint8)
    images[:, 3, 3, 1] += 200 * index["Smiling"].to_numpy(dtype=np.uint8)
    aucs = synthetic_design.probe_aucs(index, images)
    assert aucs.loc["Heavy_Makeup", "probe_auc"] > 0.75
    assert abs(aucs.loc["Heavy_Makeup", "probe_auc_within"] - 0.5) < 0.06
    assert aucs.loc["Smiling", "probe_auc"] > 0.99 and aucs.loc["Smiling", "probe_auc_within"] > 0.99
    # Male itself is measured within the Young groups, where its pixel still reads it.
    assert aucs.loc["Male", "probe_auc_within"] > 0.99
