import stat
import subprocess
import sys
import textwrap

import pytest
import torch

from prunebias.training import devices


def test_two_leases_get_different_devices_and_a_released_one_is_reused(tmp_path):
    first, h1 = devices.acquire(2, tmp_path)
    second, h2 = devices.acquire(2, tmp_path)
    assert {first, second} == {0, 1}
    h1.close()
    again, h3 = devices.acquire(2, tmp_path)
    assert again == first
    h2.close(), h3.close()


def test_lock_directory_and_files_serve_every_user(tmp_path):
    directory = tmp_path / "locks"
    _, handle = devices.acquire(1, directory)
    # Sticky and world-writable like /tmp; lock files opened read-only, so a file another
    # user created (mode from their umask) can still be locked.
    assert stat.S_IMODE(directory.stat().st_mode) == 0o1777
    assert handle.mode == "r"
    handle.close()


def test_no_free_device_times_out_with_a_clear_message(tmp_path):
    _, held = devices.acquire(1, tmp_path)
    with pytest.raises(TimeoutError, match="all 1 GPUs are leased.*gpu=1"):
        devices.acquire(1, tmp_path, timeout=0.2, poll=0.05)
    held.close()


def test_leases_are_exclusive_across_processes(tmp_path):
    holder = textwrap.dedent(f"""
        import sys, time
        from prunebias.training import devices
        index, handle = devices.acquire(2, {str(tmp_path)!r})
        print(index, flush=True)
        sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        theirs = int(proc.stdout.readline())
        mine, handle = devices.acquire(2, tmp_path, timeout=5)
        assert mine != theirs
        handle.close()
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    # The holder exited: its lease is free again.
    index, handle = devices.acquire(1, tmp_path, timeout=5)
    assert index == 0
    handle.close()


def test_auto_without_cuda_is_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.select_device("auto") == torch.device("cpu")
    assert devices.select_device("cpu") == torch.device("cpu")


def test_auto_with_gpus_leases_one(monkeypatch, tmp_path):
    monkeypatch.setenv(devices.LOCK_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    held_before = len(devices._held)
    try:
        a, b = devices.select_device("auto"), devices.select_device("auto")
        assert {a, b} == {torch.device("cuda:0"), torch.device("cuda:1")} and chosen == [0, 1]
    finally:
        for handle in devices._held[held_before:]:
            handle.close()
        del devices._held[held_before:]


def test_lock_files_are_named_by_physical_gpu(monkeypatch, tmp_path):
    # Two runs pinned to disjoint GPUs (CUDA_VISIBLE_DEVICES=0,1 and 2,3) both see devices 0 and 1:
    # named by physical id, their leases do not collide.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert devices.physical_ids(2) == ["2", "3"]
    _, other_run = devices.acquire(2, tmp_path, ids=["0", "1"])
    _, other_run2 = devices.acquire(2, tmp_path, ids=["0", "1"])
    index, mine = devices.acquire(2, tmp_path, timeout=0, ids=devices.physical_ids(2))
    assert index == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["gpu0.lock", "gpu1.lock", "gpu2.lock"]
    for handle in (other_run, other_run2, mine):
        handle.close()


def test_physical_ids_fall_back_to_indices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert devices.physical_ids(3) == ["0", "1", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-uuid-a")  # disagrees with the count: use indices
    assert devices.physical_ids(2) == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-GPU-abc/1/0")
    assert devices.physical_ids(1) == ["MIG-GPU-abc_1_0"]
