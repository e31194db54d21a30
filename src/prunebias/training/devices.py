"""GPU leases: with N GPUs on one machine, N jobs run at once, each on its own device.

Snakemake limits how many GPU jobs run at once (``resources: gpu=N`` in profiles/gpu, each
training job asking ``gpu=1``) but does not say *which* GPU a job gets. A job therefore
leases one: it takes an exclusive, non-blocking ``flock`` on one of N lock files and holds
it for its lifetime (the kernel drops it when the process ends, killed or not). With the
resource limit in place a lease is always free; without it, a job waits for one.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import IO

import torch

LOCK_DIR_ENV = "PRUNEBIAS_GPU_LOCK_DIR"
DEFAULT_LOCK_DIR = "/tmp/prunebias-gpu-locks"

_held: list[IO] = []  # open lock files of this process: the leases last as long as it does


def lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV, DEFAULT_LOCK_DIR))


def physical_ids(n_devices: int) -> list[str]:
    """Machine-wide names of the ``n_devices`` visible GPUs, for the lock file names.

    Under ``CUDA_VISIBLE_DEVICES=4,5`` visible device 0 is physical GPU 4: locking it as
    "gpu4" keeps runs pinned to disjoint GPU subsets from blocking each other.
    """
    # Entries may be indices or UUIDs (old MIG ones contain "/"): keep them file-name safe.
    visible = [v.strip().replace("/", "_") for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return visible if len(visible) == n_devices else [str(i) for i in range(n_devices)]


def _shared_dir(directory: Path) -> None:
    """Create the lock directory writable by every user (sticky, like /tmp): all users of a
    machine lease from the same lock files, and the first one's umask must not lock out the rest."""
    try:
        directory.mkdir(parents=True)
    except FileExistsError:
        return
    os.chmod(directory, 0o1777)


def acquire(
    n_devices: int,
    directory: str | os.PathLike | None = None,
    timeout: float = 3600,
    poll: float = 1.0,
    ids: list[str] | None = None,
):
    """Lease one of ``n_devices`` devices; return ``(index, lock file)``. Close the file to release it.

    ``ids`` name the devices' lock files (default ``0 .. n_devices - 1``). Raises TimeoutError
    naming the lock directory when no device frees up within ``timeout`` s.
    """
    if n_devices < 1:
        raise ValueError(f"n_devices must be positive, got {n_devices}")
    ids = [str(i) for i in range(n_devices)] if ids is None else ids
    if len(ids) != n_devices:
        raise ValueError(f"ids must name {n_devices} devices, got {ids}")
    directory = Path(directory) if directory is not None else lock_dir()
    _shared_dir(directory)
    deadline = time.monotonic() + timeout
    while True:
        for index in range(n_devices):
            # Read-only is enough for flock, so another user's lock file can be leased too.
            handle = os.fdopen(os.open(directory / f"gpu{ids[index]}.lock", os.O_RDONLY | os.O_CREAT, 0o666))
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return index, handle
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"all {n_devices} GPUs are leased by other jobs (lock files in {directory}); "
                f"run at most {n_devices} GPU jobs at once (resources: gpu={n_devices}, see profiles/gpu)"
            )
        time.sleep(poll)


def send(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU ``tensor`` on ``device``, without making the host wait for a GPU.

    ``.to("cuda")`` from pageable memory waits until the copy is done, which would stall the
    host once per batch; staged through pinned memory the copy is queued behind the running
    kernels instead. PyTorch keeps the pinned block alive until the copy has finished.
    """
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def select_device(name: str = "auto") -> torch.device:
    """``auto``: a leased GPU when CUDA is available, else the CPU; any other name as given."""
    if name != "auto":
        return torch.device(name)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    count = torch.cuda.device_count()
    index, handle = acquire(count, ids=physical_ids(count))
    _held.append(handle)
    torch.cuda.set_device(index)
    return torch.device(f"cuda:{index}")
