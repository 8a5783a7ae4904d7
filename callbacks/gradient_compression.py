"""``GradientRankCompression``: gradient-aligned low-rank compression in the middle of a ``fit``.

At a configured epoch or global step the callback scores the rank grid of every target layer
(``par_lightning.compression.search``), picks ranks (per-layer threshold or a global budget), swaps
the factorized layers in, re-estimates BatchNorm statistics, rebuilds the optimizers from the
module's own ``configure_optimizers`` (surviving parameters keep their state, the schedule continues)
and training goes on. The maths lives in ``par_lightning.compression``; this file is the Lightning
order of events (spec lightning §2, compression §4).

DDP: global rank 0 searches, decomposes and re-estimates BN; the plan and the new weights are then
broadcast, every process rebuilds the same modules, and the model is re-wrapped in DDP.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from par_lightning.atomic_io import atomic_write_text
from par_lightning.compression.bn_recalibration import recalibrate_batchnorm
from par_lightning.compression.costs import count_module_costs
from par_lightning.compression.curves import Method
from par_lightning.compression.optimizer_transfer import (
    scale_step,
    snapshot_optimizer,
    transfer_optimizer_state,
    transfer_scheduler_state,
)
from par_lightning.compression.plan import CompressionPlan
from par_lightning.compression.prefix_cache import pipeline_stages
from par_lightning.compression.report import layer_rows, totals
from par_lightning.compression.report_render import plot_score_curves, render_text, rich_table
from par_lightning.compression.search import SearchOptions, score_layers
from par_lightning.compression.selection import Cost, plan_from_selection, select_budget, select_threshold
from par_lightning.compression.targets import select_layers

_SELECTIONS = ("threshold", "budget")
_BUDGET_METRICS = ("params", "macs")
_KXK_METHODS = ("cp3", "cp4")
_LAYER_TYPES = {"Conv2d": nn.Conv2d, "Linear": nn.Linear}


def _as_list(value: int | list[int] | None, name: str) -> list[int]:
    if value is None:
        return []
    items = [value] if isinstance(value, int) else list(value)
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in items):
        raise ValueError(f"{name} must be a non-negative int or a list of them, got {value!r}")
    if sorted(set(items)) != items:
        raise ValueError(f"{name} must be strictly increasing, got {items}")
    return items


class GradientRankCompression(Callback):
    """Compress the model mid-training by gradient-aligned rank selection, then keep training.

    Args:
        compress_at_epoch: epoch(s) at whose start a compression stage runs (e.g. ``[20]`` or ``[10, 20]``).
        compress_at_step: global step(s) after which a stage runs (alternative to ``compress_at_epoch``).
        include, exclude: glob patterns over module names (``model.named_modules()`` of the network).
        layer_types: ``Conv2d`` and/or ``Linear``.
        min_params: layers with fewer weights stay dense.
        skip_stem: keep the 3-channel input conv dense.
        kxk_method: ``cp3`` or ``cp4`` for k x k convolutions (1x1 convs and linear layers use SVD).
        selection: ``threshold`` (per-layer score >= ``tau``) or ``budget`` (a global reduction target).
        tau: score threshold of the per-layer rule (normalised score, spec compression §3.5).
        min_saving: a chosen rank must save at least this fraction of the layer's parameters.
        min_ref_score: layers whose reference-rank score is below this stay dense.
        budget_metric: ``params`` or ``macs`` for the global budget.
        budget_ratio: the budget rule's target: targeted layers' cost divided by this factor.
        calibration_batches: K, the batches the gradients are averaged over.
        calibration_batch_size: images per calibration batch (``None``: the DataModule's batch size).
        grid_steps: ranks per layer on the sqrt(2) grid below the parameter-neutral rank.
        search_als_iters, search_epc_sweeps: CP effort per candidate during the search.
        final_als_iters, final_epc_sweeps: CP effort at the chosen rank.
        bn_recalibration_batches: training batches (evaluation transform) to re-estimate BN statistics.
        warmup_steps: optimizer steps over which the new factors' updates ramp linearly to full size.
        eval_batches: validation batches for the before/after-swap metrics (0 disables them; ``None``: all).
        cp_device: device of the CP decompositions (``None``: the model's).
        seed: seed of the calibration order and of CP-ALS.
        reset_best_checkpoint: make every monitoring ``ModelCheckpoint`` forget its best scores at the
            swap, so "best" (and ``test_after_fit``) means the best *compressed* model.
        allow_mac_increase: keep a chosen rank even when the factorized layer costs more MACs than the
            dense one (CP3 of a strided conv runs its first 1x1 at the input resolution); default: dense.
    """

    def __init__(
        self,
        compress_at_epoch: int | list[int] | None = None,
        compress_at_step: int | list[int] | None = None,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        layer_types: list[str] | None = None,
        min_params: int = 4096,
        skip_stem: bool = True,
        kxk_method: str = "cp3",
        selection: str = "threshold",
        tau: float = 0.9,
        min_saving: float = 0.1,
        min_ref_score: float = 0.3,
        budget_metric: str = "params",
        budget_ratio: float = 3.0,
        calibration_batches: int = 8,
        calibration_batch_size: int | None = None,
        grid_steps: int = 9,
        search_als_iters: int = 100,
        search_epc_sweeps: int = 50,
        final_als_iters: int = 500,
        final_epc_sweeps: int = 300,
        bn_recalibration_batches: int = 100,
        warmup_steps: int = 200,
        eval_batches: int | None = None,
        cp_device: str | None = None,
        seed: int = 0,
        reset_best_checkpoint: bool = True,
        allow_mac_increase: bool = False,
    ) -> None:
        super().__init__()
        epochs = _as_list(compress_at_epoch, "compress_at_epoch")
        steps = _as_list(compress_at_step, "compress_at_step")
        if bool(epochs) == bool(steps):
            raise ValueError("give exactly one of compress_at_epoch or compress_at_step (an int or a list)")
        self.unit = "epoch" if epochs else "step"
        self.stages = epochs or steps
        if selection not in _SELECTIONS:
            raise ValueError(f"selection must be one of {_SELECTIONS}, got {selection!r}")
        if budget_metric not in _BUDGET_METRICS:
            raise ValueError(f"budget_metric must be one of {_BUDGET_METRICS}, got {budget_metric!r}")
        if kxk_method not in _KXK_METHODS:
            raise ValueError(f"kxk_method must be one of {_KXK_METHODS}, got {kxk_method!r}")
        types = layer_types if layer_types is not None else list(_LAYER_TYPES)
        unknown = [t for t in types if t not in _LAYER_TYPES]
        if unknown or not types:
            raise ValueError(f"layer_types must be a non-empty subset of {list(_LAYER_TYPES)}, got {types}")
        if not 0 < tau <= 1:
            raise ValueError(f"tau must be in (0, 1], got {tau}")
        if not budget_ratio > 1:
            raise ValueError(f"budget_ratio must be > 1 (the cost is divided by it), got {budget_ratio}")
        for name, value, low in (
            ("calibration_batches", calibration_batches, 1),
            ("grid_steps", grid_steps, 1),
            ("search_als_iters", search_als_iters, 1),
            ("search_epc_sweeps", search_epc_sweeps, 0),
            ("final_als_iters", final_als_iters, 1),
            ("final_epc_sweeps", final_epc_sweeps, 0),
            ("bn_recalibration_batches", bn_recalibration_batches, 0),
            ("warmup_steps", warmup_steps, 0),
            ("min_params", min_params, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if calibration_batch_size is not None and (
            isinstance(calibration_batch_size, bool)
            or not isinstance(calibration_batch_size, int)
            or calibration_batch_size < 1
        ):
            raise ValueError(
                f"calibration_batch_size must be None or an int >= 1, got {calibration_batch_size!r}"
            )
        if eval_batches is not None and (not isinstance(eval_batches, int) or eval_batches < 0):
            raise ValueError(f"eval_batches must be None or an int >= 0, got {eval_batches!r}")
        self.include = list(include or ["*"])
        self.exclude = list(exclude or [])
        self.layer_types = tuple(_LAYER_TYPES[t] for t in types)
        self.min_params, self.skip_stem, self.kxk_method = min_params, skip_stem, kxk_method
        self.selection, self.tau, self.min_saving, self.min_ref_score = (
            selection,
            tau,
            min_saving,
            min_ref_score,
        )
        self.budget_metric, self.budget_ratio = budget_metric, budget_ratio
        self.calibration_batches, self.grid_steps = calibration_batches, grid_steps
        self.calibration_batch_size = calibration_batch_size
        self.search_als_iters, self.search_epc_sweeps = search_als_iters, search_epc_sweeps
        self.final_als_iters, self.final_epc_sweeps = final_als_iters, final_epc_sweeps
        self.bn_recalibration_batches, self.warmup_steps = bn_recalibration_batches, warmup_steps
        self.eval_batches, self.cp_device, self.seed = eval_batches, cp_device, seed
        self.reset_best_checkpoint = reset_best_checkpoint
        self.allow_mac_increase = allow_mac_increase
        self.done = 0  # stages completed (checkpointed)
        self.warmup_done = 0  # optimizer steps since the last swap (checkpointed)
        self._new_params: list[nn.Parameter] = []
        self._before_step: list[torch.Tensor] | None = None
        self._costs: dict[str, int] = {}

    # ---- Lightning hooks -------------------------------------------------------------------------

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        for needed in ("model", "compute_loss", "apply_compression", "compression_plan"):
            if not hasattr(pl_module, needed):
                raise TypeError(
                    f"GradientRankCompression needs a PARModule-like LightningModule with `{needed}`; "
                    f"got {type(pl_module).__name__}"
                )
        for cb in getattr(trainer, "callbacks", []):  # set by Lightning's connector, not annotated
            if type(cb).__name__ in ("StochasticWeightAveraging", "WeightAveraging", "EMAWeightAveraging"):
                raise ValueError(
                    f"GradientRankCompression cannot run with {type(cb).__name__}: the averaged copy keeps the "
                    "dense layers and its parameter list no longer matches after the swap. Remove it, or "
                    "compress in one fit and average in a second fit started from the compressed checkpoint."
                )
        if hasattr(pl_module.model, "_orig_mod") or any(hasattr(m, "_orig_mod") for m in pl_module.modules()):
            raise ValueError(
                "GradientRankCompression cannot swap layers of a torch.compile'd model (guards and "
                "'_orig_mod.' keys break); compile only after the last compression stage, in a later fit"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done, "warmup_done": self.warmup_done}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.done = int(state_dict.get("done", 0))
        self.warmup_done = int(state_dict.get("warmup_done", 0))

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._costs = _model_costs(trainer, pl_module)  # logged every epoch: the drop shows in the curves
        plan = pl_module.compression_plan
        stages_in_model = len(plan.meta.get("stages", [])) if plan is not None else 0
        self.done = max(self.done, stages_in_model)  # a checkpoint without callback state
        if plan is not None and self.done > 0 and self.warmup_done < self.warmup_steps:
            last = plan.meta["stages"][-1]["layers"]
            self._new_params = self._params_of(pl_module, last)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.unit == "epoch" and self._pending(trainer.current_epoch):
            self._compress(trainer, pl_module)

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self._new_params and self.warmup_done < self.warmup_steps:
            self._before_step = [p.detach().clone() for p in self._new_params]

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._before_step is not None:  # an optimizer step just happened: ramp the new factors' update
            factor = (self.warmup_done + 1) / self.warmup_steps
            scale_step(self._new_params, self._before_step, min(1.0, factor))
            self._before_step = None
            self.warmup_done += 1
        if self.unit == "step" and self._pending(trainer.global_step):
            self._compress(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._costs:
            self._log(trainer, dict(self._costs))

    # ---- the swap ---------------------------------------------------------------------------------

    def _pending(self, position: int) -> bool:
        return self.done < len(self.stages) and position >= self.stages[self.done]

    def _compress(self, trainer: L.Trainer, pl_module: Any) -> None:
        strategy = trainer.strategy
        stage = self.done
        start = time.perf_counter()
        before = self._evaluate(trainer, pl_module) if trainer.is_global_zero else {}
        payload: dict[str, Any] | None = None
        if trainer.is_global_zero:
            payload = self._search_and_swap(trainer, pl_module, stage)
            payload["state"] = {k: v.detach().cpu() for k, v in pl_module.model.state_dict().items()}
        payload = strategy.broadcast(payload, src=0)
        assert payload is not None
        plan = CompressionPlan.from_dict(payload["plan"])
        if not trainer.is_global_zero:
            pl_module.apply_compression(plan, decompose=False)
        if trainer.world_size > 1:  # every process now holds rank 0's factors and BN statistics
            pl_module.model.load_state_dict(payload["state"])
        self._new_params = self._params_of(pl_module, list(plan.layers))
        self.warmup_done = 0 if self.warmup_steps > 0 else self.warmup_steps
        self._rebuild_training(trainer, pl_module)
        if self.reset_best_checkpoint:
            _forget_best(trainer)
        after = self._evaluate(trainer, pl_module) if trainer.is_global_zero else {}
        self.done += 1
        self._costs = {"model/params": payload["model_params"], "model/macs": payload["model_macs"]}
        metrics = {f"compression/before_swap/{k}": v for k, v in before.items()}
        metrics |= {f"compression/after_swap/{k}": v for k, v in after.items()}
        metrics |= {
            **self._costs,
            "compression/stage": stage + 1,
            "compression/seconds": time.perf_counter() - start,
        }
        self._log(trainer, metrics)
        rank_zero_info(
            f"compression stage {stage + 1}: {len(plan.layers)} layers factorized in "
            f"{time.perf_counter() - start:.1f} s; "
            + ", ".join(f"{k.split('/', 1)[1]} {v:.4f}" for k, v in metrics.items() if "_swap/" in k)
        )

    def _search_and_swap(self, trainer: L.Trainer, pl_module: Any, stage: int) -> dict[str, Any]:
        """Rank 0: calibration, rank search, selection, swap with full-effort factors, BN, reports."""
        model: nn.Module = pl_module.model
        device = next(model.parameters()).device
        batches = list(
            self._batches(
                trainer,
                self.calibration_batches,
                seed=self.seed + stage,
                batch_size=self.calibration_batch_size,
            )
        )
        example = batches[0][0][:1].to(device)
        done = pl_module.compression_plan.layers if pl_module.compression_plan is not None else {}
        selection = select_layers(
            model,
            include=self.include,
            exclude=[*self.exclude, *(f"{n}.*" for n in done)],
            types=self.layer_types,
            min_params=self.min_params,
            skip_stem=self.skip_stem,
            cp_method=cast(Method, self.kxk_method),
        )
        targets = {n: m for n, m in selection.targets.items() if n not in done}
        if not targets:
            raise ValueError(
                f"compression stage {stage + 1}: no target layers (include={self.include}, "
                f"exclude={self.exclude}); skipped: {selection.skipped}"
            )
        options = SearchOptions(
            grid_steps=self.grid_steps,
            stop_below=self.tau if self.selection == "threshold" else None,
            als_iters=self.search_als_iters,
            epc_sweeps=self.search_epc_sweeps,
            seed=self.seed,
            cp_device=self.cp_device,
            stages=pipeline_stages(model),
        )
        t0 = time.perf_counter()
        curves, report = score_layers(
            model, lambda _m, b: pl_module.compute_loss(b), batches, targets, example, options
        )
        search_seconds = time.perf_counter() - t0
        if self.selection == "threshold":
            chosen = {
                n: select_threshold(c, self.tau, self.min_saving, self.min_ref_score)
                for n, c in curves.items()
            }
            ranks = {n: s.rank for n, s in chosen.items()}
            reasons = {n: s.reason for n, s in chosen.items()}
        else:
            budget = select_budget(
                curves,
                self.budget_ratio,
                cost=cast(Cost, self.budget_metric),
                min_saving=self.min_saving,
                min_ref_score=self.min_ref_score,
            )
            ranks, reasons = dict(budget.ranks), dict(budget.reasons)
        if not self.allow_mac_increase:  # e.g. CP3 of a stride-2 conv: its first 1x1 runs at full resolution
            for name, rank in list(ranks.items()):
                if rank is None:
                    continue
                curve = curves[name]
                macs = curve.candidate(rank).macs
                if macs > curve.dense_macs:
                    ranks[name] = None
                    reasons[name] = f"rank {rank} raises MACs {curve.dense_macs:,} -> {macs:,}: kept dense"
        meta = {
            "stage": stage + 1,
            "at": {self.unit: self.stages[stage]},
            "global_step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "selection": self.selection,
            "tau": self.tau,
            "budget": {"metric": self.budget_metric, "ratio": self.budget_ratio},
            "search_seconds": search_seconds,
            "candidates": report.candidates,
        }
        plan = plan_from_selection(curves, ranks, meta=meta)
        costs_before = count_module_costs(model, example)
        pl_module.apply_compression(
            plan,
            decompose=True,
            cp_kwargs={
                "als_iters": self.final_als_iters,
                "epc_sweeps": self.final_epc_sweeps,
                "seed": self.seed,
                "device": self.cp_device,
            },
        )
        if self.bn_recalibration_batches > 0:
            recalibrate_batchnorm(
                model,
                self._batches(trainer, self.bn_recalibration_batches, seed=self.seed + 1000 + stage),
                forward=lambda m, b: m(b[0].to(device).contiguous(memory_format=pl_module.memory_format)),
            )
        costs_after = count_module_costs(model, example)
        model_params = sum(p.numel() for p in model.parameters())
        model_macs = sum(m for _, m in costs_after.values())
        rows = layer_rows(curves, ranks, reasons)
        summary = totals(
            rows,
            model_params_before=sum(p for p, _ in costs_before.values()),
            model_params_after=sum(p for p, _ in costs_after.values()),
            model_macs_before=sum(m for _, m in costs_before.values()),
            model_macs_after=model_macs,
        )
        self._report(trainer, stage, plan, curves, ranks, rows, summary)
        return {"plan": plan.to_dict(), "model_params": model_params, "model_macs": model_macs}

    def _rebuild_training(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Re-wrap DDP and rebuild optimizers/schedulers, keeping surviving state and the LR position."""
        strategy = trainer.strategy
        old_opts = list(strategy.optimizers)
        snapshots = [snapshot_optimizer(o) for o in old_opts]
        old_scheds = [c.scheduler for c in trainer.lr_scheduler_configs]
        if isinstance(strategy, DDPStrategy):
            strategy.model = pl_module
            strategy.configure_ddp()
        strategy.setup_optimizers(trainer)
        if len(strategy.optimizers) != len(snapshots):
            raise RuntimeError(
                f"configure_optimizers returned {len(strategy.optimizers)} optimizers after the swap, "
                f"{len(snapshots)} before: it must build the same optimizers from the current parameters"
            )
        for snap, new in zip(snapshots, strategy.optimizers, strict=True):
            transfer_optimizer_state(snap, new)
        new_scheds = [c.scheduler for c in trainer.lr_scheduler_configs]
        for old_s, new_s in zip(old_scheds, new_scheds, strict=True):
            transfer_scheduler_state(old_s, new_s)

    # ---- data, evaluation, reporting --------------------------------------------------------------

    def _batches(
        self, trainer: L.Trainer, count: int, seed: int, batch_size: int | None = None
    ) -> Iterator[Any]:
        dm = _datamodule(trainer)
        if dm is not None and hasattr(dm, "calibration_dataloader"):
            loader = dm.calibration_dataloader(batch_size=batch_size, seed=seed)
        elif dm is not None:
            loader = dm.train_dataloader()
        else:
            raise ValueError("GradientRankCompression needs a DataModule to draw calibration batches from")
        n = 0
        for batch in loader:
            if batch is None:
                continue
            yield batch
            n += 1
            if n == count:
                return

    def _evaluate(self, trainer: L.Trainer, pl_module: Any) -> dict[str, float]:
        """Validation metrics of the model as it is now (rank 0, whole or first ``eval_batches`` batches)."""
        dm = _datamodule(trainer)
        if self.eval_batches == 0 or dm is None:
            return {}
        from par_lightning.metrics import PARMetrics  # noqa: PLC0415

        loader = dm.val_dataloader()
        k = pl_module.num_eval
        device = next(pl_module.parameters()).device
        metric = PARMetrics(k, sync_on_compute=False).to(device)  # rank 0 alone: no collective
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            for i, batch in enumerate(loader):
                if self.eval_batches is not None and i >= self.eval_batches:
                    break
                if batch is None:
                    continue
                images, targets = batch
                probs = torch.sigmoid(pl_module(images.to(device)))
                metric.update(probs[:, :k], targets.to(device)[:, :k])
        pl_module.train(was_training)
        result = metric.compute()
        result.pop("mA_per_attribute", None)
        return {f"val_{name}": float(v) for name, v in result.items()}

    def _log(self, trainer: L.Trainer, metrics: dict[str, float]) -> None:
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)

    def _run_dir(self, trainer: L.Trainer) -> Path:
        cb = trainer.checkpoint_callback
        dirpath = getattr(cb, "dirpath", None)
        return Path(dirpath) if dirpath else Path(trainer.log_dir or trainer.default_root_dir)

    def _report(
        self,
        trainer: L.Trainer,
        stage: int,
        plan: CompressionPlan,
        curves: dict[str, Any],
        ranks: dict[str, int | None],
        rows: list[Any],
        summary: Any,
    ) -> None:
        title = f"compression stage {stage + 1} ({self.selection}, {self.unit} {self.stages[stage]})"
        rank_zero_info(render_text(rich_table(rows, summary, title)))
        run_dir = self._run_dir(trainer)
        run_dir.mkdir(parents=True, exist_ok=True)
        plan_path = run_dir / f"compression_plan_stage{stage + 1}.json"
        plan.save(plan_path)
        png = plot_score_curves(
            curves, run_dir / f"compression_scores_stage{stage + 1}.png", self.tau, chosen=ranks
        )
        rows_path = run_dir / f"compression_layers_stage{stage + 1}.json"
        atomic_write_text(rows_path, json.dumps([r.to_dict() for r in rows], indent=2, default=str) + "\n")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                from callbacks.compression_wandb import log_compression_to_wandb  # noqa: PLC0415

                log_compression_to_wandb(
                    logger.experiment, rows, summary, curves, step=trainer.global_step,
                    prefix=f"compression/stage{stage + 1}",
                )  # fmt: skip
                logger.experiment.log(
                    {
                        f"compression/stage{stage + 1}/score_curves_png": _wandb_image(png),
                        "trainer/global_step": trainer.global_step,
                    }
                )
                # the plan travels with the W&B run: rebuild a model from it without the run directory
                logger.experiment.save(str(plan_path), base_path=str(run_dir), policy="now")

    @staticmethod
    def _params_of(pl_module: Any, layers: list[str]) -> list[nn.Parameter]:
        model = pl_module.model
        return [p for name in layers for p in model.get_submodule(name).parameters() if p.requires_grad]


def _datamodule(trainer: L.Trainer) -> Any:
    """The fit's DataModule (an attribute Lightning sets at run time, so not in the type stubs)."""
    return getattr(trainer, "datamodule", None)


def _model_costs(trainer: L.Trainer, pl_module: Any) -> dict[str, int]:
    """Parameters of the network and, when the DataModule states its input size, conv/linear MACs per image."""
    model = pl_module.model
    costs = {"model/params": sum(p.numel() for p in model.parameters())}
    dm = _datamodule(trainer)
    height, width = getattr(dm, "height", None), getattr(dm, "width", None)
    if isinstance(height, int) and isinstance(width, int):
        param = next(model.parameters())
        example = torch.zeros(1, 3, height, width, device=param.device, dtype=param.dtype)
        costs["model/macs"] = sum(m for _, m in count_module_costs(model, example).values())
    return costs


def _forget_best(trainer: L.Trainer) -> None:
    """Reset the best-k bookkeeping of monitoring checkpoints (files already written stay on disk)."""
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.monitor is not None:
            cb.best_k_models = {}
            cb.kth_best_model_path = ""
            cb.best_model_score = None
            cb.best_model_path = ""
            cb.kth_value = torch.tensor(math.inf if cb.mode == "min" else -math.inf)


def _wandb_image(path: Path) -> Any:
    import wandb  # noqa: PLC0415

    return wandb.Image(str(path))
