"""``--ckpt_path auto`` picks the newest checkpoint of the run: a stale hpc checkpoint must not win."""

from __future__ import annotations

import os
from pathlib import Path

from par_lightning.resume import newest_checkpoint, run_checkpoints


def _touch(path: Path, mtime: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, ns=(mtime, mtime))
    return path


def test_newest_of_hpc_and_checkpoint_dirs(tmp_path: Path) -> None:
    root, ckpt = tmp_path / "run", tmp_path / "run" / "checkpoints"
    hpc1 = _touch(root / "hpc_ckpt_1.ckpt", 1_000)
    last = _touch(ckpt / "last.ckpt", 3_000)  # written after the first requeue: newer than hpc_ckpt_1
    _touch(ckpt / "best.ckpt", 2_000)
    _touch(root / "notes.txt", 9_000)  # not a checkpoint
    _touch(root / "other.ckpt", 9_000)  # not an hpc checkpoint, not in a checkpoint directory
    found = run_checkpoints(root, [ckpt])
    assert set(found) == {hpc1, last, ckpt / "best.ckpt"}
    assert (
        newest_checkpoint(found) == last
    )  # a node failure after the first requeue: last.ckpt, not hpc_ckpt_1
    hpc2 = _touch(root / "hpc_ckpt_2.ckpt", 4_000)
    assert newest_checkpoint(run_checkpoints(root, [ckpt])) == hpc2  # a second requeue signal


def test_nothing_to_resume(tmp_path: Path) -> None:
    assert newest_checkpoint(run_checkpoints(tmp_path / "absent", [tmp_path / "absent_too"])) is None
    assert newest_checkpoint([tmp_path / "gone.ckpt"]) is None
