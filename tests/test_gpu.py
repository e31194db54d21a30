"""The GPU training path: no host syncs in the step, both image placements, bf16 inference.

Skipped without CUDA (CI has none); on a GPU machine: ``pytest -m gpu``.
"""

import numpy as np
import pytest
import torch
from torch import nn

from prunebias.settings import Optimizer
from prunebias.training import devices
from prunebias.training.models import build_model
from prunebias.training.pruning import MaskSet
from prunebias.training.train import TensorData, make_optimizer, model_to, predict_logits, train_step, training_batch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CUDA = torch.device("cuda")


def tensor_data(device, n=64, side=20, attributes=5):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
    return TensorData.from_arrays(images, rng.random((n, attributes)) < 0.5, device)


def test_training_steps_never_wait_for_the_gpu():
    data = tensor_data(CUDA)
    model = model_to(build_model("small_cnn", 5, 16), CUDA)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)
    optimizer = make_optimizer(model.parameters(), Optimizer("sgd", 0.01, 0.9, 0.0, False, False), CUDA)
    masks = MaskSet.from_model(model, 0.5)
    loss_fn = nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(0)
    train_step(model, optimizer, loss_fn, *training_batch(data, torch.arange(16), 16, 1, True, gen), masks)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any blocking copy, .item() or sync raises
    try:
        for b in range(1, 4):
            idx = torch.arange(16 * b, 16 * b + 16)
            loss = train_step(model, optimizer, loss_fn, *training_batch(data, idx, 16, 1, True, gen), masks)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.isfinite(loss).item()
    assert all(torch.equal(p[~m], torch.zeros_like(p[~m])) for p, m in zip(masks.params, masks.masks))


def test_host_resident_images_give_the_same_batches(monkeypatch):
    resident = tensor_data(CUDA)
    assert resident.images.is_cuda
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (0, 0))  # "no room on the GPU"
    host = tensor_data(CUDA)
    assert not host.images.is_cuda
    idx = torch.tensor([5, 1, 9, 1, 63])
    for on_gpu, from_host in zip(resident.batch(idx), host.batch(idx)):
        assert on_gpu.is_cuda and from_host.is_cuda and torch.equal(on_gpu, from_host)


def test_augmentation_draws_the_same_crops_on_gpu_and_cpu():
    idx = torch.arange(32)
    on_gpu, _ = training_batch(tensor_data(CUDA), idx, 16, 2, True, torch.Generator().manual_seed(3))
    on_cpu, _ = training_batch(tensor_data(torch.device("cpu")), idx, 16, 2, True, torch.Generator().manual_seed(3))
    torch.testing.assert_close(on_gpu.cpu(), on_cpu)


def test_bf16_inference_is_close_to_cpu_float32():
    torch.manual_seed(0)
    model = build_model("small_cnn", 5, 16).eval()
    cpu = predict_logits(model, tensor_data(torch.device("cpu")), 16, 32)
    gpu_model = build_model("small_cnn", 5, 16)
    gpu_model.load_state_dict(model.state_dict())
    gpu = predict_logits(model_to(gpu_model, CUDA), tensor_data(CUDA), 16, 32)
    assert gpu.dtype == np.float32 and gpu.shape == cpu.shape
    np.testing.assert_allclose(gpu, cpu, atol=0.05 * np.abs(cpu).max() + 1e-3)


def test_auto_device_leases_a_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv(devices.LOCK_DIR_ENV, str(tmp_path))
    device = devices.select_device("auto")
    assert device.type == "cuda" and torch.cuda.current_device() == device.index
    assert any(tmp_path.glob("gpu*.lock"))
