"""Dense training, and the compress -> BN recalibration -> evaluate -> fine-tune -> evaluate sequence.

Every policy starts from the same dense checkpoint and gets the same fine-tuning: optimizer, learning
rate schedule, number of steps and seed (hence the same batches in the same order).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from par_lightning.compression.plan import CompressionPlan
from par_lightning.module import PARModule

from .config import QualityConfig
from .evaluation import Batch, Evaluator


def make_trainer(
    cfg: QualityConfig, *, max_epochs: int | None = None, max_steps: int = -1, clip: float
) -> L.Trainer:
    """A quiet Trainer: no logger, checkpoints, validation or progress bar (the benchmark evaluates itself)."""
    cuda = cfg.device.startswith("cuda")
    return L.Trainer(
        accelerator="gpu" if cuda else "cpu", devices=1, precision=cfg.precision,  # type: ignore[arg-type]
        max_epochs=max_epochs, max_steps=max_steps, limit_val_batches=0, num_sanity_val_steps=0,
        gradient_clip_val=clip, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip


def train_dense(cfg: QualityConfig, datamodule: Any, seed: int, checkpoint: Path) -> tuple[PARModule, float]:
    """Train the uncompressed model from scratch (AdamW, cosine over the epochs) and save its checkpoint."""
    L.seed_everything(seed, workers=True, verbose=False)
    m, t = cfg.model, cfg.train
    module = PARModule(
        arch=m.arch, backbone=m.backbone, num_attributes=datamodule.num_attributes,
        attribute_names=datamodule.attribute_names, pos_ratios=datamodule.pos_ratios,
        model_kwargs=m.model_kwargs, loss=m.loss,  # type: ignore[arg-type]
        optimizer=functools.partial(torch.optim.AdamW, lr=t.lr, weight_decay=t.weight_decay),
        lr_scheduler=functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=t.epochs),
        channels_last=m.channels_last,
    )  # fmt: skip
    trainer = make_trainer(cfg, max_epochs=t.epochs, clip=t.gradient_clip_val)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - start
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(checkpoint, weights_only=True)  # Lightning writes through a temporary file
    return module, seconds


@dataclass(frozen=True)
class EvalData:
    """The cached batches every policy is measured and recalibrated on."""

    val: Sequence[Batch]
    test: Sequence[Batch]
    recalibration: Sequence[Batch]


def _both(evaluator: Evaluator, net: torch.nn.Module, data: EvalData) -> dict[str, float]:
    val, test = evaluator.metrics(net, data.val), evaluator.metrics(net, data.test)
    return {f"val_{k}": v for k, v in val.items()} | {f"test_{k}": v for k, v in test.items()}


def compress_and_finetune(
    cfg: QualityConfig,
    checkpoint: Path,
    plan: CompressionPlan | None,
    datamodule: Any,
    evaluator: Evaluator,
    data: EvalData,
    seed: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """From the dense checkpoint: swap in ``plan`` at full CP effort (``None``: stay dense), recalibrate
    BN, measure, fine-tune ``finetune.steps`` steps, measure again."""
    module = PARModule.load_from_checkpoint(checkpoint, map_location=cfg.device)
    f = cfg.finetune
    module.optimizer_factory = functools.partial(torch.optim.AdamW, lr=f.lr, weight_decay=f.weight_decay)
    module.scheduler_factory = functools.partial(
        torch.optim.lr_scheduler.CosineAnnealingLR, T_max=max(f.steps, 1)
    )
    module.scheduler_interval = "step"
    record: dict[str, Any] = {"apply_seconds": 0.0}
    if plan is not None:
        start = time.perf_counter()
        cp_kwargs = {"als_iters": cfg.final_als_iters, "epc_sweeps": cfg.final_epc_sweeps, "seed": seed}
        module.apply_compression(plan, cp_kwargs=cp_kwargs)
        evaluator.recalibrate(module.model, data.recalibration)
        record["apply_seconds"] = time.perf_counter() - start
    record["after_swap"] = _both(evaluator, module.model, data)
    log(
        f"    after swap: val mA {record['after_swap']['val_mA']:.4f}, test mA {record['after_swap']['test_mA']:.4f}"
    )
    start = time.perf_counter()
    if f.steps > 0:
        L.seed_everything(seed, workers=True, verbose=False)
        make_trainer(cfg, max_steps=f.steps, clip=f.gradient_clip_val).fit(module, datamodule=datamodule)
    record["finetune_seconds"] = time.perf_counter() - start
    module.to(cfg.device)
    record["final"] = _both(evaluator, module.model, data)
    record["params_applied"] = sum(p.numel() for p in module.model.parameters())
    log(
        f"    after {f.steps} fine-tuning steps ({record['finetune_seconds']:.0f} s): "
        f"val mA {record['final']['val_mA']:.4f}, test mA {record['final']['test_mA']:.4f}"
    )
    return record
