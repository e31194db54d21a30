"""A full disk under the atomic writers (project issue 19, "Faults and hostile inputs").

A small tmpfs (root only: skipped otherwise, with the reason) is the output location of a
checkpoint, a predictions/Parquet file, the HTML report and an image array, each bigger
than the tmpfs. Each write must fail with one :class:`DiskFullError` naming the file and
the mount, leave the previous file (or none) and no temporary file, and once space is
freed (remount bigger, or delete a filler file) write the same bytes as on a normal disk.
The errno-level cases (quota, an errno hidden behind another exception) run everywhere.
"""

from __future__ import annotations

import errno
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prunebias import io
from prunebias.io import DiskFullError, atomic_path

SMALL = "256k"  # the full disk: every BIG object below is 2-3x this size
BIG_ROWS = 80_000  # float64 values: 640 kB, incompressible (random)


def _mount(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    if sys.platform != "linux":
        pytest.skip(f"needs Linux tmpfs, this is {sys.platform}")
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (run the tests as root to check a full disk)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"could not mount a tmpfs at {where}: {done.stderr.strip() or done.returncode}")


@pytest.fixture
def disk(tmp_path):
    """A mounted ``SMALL`` tmpfs; unmounted at teardown whatever the test did."""
    where = tmp_path / "disk"
    _mount(where, SMALL)
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def remount(where: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True, capture_output=True)


def _torch_big():
    import torch

    g = torch.Generator().manual_seed(0)
    return {"state_dict": {"w": torch.randn(BIG_ROWS, generator=g), "b": torch.zeros(3)}, "epoch": 7}


def _torch_small():
    import torch

    return {"state_dict": {"w": torch.ones(4)}, "epoch": 1}


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "id": [f"{i:06d}.jpg" for i in range(n)],
            "Male": rng.normal(size=n).astype(np.float32),
            "Young": rng.normal(size=n),
        }
    )


def _html(n: int) -> str:
    body = "".join(f"<p>modèle {i}: Ω = {i * 0.37:.4f}</p>\n" for i in range(n))
    return '<!doctype html>\n<meta charset="utf-8">\n' + body


# (writer, big object, small object, file name): the writers of the three artifacts, plus the image array.
WRITERS = {
    "checkpoint": (io.save_torch, _torch_big, _torch_small, "model.pt"),
    "predictions": (
        lambda df, p: io.write_parquet(df, p, metadata={"split": "test", "seed": 1}),
        lambda: _frame(BIG_ROWS // 2),
        lambda: _frame(5),
        "test.parquet",
    ),
    "report": (io.write_text, lambda: _html(20_000), lambda: _html(3), "report.html"),
    "image-array": (
        io.save_array,
        lambda: np.random.default_rng(1).normal(size=BIG_ROWS),
        lambda: np.zeros(3),
        "images.npy",
    ),
}


def assert_one_clear_error(exc: DiskFullError, dest: Path, mount: Path) -> None:
    msg = str(exc)
    assert isinstance(exc, OSError) and exc.errno == errno.ENOSPC and exc.filename == str(dest)
    assert msg.startswith(f"{dest}: no space left on device while writing (only ")
    assert f"bytes free on {mount}); free space and rerun" in msg, msg
    assert "\n" not in msg and "Errno" not in msg
    assert exc.__suppress_context__ and exc.__cause__ is None  # one error, not a chain


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("free_by", ["remount", "delete-filler"])
@pytest.mark.parametrize("kind", list(WRITERS))
def test_full_disk_fails_cleanly_and_the_rerun_writes_the_same_bytes(disk, tmp_path, kind, free_by):
    write, big, small, name = WRITERS[kind]
    reference = tmp_path / "normal" / name
    write(big(), reference)  # the same write on a normal disk
    filler = disk / "filler.bin"
    if free_by == "delete-filler":  # a bigger disk that something else has filled
        remount(disk, "2m")
        filler.write_bytes(b"\0" * (2**21 - 2**17))  # 128 kB left
    dest = disk / "out" / name
    write(small(), dest)  # a previous version that fits
    before = dest.read_bytes()
    kept = files_in(dest.parent)

    with pytest.raises(DiskFullError) as err:
        write(big(), dest)
    assert_one_clear_error(err.value, dest, disk)
    assert files_in(dest.parent) == kept == [name], "a partial or temporary file was left behind"
    assert dest.read_bytes() == before, "the previous file was damaged"

    if free_by == "remount":
        remount(disk, "4m")
    else:
        filler.unlink()
    write(big(), dest)
    assert files_in(dest.parent) == [name]
    assert dest.read_bytes() == reference.read_bytes()


def test_cli_reports_a_full_disk_in_one_line(disk, tmp_path):
    src = tmp_path / "A.parquet"
    io.write_parquet(_frame(BIG_ROWS // 2), src)
    out = disk / "x.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "prunebias.cli", "concat", "--inputs", str(src), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"prunebias concat: error: {out}: no space left on device while writing")
    assert lines[0].endswith("free space and rerun")
    assert files_in(disk) == []


# ----------------------------------------------------------- injected errnos (no root needed)
@pytest.mark.parametrize(
    "fault, words",
    [
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk quota exceeded while writing"),
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on device while writing"),
    ],
    ids=["quota", "enospc"],
)
def test_injected_full_disk_errors_name_the_file(tmp_path, fault, words):
    dest = tmp_path / "t.parquet"
    with pytest.raises(DiskFullError) as err:
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"partial")
            raise fault
    assert str(err.value).startswith(f"{dest}: {words} (only ") and "rerun" in str(err.value)
    assert err.value.errno == fault.errno
    assert files_in(tmp_path) == []
    again = pickle.loads(pickle.dumps(err.value))  # crosses process pools intact
    assert type(again) is DiskFullError and str(again) == str(err.value)


def test_errno_behind_another_exception_is_found(tmp_path):
    """torch.save reports a failed write as a RuntimeError raised while handling the OSError."""
    dest = tmp_path / "model.pt"
    with pytest.raises(DiskFullError, match="model.pt: no space left on device"):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"partial")
            try:
                raise OSError(errno.ENOSPC, "No space left on device")
            except OSError:
                raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos 704 vs 598") from None
    assert files_in(tmp_path) == []


def test_other_write_errors_pass_through_unchanged(tmp_path):
    dest = tmp_path / "x.txt"
    for fault in (OSError(errno.EACCES, "Permission denied"), OSError("not a space problem"), RuntimeError("boom")):
        with pytest.raises(type(fault)) as err:
            with atomic_path(dest) as tmp:
                tmp.write_text("partial")
                raise fault
        assert err.value is fault and not isinstance(err.value, DiskFullError)
        assert files_in(tmp_path) == []


def test_nested_atomic_paths_report_the_inner_file(tmp_path):
    outer, inner = tmp_path / "images.npy", None
    with pytest.raises(DiskFullError) as err:
        with atomic_path(outer) as tmp:
            with atomic_path(tmp) as compact:
                inner = compact
                raise OSError(errno.ENOSPC, "No space left on device")
    assert str(err.value).startswith(f"{tmp}: no space left")
    assert inner is not None and files_in(tmp_path) == []


def test_cli_catches_disk_full(monkeypatch, capsys, tmp_path):
    from prunebias import cli, jobs

    def full(inputs, out):
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jobs, "concat_tables", full)
    out = tmp_path / "x.parquet"
    assert cli.main(["concat", "--inputs", "a.parquet", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"prunebias concat: error: {out}: no space left on device") and err.count("\n") == 1
    assert files_in(tmp_path) == []
