"""Unit tests of prunebias.training.pruning: masks, optimiser interplay, schedules, epoch plans."""

import io
import math
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from prunebias.training.pruning import MaskSet, compute_masks, measured_sparsity, prunable_parameters
from prunebias.training.schedules import (
    EpochPlan,
    cubic_sparsity,
    describe_plan,
    eligible_for_selection,
    method_plan,
    pruning_steps,
    resolve_epochs,
)

GRID = [0.8, 0.9, 0.95, 0.98, 0.99, 0.995]
ODD_SHAPES = [(7,), (3, 5), (1,), (2, 3, 5, 7), (13, 1, 3, 3), (1, 1)]


class Block(nn.Module):
    """Basic residual block with a 1x1 downsample and a depthwise conv."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.dw = nn.Conv2d(cout, cout, 3, padding=1, groups=cout, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.dw(y)) + self.downsample(x))


class TinyResNet(nn.Module):
    def __init__(self, n_out=4):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(8)
        self.layer1 = Block(8, 16)
        self.fc = nn.Linear(16, n_out)

    def forward(self, x):
        x = self.layer1(torch.relu(self.bn(self.stem(x))))
        return self.fc(x.mean(dim=(2, 3)))


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return TinyResNet()


def n_pruned(masks):
    return sum(int((~m).sum()) for m in masks)


# --------------------------------------------------------------------------- parameters


def test_prunable_parameters_are_conv_and_linear_weights_in_module_order():
    names = [n for n, _ in prunable_parameters(tiny_model())]
    assert names == [
        "stem.weight",
        "layer1.conv1.weight",
        "layer1.dw.weight",
        "layer1.downsample.0.weight",
        "fc.weight",
    ]
    conv1d = nn.Sequential(nn.Conv1d(2, 3, 3), nn.BatchNorm1d(3), nn.Linear(3, 1))
    assert [n for n, _ in prunable_parameters(conv1d)] == ["0.weight", "2.weight"]


def test_shared_weight_listed_once():
    lin = nn.Linear(3, 3)
    assert [n for n, _ in prunable_parameters(nn.Sequential(lin, lin))] == ["0.weight"]


def test_biases_and_batchnorm_never_pruned():
    model = tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    MaskSet.from_model(model, 0.99).apply()
    pruned = {n for n, _ in prunable_parameters(model)}
    for name, p in model.named_parameters():
        if name not in pruned:
            assert torch.equal(p, before[name]), name
    assert "stem.bias" not in pruned and "fc.bias" not in pruned
    assert measured_sparsity(model)["global"] == pytest.approx(0.99, abs=1e-3)


# --------------------------------------------------------------------------- exact sparsity


@pytest.mark.parametrize("scope", ["global", "random"])
@pytest.mark.parametrize("s", GRID)
def test_exact_global_count_on_model(scope, s):
    model = tiny_model()
    masks = MaskSet.from_model(model, s, scope, torch.Generator().manual_seed(1))
    n = sum(p.numel() for _, p in prunable_parameters(model))
    assert n_pruned(masks.masks) == round(s * n)
    assert all(m.dtype == torch.bool for m in masks.masks)
    masks.apply()
    assert measured_sparsity(model)["global"] == round(s * n) / n
    assert masks.sparsity() == round(s * n) / n


@pytest.mark.parametrize("s", GRID)
def test_exact_layerwise_count_on_odd_shapes(s):
    torch.manual_seed(0)
    weights = [torch.randn(shape) for shape in ODD_SHAPES]
    masks = compute_masks(weights, s, "layerwise")
    for w, m in zip(weights, masks):
        assert m.shape == w.shape
        assert int((~m).sum()) == round(s * w.numel())


@pytest.mark.parametrize("scope", ["global", "random"])
@pytest.mark.parametrize("s", GRID)
def test_exact_global_count_on_odd_shapes(scope, s):
    torch.manual_seed(0)
    weights = [torch.randn(shape) for shape in ODD_SHAPES]
    masks = compute_masks(weights, s, scope, torch.Generator().manual_seed(0))
    n = sum(w.numel() for w in weights)
    assert n_pruned(masks) == round(s * n)


def test_layerwise_total_can_differ_from_global_count_by_rounding():
    # Three tensors of 3 entries at s = 0.5: each rounds 1.5 -> 2 (ties to even), 6 in
    # total, where the global count is round(4.5) = 4.
    weights = [torch.arange(1.0, 4.0)] * 3
    assert n_pruned(compute_masks(weights, 0.5, "layerwise")) == 6
    assert n_pruned(compute_masks(weights, 0.5, "global")) == 4


shapes = st.lists(st.lists(st.integers(0, 6), min_size=1, max_size=4).map(tuple), min_size=1, max_size=5)


@settings(max_examples=150, deadline=None)
@given(
    shapes=shapes,
    s=st.floats(0.0, 1.0, exclude_max=True),
    scope=st.sampled_from(["global", "layerwise", "random"]),
    seed=st.integers(0, 2**16),
    ties=st.booleans(),
)
def test_exact_sparsity_any_shapes(shapes, s, scope, seed, ties):
    g = torch.Generator().manual_seed(seed)
    weights = [
        torch.randint(-2, 3, shape, generator=g).float() if ties else torch.randn(shape, generator=g)
        for shape in shapes
    ]
    masks = compute_masks(weights, s, scope, g)
    assert [m.shape for m in masks] == [w.shape for w in weights]
    if scope == "layerwise":
        assert [int((~m).sum()) for m in masks] == [round(s * w.numel()) for w in weights]
    else:
        assert n_pruned(masks) == round(s * sum(w.numel() for w in weights))


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), True, "0.9", None])
def test_sparsity_outside_unit_interval_raises(bad):
    with pytest.raises(ValueError, match="sparsity"):
        compute_masks([torch.randn(4)], bad)


def test_unknown_scope_and_nan_weights_raise():
    with pytest.raises(ValueError, match="scope"):
        compute_masks([torch.randn(4)], 0.5, "structured")
    with pytest.raises(ValueError, match="NaN"):
        compute_masks([torch.tensor([1.0, float("nan")])], 0.5)


def test_zero_sparsity_keeps_everything_and_empty_list():
    assert all(m.all() for m in compute_masks([torch.randn(3, 3)], 0.0))
    assert compute_masks([], 0.9) == []


# --------------------------------------------------------------------------- which weights


def test_global_keeps_exactly_the_largest_magnitudes():
    g = torch.Generator().manual_seed(3)
    # Integer values: many ties, so the reference must also break them by position.
    weights = [torch.randint(-50, 51, shape, generator=g).float() for shape in [(8, 3, 3, 3), (40,), (5, 7)]]
    masks = compute_masks(weights, 0.9)
    flat = torch.cat([w.flatten() for w in weights])
    order = torch.sort(flat.abs(), stable=True).indices
    expected_keep = torch.ones_like(flat, dtype=torch.bool)
    expected_keep[order[: round(0.9 * flat.numel())]] = False
    keep = torch.cat([m.flatten() for m in masks])
    assert torch.equal(keep, expected_keep)
    assert flat[keep].abs().min() >= flat[~keep].abs().max()


def test_ties_broken_by_position_earlier_pruned_first():
    weights = [torch.tensor([1.0, 2.0, -1.0, 2.0]), torch.tensor([1.0, -0.5])]
    # |w| = 1 2 1 2 | 1 0.5; prune 3: the 0.5, then the first two 1s (indices 0 and 2).
    masks = compute_masks(weights, 0.5)
    assert masks[0].tolist() == [False, True, False, True]
    assert masks[1].tolist() == [True, False]
    equal = [torch.ones(4), torch.ones(6)]
    masks = compute_masks(equal, 0.5)
    assert masks[0].tolist() == [False] * 4
    assert masks[1].tolist() == [False] + [True] * 5
    assert [m.tolist() for m in compute_masks(equal, 0.5)] == [m.tolist() for m in masks]


def two_scale_weights():
    g = torch.Generator().manual_seed(0)
    big = (1 + torch.rand(1000, generator=g)) * torch.sign(torch.randn(1000, generator=g))
    small = 0.5 * torch.rand(20, 50, generator=g)
    return [big, small]


def test_layerwise_and_global_differ_as_expected():
    weights = two_scale_weights()
    glob = compute_masks(weights, 0.5)
    assert [int((~m).sum()) for m in glob] == [0, 1000]
    glob = compute_masks(weights, 0.25)
    assert [int((~m).sum()) for m in glob] == [0, 500]
    layer = compute_masks(weights, 0.25, "layerwise")
    assert [int((~m).sum()) for m in layer] == [250, 250]
    # Within each tensor layerwise still prunes by magnitude.
    for w, m in zip(weights, layer):
        assert w[m].abs().min() >= w[~m].abs().max()


def test_random_scope_is_seeded_and_not_magnitude():
    weights = two_scale_weights()
    a = compute_masks(weights, 0.5, "random", torch.Generator().manual_seed(7))
    b = compute_masks(weights, 0.5, "random", torch.Generator().manual_seed(7))
    c = compute_masks(weights, 0.5, "random", torch.Generator().manual_seed(8))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    # Magnitude pruning takes all small weights; a random choice takes about half of each.
    assert n_pruned(a) == 1000
    for m in a:
        assert 0.4 < (~m).float().mean() < 0.6


def test_global_masks_fast_on_resnet50_size():
    # ResNet50 has about 25.5M prunable weights in about 54 tensors.
    g = torch.Generator().manual_seed(0)
    weights = [torch.randn(472_000, generator=g) for _ in range(54)]
    start = time.perf_counter()
    masks = compute_masks(weights, 0.995)
    elapsed = time.perf_counter() - start
    assert n_pruned(masks) == round(0.995 * 54 * 472_000)
    # About 0.5-1 s on 2 idle cores; the bound only catches sorts and Python loops.
    assert elapsed < 5.0, f"compute_masks took {elapsed:.2f} s"


# --------------------------------------------------------------------------- optimisers


def train_masked(optimizer_factory, steps=50, reapply_state=True, sparsity=0.9):
    model = tiny_model()
    # Layerwise keeps 10% of every tensor; global pruning at 0.9 would empty
    # layer1.conv1 of this tiny model and leave layer1.dw without gradients.
    masks = MaskSet.from_model(model, sparsity, "layerwise")
    masks.apply()
    start = [p.detach().clone() for p in masks.params]
    opt = optimizer_factory(model.parameters())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 8, 8, generator=g)
    y = torch.randn(8, 4, generator=g)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        masks.apply()
        if reapply_state:
            masks.apply_to_optimizer(opt)
    return model, masks, opt, start


OPTIMIZERS = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.05),
    "sgd_nesterov": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05),
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=0.05),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.05, amsgrad=True),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_pruned_weights_stay_exactly_zero_through_optimiser(name):
    model, masks, opt, start = train_masked(OPTIMIZERS[name])
    for p, m, p0 in zip(masks.params, masks.masks, start):
        assert (p[~m] == 0.0).all()
        assert not torch.equal(p[m], p0[m])  # the kept weights did train
        buffers = [v for v in opt.state[p].values() if torch.is_tensor(v) and v.shape == p.shape]
        assert buffers
        for buf in buffers:
            assert (buf[~m] == 0).all()
            assert buf[m].abs().sum() > 0
    assert measured_sparsity(model)["global"] == masks.sparsity()


def test_without_apply_to_optimizer_state_of_pruned_weights_is_stale():
    _, masks, opt, _ = train_masked(OPTIMIZERS["sgd"], steps=5, reapply_state=False)
    p, m = masks.params[0], masks.masks[0]
    assert opt.state[p]["momentum_buffer"][~m].abs().sum() > 0


def test_without_reapplying_masks_pruned_weights_regrow():
    torch.manual_seed(0)
    model = nn.Linear(20, 5)
    masks = MaskSet.from_model(model, 0.9)
    masks.apply()
    assert measured_sparsity(model)["global"] == 0.9
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    nn.functional.mse_loss(model(torch.randn(4, 20)), torch.randn(4, 5)).backward()
    opt.step()
    assert measured_sparsity(model)["global"] == 0.0


# --------------------------------------------------------------------------- MaskSet I/O


def test_maskset_state_dict_round_trip():
    model = tiny_model()
    masks = MaskSet.from_model(model, 0.95, "random", torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    torch.save(masks.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer)
    assert list(state) == masks.names
    assert all(t.dtype == torch.bool and t.device.type == "cpu" for t in state.values())

    restored = MaskSet.from_model(tiny_model(seed=1), 0.0)
    assert restored.sparsity() == 0.0
    restored.load_state_dict(state)
    assert restored.sparsity() == masks.sparsity()
    assert all(torch.equal(a, b) for a, b in zip(restored.masks, masks.masks))
    restored.apply()
    for p, m in zip(restored.params, restored.masks):
        assert (p[~m] == 0).all() and (p[m] != 0).all()


def test_maskset_state_dict_is_a_copy_and_load_validates():
    model = tiny_model()
    masks = MaskSet.from_model(model, 0.5)
    state = masks.state_dict()
    state["fc.weight"][:] = False
    assert masks.masks[-1].any()
    with pytest.raises(ValueError, match="missing"):
        masks.load_state_dict({k: v for k, v in state.items() if k != "fc.weight"})
    state["fc.weight"] = torch.ones(2, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="fc.weight"):
        masks.load_state_dict(state)


def test_measured_sparsity_per_tensor():
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 3))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
        model[1].weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]))
        model[1].bias.zero_()
    assert measured_sparsity(model) == {
        "global": 4 / 10,
        "per_tensor": {"0.weight": 0.25, "1.weight": 0.5},
    }
    with pytest.raises(ValueError, match="prunable"):
        measured_sparsity(nn.BatchNorm1d(3))


# --------------------------------------------------------------------------- schedules


def test_cubic_sparsity_hand_values():
    assert cubic_sparsity(10, 10, 80, 0.05, 0.9) == pytest.approx(0.05, abs=1e-15)
    assert cubic_sparsity(45, 10, 80, 0.05, 0.9) == pytest.approx(0.9 - 0.85 * 0.125)
    assert cubic_sparsity(80, 10, 80, 0.05, 0.995) == 0.995
    with pytest.raises(ValueError, match="t "):
        cubic_sparsity(81, 10, 80, 0.05, 0.9)
    with pytest.raises(ValueError, match="s_initial"):
        cubic_sparsity(10, 10, 80, 0.95, 0.9)
    with pytest.raises(ValueError, match="t_end"):
        cubic_sparsity(10, 10, 10, 0.05, 0.9)


def test_pruning_steps_include_t_end():
    assert pruning_steps(10, 80, 10) == [10, 20, 30, 40, 50, 60, 70, 80]
    assert pruning_steps(1, 57, 4) == list(range(1, 58, 4))
    assert len(pruning_steps(1, 57, 4)) == 15
    # Not a multiple of the step: t_end is still the last step (shorter last interval).
    assert pruning_steps(0, 10, 4) == [0, 4, 8, 10]
    assert pruning_steps(0, 3, 5) == [0, 3]
    for bad in [(0, 10, 0), (5, 5, 1), (5, 4, 1), (-1, 4, 1), (0.5, 4, 1)]:
        with pytest.raises(ValueError):
            pruning_steps(*bad)


@pytest.mark.parametrize(
    "method, epochs, schedule, steps",
    [
        ("gmp", 100, {"start": 10, "end": 80, "step": 10}, list(range(10, 81, 10))),
        ("gmp", 100, {"start": 0.1, "end": 0.8, "step": 0.1}, list(range(10, 81, 10))),
        ("gmp_pt", 80, {"start": 1, "end": 57, "step": 4}, list(range(1, 58, 4))),
    ],
)
@pytest.mark.parametrize("target", GRID)
def test_gmp_plans_follow_cubic_formula_and_hit_target(method, epochs, schedule, steps, target):
    plan = method_plan(method, epochs, target, schedule)
    assert len(plan) == epochs
    t0, t_end = steps[0], steps[-1]
    for e, step in enumerate(plan):
        if e in steps:
            expected = target - (target - 0.05) * (1 - (e - t0) / (t_end - t0)) ** 3
            assert step.prune_to == pytest.approx(expected, abs=1e-12)
        else:
            assert step.prune_to is None
        assert step.sparse == (e >= t0)
    assert plan[t0].prune_to == pytest.approx(0.05, abs=1e-15)
    assert plan[t_end].prune_to == target  # exactly, not one step short
    prune_values = [s.prune_to for s in plan if s.prune_to is not None]
    assert prune_values == sorted(prune_values)
    assert eligible_for_selection(plan, target) == [e >= t_end for e in range(epochs)]


def test_gmp_initial_sparsity_and_uneven_step():
    plan = method_plan("gmp", 12, 0.9, {"start": 0, "end": 10, "step": 4, "initial_sparsity": 0.5})
    assert [e for e, s in enumerate(plan) if s.prune_to is not None] == [0, 4, 8, 10]
    assert plan[0].prune_to == pytest.approx(0.5, abs=1e-15)
    assert plan[8].prune_to == pytest.approx(0.9 - 0.4 * 0.2**3)
    assert plan[10].prune_to == 0.9


def acdc_expected_sparse(epochs, spans):
    return [any(a <= e <= b for a, b in spans) for e in range(epochs)]


@pytest.mark.parametrize(
    "schedule",
    [{"warmup": 10, "phase": 5, "final_sparse": 15}, {"warmup": 0.1, "phase": 0.05, "final_sparse": 0.15}],
)
def test_acdc_study_schedule(schedule):
    plan = method_plan("acdc", 100, 0.95, schedule)
    spans = [(a, a + 4) for a in range(10, 71, 10)] + [(85, 99)]
    assert [s.sparse for s in plan] == acdc_expected_sparse(100, spans)
    assert [e for e, s in enumerate(plan) if s.prune_to is not None] == [a for a, _ in spans]
    assert all(s.prune_to in (None, 0.95) for s in plan)
    assert all(not plan[e].sparse for e in range(75, 85))
    assert eligible_for_selection(plan, 0.95) == [s.sparse for s in plan]


def test_acdc_fraction_schedule_on_8_epochs():
    # warmup 1, phase 1, final 2 -> dense 0, sparse 1, dense 2, sparse 3, dense 4-5, sparse 6-7.
    plan = method_plan("acdc", 8, 0.9, {"warmup": 0.125, "phase": 0.125, "final_sparse": 0.25})
    assert [s.sparse for s in plan] == [False, True, False, True, False, False, True, True]
    assert [s.prune_to for s in plan] == [None, 0.9, None, 0.9, None, None, 0.9, None]


def test_dense_and_oneshot_plans():
    dense = method_plan("dense", 5, 0.0, {})
    assert dense == [EpochPlan(None, False)] * 5
    assert eligible_for_selection(dense, 0.0) == [True] * 5
    one = method_plan("oneshot", 4, 0.99, {})
    assert one == [EpochPlan(0.99, True)] + [EpochPlan(None, True)] * 3
    assert eligible_for_selection(one, 0.99) == [True] * 4
    assert describe_plan(one)[:2] == [
        {"epoch": 0, "prune_to": 0.99, "sparse": True},
        {"epoch": 1, "prune_to": None, "sparse": True},
    ]


def test_resolve_epochs():
    assert resolve_epochs(10, 100) == 10
    assert resolve_epochs(0.1, 100) == 10
    assert resolve_epochs(0.1, 8) == 1
    assert resolve_epochs(1.0, 8) == 8
    assert resolve_epochs(1, 8) == 1
    assert resolve_epochs(0.0, 8) == 0
    for bad in [-1, 9, 1.5, -0.1, True, "3", None]:
        with pytest.raises(ValueError, match="warmup"):
            resolve_epochs(bad, 8, "warmup")


@pytest.mark.parametrize(
    "method, epochs, target, schedule, match",
    [
        ("gmp", 100, 0.9, {"start": 10, "end": 100, "step": 10}, "end = 100"),
        ("gmp", 100, 0.9, {"start": 10, "end": 1.0, "step": 10}, "end = 1.0"),
        ("gmp", 100, 0.9, {"start": 10, "end": 80}, "'step'"),
        ("gmp", 100, 0.9, {"start": 80, "end": 80, "step": 10}, "start = 80"),
        ("gmp", 8, 0.9, {"start": 1, "end": 6, "step": 0.01}, "step = 0.01"),
        ("gmp", 100, 0.9, {"start": 10, "end": 80, "step": 10, "initial_sparsity": 0.95}, "initial_sparsity"),
        ("gmp", 100, 0.9, {"start": 10, "end": 80, "step": 10, "warmup": 5}, "warmup"),
        ("gmp", 100, 0.9, {"start": 10, "end": 80, "step": 1.5}, "step = 1.5"),
        ("acdc", 100, 0.9, {"warmup": 10, "phase": 5, "final_sparse": 101}, "final_sparse = 101"),
        ("acdc", 20, 0.9, {"warmup": 10, "phase": 5, "final_sparse": 5}, "do not fit"),
        ("acdc", 8, 0.9, {"warmup": 0.1, "phase": 0.05, "final_sparse": 0.15}, "phase = 0.05"),
        ("acdc", 100, 0.9, {"warmup": 10, "phase": 5, "final_sparse": 0}, "final_sparse = 0"),
        ("oneshot", 10, 0.9, {"start": 1}, "start"),
        ("dense", 10, 0.9, {}, "target"),
        ("gmp", 10, 0.0, {"start": 1, "end": 5, "step": 1}, "target"),
        ("lottery", 10, 0.9, {}, "method"),
    ],
)
def test_method_plan_validation(method, epochs, target, schedule, match):
    with pytest.raises(ValueError, match=match):
        method_plan(method, epochs, target, schedule)


# --------------------------------------------------------------------------- the loop contract


def run_plan(plan, steps_per_epoch=3):
    """The training-loop contract of the module docstring, on the tiny model."""
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 8, 8, generator=g), torch.randn(8, 4, generator=g)
    masks, end_sparsity = None, []
    for step in plan:
        if step.prune_to is not None:
            masks = MaskSet.from_model(model, step.prune_to)
            masks.apply()
            masks.apply_to_optimizer(opt)
        for _ in range(steps_per_epoch):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
            if step.sparse:
                masks.apply()
                masks.apply_to_optimizer(opt)
        end_sparsity.append(measured_sparsity(model)["global"])
    return model, end_sparsity


def test_loop_contract_gmp_reaches_target_and_acdc_regrows():
    n = sum(p.numel() for _, p in prunable_parameters(tiny_model()))
    plan = method_plan("gmp", 8, 0.9, {"start": 1, "end": 5, "step": 2})
    _, sparsity = run_plan(plan)
    assert sparsity[0] < 0.01
    assert sparsity[1] == round(0.05 * n) / n
    assert sparsity[3] == round(cubic_sparsity(3, 1, 5, 0.05, 0.9) * n) / n
    assert sparsity[5:] == [round(0.9 * n) / n] * 3

    plan = method_plan("acdc", 8, 0.9, {"warmup": 1, "phase": 1, "final_sparse": 2})
    _, sparsity = run_plan(plan)
    target = round(0.9 * n) / n
    assert [sparsity[e] == target for e in range(8)] == [s.sparse for s in plan]
    assert all(sparsity[e] < 0.85 for e in (2, 4, 5))  # dense phases regrow
    assert math.isclose(sparsity[-1], 0.9, abs_tol=1e-3)
