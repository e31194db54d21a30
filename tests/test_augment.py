import numpy as np
import pytest
import torch

from prunebias.training import augment


def batch(b=4, h=6, w=6):
    return torch.arange(b * h * w * 3, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(b, h, w, 3)


def test_to_float_normalises_to_minus_one_one():
    x = torch.tensor([[[[0, 255, 127]]]], dtype=torch.uint8)
    out = augment.to_float(x)
    assert out.shape == (1, 3, 1, 1)
    assert torch.allclose(out.flatten(), torch.tensor([-1.0, 1.0, 127 / 255 * 2 - 1]))


def test_model_inputs_are_channels_last_on_every_path():
    # The CPU runs its convolutions in the batches' layout: contiguous ones are 1.2-1.3x slower
    # (benchmarks/cpu_layout.py), and the trained numbers are the channels-last ones.
    x = batch(h=8, w=8)
    gen = torch.Generator().manual_seed(0)
    inputs = {
        "training crop": augment.random_crop_flip(x, 6, 1, True, gen),
        "centre crop": augment.center_crop(x, 6),
        "full-size centre crop": augment.center_crop(x, 8),
        "with the square": augment.yellow_square(augment.center_crop(x, 6), torch.tensor([True, False, True, False])),
    }
    for name, crops in inputs.items():
        assert augment.to_float(crops).is_contiguous(memory_format=torch.channels_last), name


def test_center_crop():
    x = batch(h=6, w=6)
    assert torch.equal(augment.center_crop(x, 4), x[:, 1:5, 1:5])
    with pytest.raises(ValueError, match="larger"):
        augment.center_crop(x, 8)


def test_random_crop_without_padding_or_flip_is_a_window_of_the_input():
    x = batch()
    out = augment.random_crop_flip(x, 4, 0, False, torch.Generator().manual_seed(0))
    assert out.shape == (4, 4, 4, 3)
    for i in range(4):
        windows = [x[i, t : t + 4, left : left + 4] for t in range(3) for left in range(3)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_flip_and_full_size_crop():
    x = batch()
    out = augment.random_crop_flip(x, 6, 0, True, torch.Generator().manual_seed(1))
    for i in range(4):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(1))
    seen = {torch.equal(out[i], x[i]) for i in range(4)}
    out2 = augment.random_crop_flip(batch(64), 6, 0, True, torch.Generator().manual_seed(1))
    flipped = sum(not torch.equal(out2[i], batch(64)[i]) for i in range(64))
    assert 16 < flipped < 48 and seen


def test_padding_brings_zeros_and_same_generator_same_result():
    x = batch(32)
    a = augment.random_crop_flip(x, 6, 2, True, torch.Generator().manual_seed(5))
    b = augment.random_crop_flip(x, 6, 2, True, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert (a == 0).any()


@pytest.mark.parametrize(
    "height, width, side",
    # round(sqrt(0.02 * H * W)), worked by hand: 16² -> sqrt(5.12) = 2.26; 17² -> 2.40;
    # 32² -> 4.53; 33×47 -> sqrt(31.02) = 5.57; 64² -> 9.05; 218×178 -> 27.86; 224² -> 31.68
    [(16, 16, 2), (17, 17, 2), (32, 32, 5), (33, 47, 6), (64, 64, 9), (218, 178, 28), (224, 224, 32)],
)
def test_yellow_square_placement_and_colour(height, width, side):
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 200, (3, height, width, 3), dtype=np.uint8))  # never pure yellow
    before = images.clone()
    out = augment.yellow_square(images, torch.tensor([True, True, False])).numpy()
    assert augment.square_side(height, width) == side
    assert out.dtype == np.uint8 and out.shape == images.shape
    assert (out[:2, :side, :side] == [255, 255, 0]).all()
    # Nothing outside the top-left square (nor an unmarked image) changes, and the input is left alone.
    outside = np.ones((height, width), dtype=bool)
    outside[:side, :side] = False
    assert (out[:, outside] == images.numpy()[:, outside]).all()
    assert (out[2] == images.numpy()[2]).all()
    assert torch.equal(images, before)
    assert abs(side**2 / (height * width) - 0.02) < 0.008


def test_square_area_is_2_percent_at_large_resolutions():
    for size in (128, 178, 256, 512, 1024):
        assert augment.square_side(size, size) ** 2 / size**2 == pytest.approx(0.02, rel=0.05)
