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
