"""``--ckpt_path auto``: resume a fit from the newest checkpoint of its run, whichever callback wrote it.

Lightning resumes a requeued SLURM job from its newest ``hpc_ckpt_<n>.ckpt`` when ``ckpt_path`` is unset,
but an hpc checkpoint is only written on the requeue signal: after a node failure (no signal) the job
would restart from an old hpc checkpoint, or from scratch, although ``last.ckpt`` is newer. ``auto``
takes the newest file among the hpc checkpoints and every ``ModelCheckpoint`` directory, and starts
fresh when there is none, so the same command line serves the first start and every restart.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

AUTO = "auto"


def newest_checkpoint(paths: Iterable[Path]) -> Path | None:
    """The most recently modified existing ``*.ckpt`` of ``paths`` (``None`` when there is none)."""
    existing = [p for p in paths if p.suffix == ".ckpt" and p.is_file()]
    return max(existing, key=lambda p: p.stat().st_mtime_ns, default=None)


def run_checkpoints(root_dir: Path, checkpoint_dirs: Iterable[Path]) -> list[Path]:
    """The hpc checkpoints in ``root_dir`` (where Lightning's requeue handler writes them) and all ``*.ckpt``
    files of the given checkpoint directories."""
    found = sorted(root_dir.glob("hpc_ckpt_*.ckpt"))
    for directory in checkpoint_dirs:
        found += sorted(directory.glob("*.ckpt"))
    return found


def resolve_auto(trainer: Trainer) -> str | None:
    """The checkpoint ``--ckpt_path auto`` means for this trainer (``None``: start from scratch).

    ``ModelCheckpoint`` callbacks without an explicit ``dirpath`` are not searched: their directory is
    only decided at fit start and usually contains a new logger version per run.
    """
    dirs = [
        Path(cb.dirpath)
        for cb in trainer.callbacks  # type: ignore[attr-defined]
        if isinstance(cb, ModelCheckpoint) and cb.dirpath is not None
    ]
    newest = newest_checkpoint(run_checkpoints(Path(trainer.default_root_dir), dirs))
    return None if newest is None else str(newest)
