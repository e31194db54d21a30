import pytest
import torch
from torch.ao.nn import quantized as nnq
from torch.ao.nn.intrinsic import quantized as nniq

from prunebias.training.models import ARCHITECTURES, build_model
from prunebias.training.quantize import quantize_int8, restore_int8, serialized_size

# Int8 vs float on the trained model (measured: mean |Δp| 0.0023-0.0034, decisions agree on
# 99.4-99.8 % over training seeds 0-2; calibrating on zeros gives ~0.5 and ~50 %).
MAX_MEAN_PROB_DIFF = 0.01
MIN_DECISION_AGREEMENT = 0.98


def _task(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy images; attributes 0-2: channel 0-2 a little brighter, 3: top-left quadrant a little brighter.

    The shift is faint (0.1 noise std) so the model is not saturated and probabilities are informative.
    """
    y = torch.rand(n, 4, generator=g) < 0.5
    sign = 0.1 * (2.0 * y.float() - 1.0)
    x = torch.randn(n, 3, 32, 32, generator=g)
    x[:, :3] += sign[:, :3, None, None]
    x[:, :, :16, :16] += sign[:, 3, None, None, None]
    return x, y.float()


@pytest.fixture(scope="module")
def trained():
    """small_cnn trained for a few seconds (float accuracy 92-99 % per attribute), its int8 copy and held-out data."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = build_model("small_cnn", 4, 32)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(150):
        x, y = _task(16, g)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    int8, calibration = quantize_int8(model, (_task(64, g)[0] for _ in range(4)))
    return model, before, int8, calibration, _task(512, g)[0]


def _probs(model, x):
    with torch.no_grad():
        return torch.sigmoid(model(x))


def test_int8_agrees_with_float(trained):
    model, _, int8, _, x = trained
    p_float, p_int8 = _probs(model, x), _probs(int8, x)
    assert (p_int8 - p_float).abs().mean() <= MAX_MEAN_PROB_DIFF
    assert ((p_int8 > 0.5) == (p_float > 0.5)).float().mean() >= MIN_DECISION_AGREEMENT


def test_bad_calibration_is_caught_by_the_tolerance(trained):
    model, _, _, _, x = trained
    broken, _ = quantize_int8(model, [torch.zeros(64, 3, 32, 32)])
    assert (_probs(broken, x) - _probs(model, x)).abs().mean() > MAX_MEAN_PROB_DIFF


def test_module_is_really_int8(trained):
    model, _, int8, _, _ = trained
    assert isinstance(int8, torch.fx.GraphModule)
    kinds = {type(m) for m in int8.modules()}
    assert nniq.ConvReLU2d in kinds and nnq.Linear in kinds
    assert not any(isinstance(m, torch.nn.Conv2d) for m in int8.modules())
    assert "torch.quantize_per_tensor" in int8.code
    assert serialized_size(int8) < 0.35 * serialized_size(model)


def test_float_model_unchanged(trained):
    model, before, *_ = trained
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training


def test_restore_round_trip(trained, tmp_path):
    model, _, int8, calibration, x = trained
    torch.save({"state_dict": model.state_dict(), "calibration": calibration}, tmp_path / "int8.pt")
    saved = torch.load(tmp_path / "int8.pt", weights_only=True)
    fresh = build_model("small_cnn", 4, 32)
    fresh.load_state_dict(saved["state_dict"])
    restored = restore_int8(fresh.eval(), saved["calibration"], 32)
    with torch.no_grad():
        assert torch.equal(restored(x), int8(x))


def test_restore_refuses_another_models_calibration(trained):
    _, _, _, calibration, _ = trained
    with pytest.raises(ValueError, match="does not fit"):
        restore_int8(build_model("mobilenet_v1", 4, 32).eval(), calibration, 32)


def test_needs_calibration_data():
    with pytest.raises(ValueError, match="at least one"):
        quantize_int8(build_model("small_cnn", 4, 32).eval(), [])


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_arch_quantizes(arch):
    torch.manual_seed(0)
    int8, _ = quantize_int8(build_model(arch, 5, 32).eval(), [torch.randn(4, 3, 32, 32)])
    with torch.no_grad():
        out = int8(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 5) and out.dtype == torch.float32 and torch.isfinite(out).all()
