"""Unit tests of prunebias.training.nm: N:M masks, group shares, optimiser interplay, the loop's N:M step."""

import dataclasses
import itertools
import re

import pytest
import torch
from torch import nn

from prunebias.training.nm import check_pattern, nm_eligible, nm_masks, pattern_sparsity, pattern_violations
from prunebias.training.pruning import MaskSet, prunable_parameters
from prunebias.training.schedules import EpochPlan, mask_target, method_plan
from prunebias.training.train import _epoch_masks
from workflow_utils import train_spec

PATTERNS = [(2, 4), (1, 4), (4, 8)]
# Partial training settings, as tests/test_train.py writes them (workflow_utils.train_spec completes them).
SPEC = {
    "epochs": 2,
    "batch_size": 64,
    "eval_batch_size": 256,
    "crop_size": None,
    "augment": {"padding": 1, "flip": True},
    "optimizer": {"name": "adam", "lr": 1e-3},
    "lr_schedule": {"name": "cosine", "warmup_epochs": 0},
    "schedule": {},
    "scope": "global",
}


def group_slices(shape, m):
    """Index tuples of every N:M group of a weight of ``shape``, found by slicing (independent of the
    module): M consecutive input-dim (dim 1) entries at one output row and one kernel position."""
    out_dim, in_dim, *rest = shape
    for o, g, *pos in itertools.product(range(out_dim), range(in_dim // m), *(range(r) for r in rest)):
        yield (o, slice(g * m, (g + 1) * m), *pos)


def group_key(t, index):
    """A hashable name for group ``index`` of tensor number ``t``."""
    return (t, *(i.start if isinstance(i, slice) else i for i in index))


def patterned_groups(weights, masks, n, m):
    """Keys of the groups whose mask prunes exactly M − N entries (every other group must be all kept)."""
    patterned = set()
    for t, (w, mask) in enumerate(zip(weights, masks)):
        for index in group_slices(w.shape, m):
            kept = int(mask[index].sum())
            assert kept in (n, m), f"group {group_key(t, index)} keeps {kept} of {m}"
            if kept == n:
                patterned.add(group_key(t, index))
    return patterned


def pruned_cost(weights, n, m):
    """``{group key: sum of its M − N smallest |w|}``, computed by slicing."""
    cost = {}
    for t, w in enumerate(weights):
        for index in group_slices(w.shape, m):
            cost[group_key(t, index)] = float(w[index].abs().sort().values[: m - n].sum())
    return cost


def random_weights(seed=0):
    """A Linear and a Conv2d weight, both eligible for M = 4 and M = 8."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(6, 16, generator=g), torch.randn(4, 8, 3, 3, generator=g)]


def n_groups(weights, m):
    return sum(1 for w in weights for _ in group_slices(w.shape, m))


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))


# --------------------------------------------------------------------------- masks


@pytest.mark.parametrize("n, m", PATTERNS)
@pytest.mark.parametrize("shape", [(5, 16), (3, 8, 3, 2), (2, 16, 1, 3)])
def test_every_group_keeps_exactly_its_n_largest_magnitudes(shape, n, m):
    """At share 1, every group of M consecutive input entries (conv: input channels at one output channel and
    kernel position) keeps exactly N entries, and those are the N largest |w| of the group."""
    w = torch.randn(shape, generator=torch.Generator().manual_seed(n * 10 + m))
    (mask,) = nm_masks([w], n, m)
    assert mask.dtype == torch.bool and mask.shape == w.shape
    groups = list(group_slices(shape, m))
    assert len(groups) == w.numel() // m
    for index in groups:
        magnitude, keep = w[index].abs(), mask[index]
        assert int(keep.sum()) == n
        assert set(torch.topk(magnitude, n).indices.tolist()) == set(torch.nonzero(keep).squeeze(1).tolist())
    assert 1.0 - mask.float().mean().item() == pytest.approx(pattern_sparsity(n, m))


def test_conv_groups_run_along_input_channels_not_memory_order():
    """A conv group is the M input channels at one kernel position: large values spread along the kernel of one
    channel must not all be kept (as contiguous memory groups would keep them)."""
    w = torch.full((1, 4, 1, 4), 0.1)
    w[0, 0, 0, :] = 5.0  # channel 0 big at every kernel position: contiguous in memory
    w[0, 1, 0, :] = 3.0
    (mask,) = nm_masks([w], 2, 4)
    expected = torch.zeros(1, 4, 1, 4, dtype=torch.bool)
    expected[0, :2] = True  # at every kernel position channels 0 and 1 are kept
    assert torch.equal(mask, expected)


def test_ties_keep_the_earlier_entries():
    """In a group of equal magnitudes the first N (earlier input index) are kept; signs do not matter."""
    w = torch.tensor([[1.0, -1.0, 1.0, -1.0, 0.5, 2.0, 2.0, -2.0]])
    (mask,) = nm_masks([w], 2, 4)
    assert mask.tolist() == [[True, True, False, False, False, True, True, False]]
    (mask,) = nm_masks([torch.ones(1, 8)], 1, 4)
    assert mask.tolist() == [[True, False, False, False, True, False, False, False]]
    conv = torch.ones(2, 4, 2, 2)
    (mask,) = nm_masks([conv], 2, 4)
    assert mask[:, :2].all() and not mask[:, 2:].any()


def test_ineligible_tensors_stay_dense():
    """Tensors whose input dimension is not a multiple of M (RGB stem, depthwise conv, 1-D) get all-True masks."""
    g = torch.Generator().manual_seed(1)
    stem, dw, fc = (
        torch.randn(8, 3, 3, 3, generator=g),
        torch.randn(8, 1, 3, 3, generator=g),
        torch.randn(4, 8, generator=g),
    )
    assert not nm_eligible(stem.shape, 4) and not nm_eligible(dw.shape, 4) and not nm_eligible((8,), 4)
    assert nm_eligible(fc.shape, 4) and nm_eligible((8, 4, 3, 3), 4) and not nm_eligible((8, 4, 3, 3), 8)
    masks = nm_masks([stem, dw, fc], 2, 4)
    assert masks[0].all() and masks[1].all()
    assert int(masks[2].sum()) == fc.numel() // 2
    only_ineligible = nm_masks([stem, dw], 2, 4, 0.5)
    assert all(m.all() and m.shape == w.shape for m, w in zip(only_ineligible, [stem, dw]))
    assert pattern_violations(stem, 2, 4) == 0


def test_from_nm_masks_the_prunable_weights_of_a_model():
    """MaskSet.from_nm covers the prunable weights in module order; the RGB stem keeps every weight."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 4)
    )
    masks = MaskSet.from_nm(model, 2, 4)
    assert masks.names == [name for name, _ in prunable_parameters(model)] == ["0.weight", "2.weight", "4.weight"]
    assert masks.masks[0].all()
    for mask in masks.masks[1:]:
        assert 1.0 - mask.float().mean().item() == 0.5
    masks.apply()
    assert all(pattern_violations(p, 2, 4) == 0 for p in masks.params)


# --------------------------------------------------------------------------- group share


@pytest.mark.parametrize("share", [0.25, 0.3, 0.5, 0.9])
def test_share_patterns_the_groups_of_least_pruned_magnitude(share):
    """At share f, round(f·G) groups over all tensors get the pattern: those whose M − N smallest |w| sum least."""
    weights = random_weights()
    masks = nm_masks(weights, 2, 4, share)
    groups = n_groups(weights, 4)
    assert groups == 6 * 4 + 4 * 2 * 9
    patterned = patterned_groups(weights, masks, 2, 4)
    assert len(patterned) == round(share * groups)
    cost = pruned_cost(weights, 2, 4)
    cheapest = sorted(cost, key=cost.get)[: len(patterned)]
    assert patterned == set(cheapest)


def test_share_zero_keeps_everything_and_share_one_patterns_every_group():
    """Share 0 prunes nothing; share 1 gives every eligible group the pattern (ineligible tensors stay dense)."""
    weights = random_weights() + [torch.randn(8, 3, 3, 3)]
    assert all(m.all() for m in nm_masks(weights, 2, 4, 0.0))
    full = nm_masks(weights, 2, 4, 1.0)
    assert len(patterned_groups(weights[:2], full[:2], 2, 4)) == n_groups(weights[:2], 4)
    assert full[2].all()
    with pytest.raises(ValueError):
        nm_masks(weights, 2, 4, 1.5)
    with pytest.raises(ValueError):
        nm_masks(weights, 2, 4, -0.1)


@pytest.mark.parametrize("n, m", PATTERNS)
def test_masks_only_grow_when_pruned_weights_are_zeroed(n, m):
    """A gradual schedule: zero the pruned weights, recompute at a larger share: every pruned entry stays pruned
    and the patterned-group count follows the share."""
    weights = random_weights(3)
    groups = n_groups(weights, m)
    previous = [torch.ones_like(w, dtype=torch.bool) for w in weights]
    for share in [0.1, 0.25, 0.5, 0.75, 1.0]:
        masks = nm_masks(weights, n, m, share)
        for old, new in zip(previous, masks):
            assert not (~old & new).any(), "a pruned entry was revived"
        assert len(patterned_groups(weights, masks, n, m)) == round(share * groups)
        for w, mask in zip(weights, masks):
            w.masked_fill_(~mask, 0.0)
        previous = masks


# --------------------------------------------------------------------------- optimiser


def test_masks_survive_adam_steps():
    """2:4 masks applied after every Adam step (weights and optimiser state): the weights stay 2:4, pruned
    entries are exactly 0.0, the Adam buffers are 0 there, and the kept weights still train."""
    model = tiny_model()
    masks = MaskSet.from_nm(model, 2, 4)
    masks.apply()
    before = [p.detach().clone() for p in masks.params]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 4, 8, 8, generator=g), torch.randn(16, 4, generator=g)
    for _ in range(5):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        masks.apply()
        masks.apply_to_optimizer(opt)
    assert len(masks) == 2
    for p, mask, old in zip(masks.params, masks.masks, before):
        assert nm_eligible(p.shape, 4)
        assert pattern_violations(p, 2, 4) == 0
        assert torch.all(p.detach()[~mask] == 0.0)
        state = opt.state[p]
        assert torch.all(state["exp_avg"][~mask] == 0) and torch.all(state["exp_avg_sq"][~mask] == 0)
        assert not torch.equal(p.detach()[mask], old[mask])


def test_pattern_violations_counts_groups_over_n():
    """pattern_violations counts the groups (along the input dimension) holding more than N non-zeros."""
    w = torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]])
    assert pattern_violations(w, 2, 4) == 2
    assert pattern_violations(w, 3, 4) == 1
    assert pattern_violations(w, 1, 4) == 3
    assert pattern_violations(w, 4, 8) == 2
    assert pattern_violations(torch.zeros(4, 8), 2, 4) == 0
    conv = torch.zeros(1, 4, 1, 2)
    conv[0, :3, 0, 0] = 1.0  # kernel position 0: 3 non-zero channels (bad); position 1: empty
    assert pattern_violations(conv, 2, 4) == 1


def test_pattern_checks():
    """check_pattern/pattern_sparsity accept 1 <= N < M only; NaN weights cannot be ranked."""
    assert pattern_sparsity(2, 4) == 0.5 and pattern_sparsity(1, 4) == 0.75 and pattern_sparsity(4, 8) == 0.5
    assert check_pattern(2, 4) == (2, 4)
    for bad in [(4, 4), (0, 4), (3, 2), (2.0, 4)]:
        with pytest.raises(ValueError):
            check_pattern(*bad)
        with pytest.raises(ValueError):
            pattern_sparsity(*bad)
        with pytest.raises(ValueError):
            nm_masks([torch.randn(2, 4)], *bad)
    w = torch.randn(2, 8)
    w[1, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        nm_masks([w], 2, 4)


# --------------------------------------------------------------------------- training loop and plans


def test_training_loop_nm_step_patterns_the_share_of_groups():
    """_epoch_masks with n_m [2, 4] and a plan at sparsity 0.25 patterns half the eligible groups (0.25 / 0.5),
    leaves the stem dense and reaches 0.25 sparsity over the eligible weights; dense epochs get no masks."""
    spec = train_spec(SPEC)
    spec = dataclasses.replace(spec, compression={"n_m": [2, 4]})
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 4))
    masks = _epoch_masks(model, EpochPlan(prune_to=0.25, sparse=True), None, spec, seed=0, epoch=0)
    assert isinstance(masks, MaskSet) and len(masks) == 3
    assert masks.masks[0].all()
    weights = [p.detach() for p in masks.params[1:]]
    groups = n_groups(weights, 4)
    assert groups == 8 * 2 * 9 + 4 * 32
    patterned = patterned_groups(weights, masks.masks[1:], 2, 4)
    assert len(patterned) == groups // 2
    cost = pruned_cost(weights, 2, 4)
    assert patterned == set(sorted(cost, key=cost.get)[: groups // 2])
    pruned = sum(int((~m).sum()) for m in masks.masks[1:])
    assert pruned / sum(w.numel() for w in weights) == 0.25
    assert _epoch_masks(model, EpochPlan(None, True), masks, spec, 0, 1) is masks
    assert _epoch_masks(model, EpochPlan(0.25, False), None, spec, 0, 1) is None


def test_nm_and_channels_plans():
    """nm with an empty schedule is one-shot at epoch 0 (sparse throughout); with a schedule it is a cubic ramp
    reaching the target at ``end``; channels is dense fine-tuning without masks."""
    assert method_plan("nm", 4, 0.5, {}) == [EpochPlan(0.5, True)] + [EpochPlan(None, True)] * 3
    plan = method_plan("nm", 6, 0.5, {"start": 0, "end": 2, "step": 1})
    assert len(plan) == 6 and all(step.sparse for step in plan)
    assert plan[0].prune_to == pytest.approx(0.05) and 0.05 < plan[1].prune_to < 0.5 and plan[2].prune_to == 0.5
    assert [step.prune_to for step in plan[3:]] == [None] * 3
    assert method_plan("channels", 3, 0.5, {}) == [EpochPlan(None, False)] * 3
    assert mask_target("channels", 0.5) == 0.0
    assert mask_target("nm", 0.5) == 0.5


def test_float64_weights_are_ranked_at_their_own_precision():
    """Magnitudes 1e-12 apart are not ties for float64 weights (no float32 downcast)."""
    weight = torch.tensor([[1 + 1e-12, 1.0, 1 + 2e-12, 1.0]], dtype=torch.float64)
    (mask,) = nm_masks([weight], 2, 4)
    assert mask.tolist() == [[True, False, True, False]]


def test_bools_are_not_pattern_sizes():
    with pytest.raises(ValueError, match="n_m must be two integers"):
        check_pattern(True, 4)


def test_checkpoint_loading_refuses_weights_off_their_pattern(tmp_path):
    from prunebias.jobs import _check_pattern
    from prunebias.training.checkpoint import checkpoint_model
    from prunebias.training.models import build_model

    model = build_model("small_cnn", 3, 32)
    masks = MaskSet.from_nm(model, 2, 4)
    masks.apply()
    held = _check_pattern(model, dict(zip(masks.names, masks.masks)), [2, 4])  # as the train job records them
    ckpt = {
        "arch": "small_cnn",
        "attributes": ["a", "b", "c"],
        "image_size": 32,
        "state_dict": model.state_dict(),
        "compression": {"n_m": [2, 4], "tensors": held},
    }
    path = tmp_path / "model.pt"
    assert not checkpoint_model(ckpt, path).training  # intact: loads, in eval mode

    broken = {k: v.clone() for k, v in ckpt["state_dict"].items()}
    broken[held[-1]].fill_(1.0)  # every group of one tensor now holds 4 non-zeros
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(path))}: weights break their 2:4 pattern .*{re.escape(held[-1])}"
    ):
        checkpoint_model(ckpt | {"state_dict": broken}, path)
