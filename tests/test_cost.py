"""Unit tests of prunebias.training.cost: kept parameters, FLOPs, saved size and CPU latency."""

import math
import types

import pytest
import torch
from torch import nn

from prunebias.training import cost
from prunebias.training.models import SmallCNN, build_model
from prunebias.training.quantize import quantize_int8


def small_cnn(seed=0):
    torch.manual_seed(seed)
    return build_model("small_cnn", 3, 16)


def tiny_model(seed=0):
    """conv 3→4 (3x3, no bias) on 16x16 → 4x14x14, flatten, linear 784→5 (no bias)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.Flatten(), nn.Linear(4 * 14 * 14, 5, bias=False))


def nonzero_parameters(model):
    return sum(int((p.detach() != 0).sum()) for p in model.parameters())


# --------------------------------------------------------------------------- static cost


def test_params_count_the_non_zero_parameters_and_masking_keeps_flops():
    """params is the number of non-zero parameters (BatchNorm's zero biases do not count); zeroing half of a
    conv weight lowers it by exactly the entries zeroed, while FLOPs and the saved size stay (dense kernels)."""
    model = small_cnn()
    before = cost.static_cost(model, 16)
    assert set(before) == {"params", "flops", "size_bytes"}
    assert before["params"] == nonzero_parameters(model)
    assert before["params"] < sum(p.numel() for p in model.parameters())  # BatchNorm biases start at 0
    conv = model.features[2][0]
    assert isinstance(conv, nn.Conv2d)
    flat = conv.weight.data.view(-1)
    half = flat[: flat.numel() // 2]
    zeroed = int(torch.count_nonzero(half))
    assert zeroed > 0
    half.zero_()
    after = cost.static_cost(model, 16)
    assert after["params"] == before["params"] - zeroed
    assert after["flops"] == before["flops"]
    assert after["size_bytes"] == before["size_bytes"]


def test_flops_are_twice_the_hand_counted_macs():
    """flops = 2 × multiply-accumulates, as counted by hand for conv + linear, and params = their weights."""
    conv_macs = (4 * 14 * 14) * (3 * 3 * 3)  # output elements × kernel volume × input channels
    linear_macs = (4 * 14 * 14) * 5
    result = cost.static_cost(tiny_model(), 16)
    assert result["flops"] == 2 * (conv_macs + linear_macs) == 50176
    assert result["params"] == 3 * 3 * 3 * 4 + 784 * 5
    big = cost.static_cost(small_cnn(), 16)["flops"]
    assert big > 0 and big % 2 == 0


def test_static_cost_leaves_the_model_as_it_was():
    """Counting runs on a copy: the weights and the train/eval mode are unchanged."""
    model = small_cnn().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    cost.static_cost(model, 16)
    assert model.training
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_size_bytes_grow_with_parameters_and_int8_is_smaller():
    """The saved size grows with the parameter count and holds at least 4 bytes per float32 parameter; an int8
    deployment is saved in under 0.35× the float size, with params and FLOPs those of the float model."""
    small, wide = cost.static_cost(small_cnn(), 16), cost.static_cost(SmallCNN(3, 16, width=32), 16)
    assert wide["params"] > small["params"] and wide["size_bytes"] > small["size_bytes"]
    model = small_cnn().eval()
    assert small["size_bytes"] >= 4 * sum(p.numel() for p in model.parameters())
    int8, _ = quantize_int8(model, [torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))])
    deployed = cost.static_cost(model, 16, deployed=int8)
    assert deployed["size_bytes"] < 0.35 * small["size_bytes"]
    assert deployed["params"] == small["params"] and deployed["flops"] == small["flops"]


# --------------------------------------------------------------------------- latency


def test_latency_is_positive_and_finite():
    """latency_ms gives a positive, finite time per image and leaves the module in eval mode."""
    model = tiny_model().train()
    ms = cost.latency_ms(model, 16, 4, 3)
    assert ms > 0 and math.isfinite(ms)
    assert not model.training


def test_measured_latency_reports_batch_1_and_64(monkeypatch):
    """measured_latency returns exactly latency_ms_b1 and latency_ms_b64, both positive."""
    monkeypatch.setattr(cost, "REPEATS", {1: 3, 64: 2})
    result = cost.measured_latency(tiny_model(), 16)
    assert set(result) == {"latency_ms_b1", "latency_ms_b64"}
    assert all(v > 0 and math.isfinite(v) for v in result.values())


class CountingModule(nn.Module):
    """Records the batch sizes it is called with."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x):
        self.calls.append(x.shape)
        return x


def fake_clock(durations):
    """A perf_counter whose successive (start, end) pairs are ``durations`` apart."""
    ticks, now = [], 100.0
    for d in durations:
        ticks += [now, now + d]
        now += d + 1.0
    it = iter(ticks)
    return lambda: next(it)


def test_latency_is_the_median_per_image(monkeypatch):
    """Timed batches are summarised by their median (a huge outlier does not move it), in ms per image; the
    warm-up runs are not timed."""
    durations = [0.004, 0.002, 50.0, 0.003, 0.001]  # seconds; median 0.003, mean ≈ 10
    monkeypatch.setattr(cost, "time", types.SimpleNamespace(perf_counter=fake_clock(durations)))
    module = CountingModule()
    ms = cost.latency_ms(module, 8, batch=2, repeats=5, warmup=2)
    assert ms == pytest.approx(1000.0 * 0.003 / 2)
    assert module.calls == [torch.Size([2, 3, 8, 8])] * 7
    monkeypatch.setattr(cost, "time", types.SimpleNamespace(perf_counter=fake_clock([0.010, 0.030])))
    assert cost.latency_ms(CountingModule(), 8, batch=4, repeats=2) == pytest.approx(1000.0 * 0.020 / 4)


def test_a_slow_model_stops_timing_at_the_budget(monkeypatch):
    """Past ``budget_s`` of timed runs (and at least MIN_REPEATS of them) timing stops early."""
    monkeypatch.setattr(cost, "time", types.SimpleNamespace(perf_counter=fake_clock([2.0] * 10)))
    module = CountingModule()
    ms = cost.latency_ms(module, 8, batch=1, repeats=10, warmup=1, budget_s=3.0)
    assert ms == pytest.approx(2000.0)
    assert len(module.calls) == 1 + cost.MIN_REPEATS
