"""A compressing ``fit`` on a GPU: the callback's swap under bf16-mixed precision on CUDA, timed.

Usage::

    python benchmarks/gpu_compression_fit.py --data /tmp/syn --synthesize 6000   # needs CUDA

Trains the quickstart model (strong baseline, test_resnet, 128x64) for ``--epochs`` epochs on a
PA-100K-format root with ``GradientRankCompression`` at the start of ``--compress-at``, then checks
that every factorized layer lives on the GPU in float32 (bf16 only inside autocast), that the
optimizer holds exactly the model's parameters, and that training went on. Prints and writes
``benchmarks/results/gpu_compression_fit.json``: mA before/after the swap and at the end, params and
MACs, the compression time and the epoch times.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import lightning as L  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402

from benchmarks.machine import describe  # noqa: E402
from callbacks.gradient_compression import GradientRankCompression  # noqa: E402
from data_modules import PA100KDataModule  # noqa: E402
from par_lightning.module import PARModule  # noqa: E402


class SwapProbe(L.Callback):
    """Where the factors live and what the optimizer holds, on the first training batch after the swap.

    Checked during training: Lightning moves the module back to the CPU when ``fit`` ends.
    """

    def __init__(self) -> None:
        self.seen: dict[str, object] | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        plan = getattr(pl_module, "compression_plan", None)
        if self.seen is not None or plan is None:
            return
        factors = [p for n in plan.layers for p in pl_module.model.get_submodule(n).parameters()]
        held = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
        trainable = {id(p) for p in pl_module.parameters() if p.requires_grad}
        self.seen = {
            "factor_devices": sorted({str(p.device) for p in factors}),
            "factor_dtypes": sorted({str(p.dtype) for p in factors}),
            "optimizer_holds_exactly_the_model_params": held == trainable,
            "first_step_after_swap": trainer.global_step,
        }


class EpochTimer(L.Callback):
    """Wall time of every training epoch (validation included)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.times.append(time.perf_counter() - self._start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="PA-100K-format root")
    p.add_argument("--synthesize", type=int, default=0, help="generate this many images there first")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--compress-at", type=int, default=5)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "gpu_compression_fit.json")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: this check needs a GPU")
        return 2
    machine = describe()
    dm = PA100KDataModule(
        root=args.data, synthesize=args.synthesize > 0, synth_num_images=args.synthesize or 6000,
        height=128, width=64, pad=6, batch_size=64, num_workers=8,
    )  # fmt: skip
    dm.prepare_data()  # writes the synthetic set first, so pos_ratios can be read
    L.seed_everything(0)
    module = PARModule(
        arch="baseline", backbone="test_resnet", num_attributes=dm.num_attributes, pos_ratios=dm.pos_ratios,
        channels_last=True,
        optimizer=lambda params: torch.optim.AdamW(params, lr=2e-3, weight_decay=5e-4),
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs),
    )  # fmt: skip
    compression = GradientRankCompression(
        compress_at_epoch=args.compress_at, bn_recalibration_batches=20, warmup_steps=50
    )
    timer, probe = EpochTimer(), SwapProbe()
    out_dir = Path("/tmp/gpu_compression_fit")
    trainer = L.Trainer(
        accelerator="gpu", devices=1, precision="bf16-mixed", max_epochs=args.epochs,
        default_root_dir=str(out_dir), logger=CSVLogger(str(out_dir)), callbacks=[compression, timer, probe],
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
    )  # fmt: skip
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    fit_s = time.perf_counter() - start
    plan = module.compression_plan
    assert plan is not None and plan.layers, "no layer was factorized"
    assert probe.seen is not None, "no training batch ran after the swap"
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    rows = csv_rows(Path(trainer.logger.log_dir) / "metrics.csv")
    swap = next(r for r in rows if r.get("compression/after_swap/val_mA"))
    result = {
        "machine": machine,
        "command": "python benchmarks/gpu_compression_fit.py " + " ".join(argv or sys.argv[1:]),
        **probe.seen,
        "layers_factorized": len(plan.layers),
        "before_swap_val_mA": float(swap["compression/before_swap/val_mA"]),
        "after_swap_val_mA": float(swap["compression/after_swap/val_mA"]),
        "final_val_mA": metrics.get("val/mA"),
        "params_after": int(float(swap["model/params"])),
        "macs_after": int(float(swap["model/macs"])),
        "compression_seconds": float(swap["compression/seconds"]),
        "epoch_seconds": timer.times,
        "fit_seconds": fit_s,
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    seen = probe.seen
    ok = seen["factor_devices"] == ["cuda:0"] and seen["factor_dtypes"] == ["torch.float32"]
    ok = ok and bool(seen["optimizer_holds_exactly_the_model_params"])
    print(
        "OK" if ok else "FAILED: factors must be on cuda:0 in float32 and the optimizer must hold the model"
    )
    return 0 if ok else 1


def csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSVLogger ``metrics.csv``."""
    with path.open() as f:
        return list(csv.DictReader(f))


if __name__ == "__main__":
    raise SystemExit(main())
