"""``python -m tests.scripts.compress_fit fit --config X.yaml ...``: the CLI plus a state-dumping callback.

Subprocess tests (DDP, SIGKILL/resume) cannot look inside the training processes, so the YAML adds
``tests.scripts.compress_fit.StateDump``, which writes what the tests compare (plan, weights, whether
the optimizer and the DDP reducer hold exactly the model's parameters) to ``<dump_dir>/<tag>_rank<r>.pt``.
It runs as a module (``-m``) so that Lightning's DDP launcher re-executes it the same way for rank 1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from par_lightning.cli import main
from tests.cli_helpers import tiny_config

REPO = Path(__file__).resolve().parents[2]

# Small enough for a test on a busy 2-core machine: three layers of different kinds (a 3x3 conv, a 1x1
# conv, the linear classifier) and a low ``tau`` so that some get factorized (the tests assert it).
FAST_COMPRESSION = {
    "include": ["backbone.layer4.0.conv2", "backbone.layer3.0.conv3", "classifier"],
    "min_params": 0,
    "grid_steps": 3,
    "calibration_batches": 2,
    "bn_recalibration_batches": 2,
    "search_als_iters": 10,
    "search_epc_sweeps": 3,
    "final_als_iters": 20,
    "final_epc_sweeps": 3,
    "tau": 0.5,
    "eval_batches": 2,
    "warmup_steps": 3,
}


def compress_config(
    tmp_path: Path,
    *,
    logger: str = "csv",
    max_epochs: int = 3,
    devices: int = 1,
    compression: dict[str, Any] | None = None,
    epoch_sleep: float = 0.0,
) -> Path:
    """The tiny experiment YAML plus ``GradientRankCompression`` and ``StateDump`` (into ``tmp_path/dump``)."""
    path = tiny_config(tmp_path, logger=logger, max_epochs=max_epochs)
    config = yaml.safe_load(path.read_text())
    trainer = config["trainer"]
    trainer["devices"] = devices
    if devices > 1:
        trainer["strategy"] = "ddp"  # find_unused_parameters stays False: the old layers must be gone
    trainer["callbacks"] += [
        {
            "class_path": "callbacks.GradientRankCompression",
            "init_args": {**FAST_COMPRESSION, **(compression or {"compress_at_epoch": 1})},
        },
        {
            "class_path": "tests.scripts.compress_fit.StateDump",
            "init_args": {"dump_dir": str(tmp_path / "dump"), "epoch_sleep": epoch_sleep},
        },
    ]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def fit_command(config: Path, *extra: str) -> list[str]:
    """The command line of a fit through this script (``-m``: DDP's launcher re-runs it the same way)."""
    return [sys.executable, "-m", "tests.scripts.compress_fit", "fit", "--config", str(config), *extra]


def fit_env() -> dict[str, str]:
    """One thread per process (2 DDP ranks share a busy machine); the repo importable; no W&B network."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"}


def start_fit(config: Path, *extra: str) -> subprocess.Popen[str]:
    """Start a fit in its own session (process group), so a test can kill it together with its DDP ranks."""
    return subprocess.Popen(
        fit_command(config, *extra),
        cwd=REPO,
        env=fit_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the process group this module started (the fit and any DDP rank it launched)."""
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(proc.pid, signal.SIGKILL)


def run_fit(config: Path, *extra: str, timeout: float) -> tuple[int, str]:
    """Run a fit to the end; ``(returncode, output)``, returncode -9 and a note when it timed out."""
    proc = start_fit(config, *extra)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, _ = proc.communicate()
        return -signal.SIGKILL, f"{out}\n[compress_fit: killed after the {timeout} s timeout]"
    return proc.returncode, out


def load_dump(tmp_path: Path, tag: str, rank: int = 0) -> dict[str, Any]:
    """One record written by :class:`StateDump` (plain types and tensors: ``weights_only`` loads it)."""
    return torch.load(tmp_path / "dump" / f"{tag}_rank{rank}.pt", weights_only=True)


def _trainable_ids(module: torch.nn.Module) -> set[int]:
    return {id(p) for p in module.parameters() if p.requires_grad}


def _plan_stages(pl_module: Any) -> int:
    plan = pl_module.compression_plan
    return 0 if plan is None else len(plan.meta.get("stages", []))


class StateDump(Callback):
    """Dump the model state at fit start, right after each swap, one step later and at the end.

    Put it after ``GradientRankCompression`` in ``trainer.callbacks`` so its epoch/batch hooks run
    after the swap. ``epoch_sleep`` slows every epoch down, so that a test can kill the process mid-fit.
    """

    def __init__(self, dump_dir: str, epoch_sleep: float = 0.0) -> None:
        super().__init__()
        self.dump_dir = Path(dump_dir)
        self.epoch_sleep = epoch_sleep
        self._stages_seen = -1
        self._step_after_swap: int | None = None

    def _dump(self, tag: str, trainer: L.Trainer, pl_module: Any) -> None:
        optimizer_ids = {id(p) for opt in trainer.optimizers for g in opt.param_groups for p in g["params"]}
        wrapped = trainer.strategy.model
        reducer_params = getattr(wrapped, "_module_parameters", None)  # torch DDP internals; None if absent
        plan = pl_module.compression_plan
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "epoch": trainer.current_epoch,
            "global_step": trainer.global_step,
            "plan": None if plan is None else plan.to_dict(),
            "state": {k: v.detach().cpu().clone() for k, v in pl_module.model.state_dict().items()},
            "param_names": [n for n, _ in pl_module.model.named_parameters()],
            "layer_types": {n: type(m).__name__ for n, m in pl_module.model.named_modules()},
            "optimizer_matches_model": optimizer_ids == _trainable_ids(pl_module),
            "ddp_wrapped": isinstance(wrapped, torch.nn.parallel.DistributedDataParallel),
            "ddp_params_match": None
            if reducer_params is None
            else {id(p) for p in reducer_params} == _trainable_ids(pl_module),
            "lr": [g["lr"] for opt in trainer.optimizers for g in opt.param_groups],
        }
        self.dump_dir.mkdir(parents=True, exist_ok=True)
        path = self.dump_dir / f"{tag}_rank{trainer.global_rank}.pt"
        torch.save(record, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._stages_seen = _plan_stages(pl_module)
        self._dump("start", trainer, pl_module)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._after_possible_swap(trainer, pl_module)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, i: int
    ) -> None:
        if self._step_after_swap is not None and trainer.global_step > self._step_after_swap:
            self._dump("step_after_swap", trainer, pl_module)
            self._step_after_swap = None
        self._after_possible_swap(trainer, pl_module)

    def _after_possible_swap(self, trainer: L.Trainer, pl_module: Any) -> None:
        stages = _plan_stages(pl_module)
        if stages != self._stages_seen:
            self._stages_seen = stages
            self._step_after_swap = trainer.global_step
            self._dump(f"swap{stages}", trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self.epoch_sleep > 0:
            time.sleep(self.epoch_sleep)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._dump("end", trainer, pl_module)


if __name__ == "__main__":
    main()
