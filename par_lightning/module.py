"""``PARModule``: the one LightningModule of the project; it receives its parts and trains them.

The optimizer and scheduler are *callables* injected from YAML (``class_path`` + ``init_args``) and
built inside ``configure_optimizers`` from the parameters present at that moment, so a layer swapped
in mid-training (compression) is covered when the optimizers are rebuilt. LightningCLI's own
``optimizer:`` block cannot do that: it binds the parameters once at start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from par_lightning.compression.plan import CompressionPlan, PlanError, apply_plan
from par_lightning.losses import WeightedBCELoss
from par_lightning.metrics import PARMetrics
from par_lightning.models import create_model

Stage = Literal["train", "val", "test"]
Batch = tuple[torch.Tensor, torch.Tensor]  # images (B, 3, H, W), targets (B, A) in {0, 1, 2}


def _default_optimizer(params: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-3)


def merge_outputs(outputs: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Logits for prediction: one tensor as is, several (deep supervision) by max voting."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    return torch.stack(list(outputs)).amax(dim=0)


class PARModule(L.LightningModule):
    """Pedestrian attribute recognition: multi-label classification with weighted BCE.

    Args:
        arch: registered model name (``par_lightning.models.list_models()``).
        backbone: timm backbone name passed to the model builder (``None`` = the model's default:
            resnet50 for ``baseline``, bninception for ``alm``).
        num_attributes: number of outputs; linked from ``data.num_attributes`` by the CLI.
        num_eval_attributes: metrics cover only the first this-many attributes (``None`` = all): train on
            every annotated attribute, report the standard subset; linked from the DataModule.
        attribute_names: names for per-attribute logs; linked from the DataModule.
        pos_ratios: positive ratio of each attribute in the training split; linked from the DataModule.
        model_kwargs: extra keyword arguments for the model builder (``pretrained_path``, ...).
        loss: ``deepmar`` (weighted BCE, Rethinking/DeepMAR), ``alm`` (positive-only weights) or
            ``bce`` (unweighted).
        optimizer: callable ``params -> Optimizer``, e.g. ``torch.optim.Adam`` with ``init_args``.
        lr_scheduler: optional callable ``optimizer -> LRScheduler`` (step, cosine, plateau, ...).
        scheduler_monitor: metric a ``ReduceLROnPlateau`` follows.
        scheduler_interval: step the scheduler every ``epoch`` or every ``step``.
        head_lr_scale: learning-rate multiplier for the non-backbone parameters (the strong baseline
            trains its classifier 10x faster than the backbone).
        threshold: probability above which an attribute is predicted present.
        channels_last: run the model in NHWC memory format (faster convolutions on CPU and on GPUs
            with tensor cores; 1.6x for the quickstart on 2 CPU cores).
    """

    def __init__(
        self,
        arch: str = "baseline",
        backbone: str | None = None,
        num_attributes: int = 26,
        num_eval_attributes: int | None = None,
        attribute_names: list[str] | None = None,
        pos_ratios: list[float] | None = None,
        model_kwargs: dict[str, Any] | None = None,
        loss: Literal["deepmar", "alm", "bce"] = "deepmar",
        optimizer: OptimizerCallable = _default_optimizer,
        lr_scheduler: LRSchedulerCallable | None = None,
        scheduler_monitor: str = "val/loss",
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        head_lr_scale: float = 1.0,
        threshold: float = 0.5,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if loss not in ("deepmar", "alm", "bce"):
            raise ValueError(f"loss must be one of 'deepmar', 'alm', 'bce'; got {loss!r}")
        if attribute_names is not None and len(attribute_names) != num_attributes:
            raise ValueError(
                f"attribute_names has {len(attribute_names)} entries but num_attributes is {num_attributes}"
            )
        if pos_ratios is not None and len(pos_ratios) != num_attributes:
            raise ValueError(
                f"pos_ratios has {len(pos_ratios)} entries but num_attributes is {num_attributes}"
            )
        if num_eval_attributes is not None and not 0 < num_eval_attributes <= num_attributes:
            raise ValueError(
                f"num_eval_attributes must be in [1, {num_attributes}], got {num_eval_attributes}"
            )
        self.num_eval = num_eval_attributes or num_attributes
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        model_kwargs = dict(model_kwargs or {})
        if backbone is not None:
            model_kwargs["backbone"] = backbone
        self.model = create_model(arch, num_attributes=num_attributes, **model_kwargs)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.attribute_names = list(attribute_names or [f"attr{j}" for j in range(num_attributes)])
        self.criterion = WeightedBCELoss(
            pos_ratios=None if loss == "bce" else pos_ratios, variant="alm" if loss == "alm" else "deepmar"
        )
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.val_metrics = PARMetrics(self.num_eval, threshold=threshold)
        self.test_metrics = PARMetrics(self.num_eval, threshold=threshold)
        self.head_lr_scale = head_lr_scale
        self.scheduler_monitor = scheduler_monitor
        self.scheduler_interval = scheduler_interval
        self.compression_plan: CompressionPlan | None = None  # layers factorized so far (all stages)

    def apply_compression(
        self, plan: CompressionPlan, *, decompose: bool = True, cp_kwargs: dict[str, Any] | None = None
    ) -> None:
        """Swap the plan's factorized layers into ``self.model`` and record the plan (merged with earlier stages).

        The recorded plan goes into every checkpoint (``on_save_checkpoint``), which is how a compressed
        checkpoint rebuilds its architecture before its weights load, with or without the callback.
        """
        done = self.compression_plan.layers if self.compression_plan is not None else {}
        again = sorted(set(done) & set(plan.layers))
        if again:
            raise PlanError(f"layers already factorized by an earlier compression stage: {again}")
        apply_plan(self.model, plan, decompose=decompose, cp_kwargs=cp_kwargs)
        self.model.to(memory_format=self.memory_format)
        stages = list(self.compression_plan.meta.get("stages", [])) if self.compression_plan else []
        stages.append(dict(plan.meta, layers=sorted(plan.layers)))
        self.compression_plan = CompressionPlan({**done, **plan.layers}, {"stages": stages})

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.compression_plan is not None:
            checkpoint["compression_plan"] = self.compression_plan.to_dict()  # plain types: weights_only-safe

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Rebuild the factorized layers a checkpoint was saved with, before Lightning loads its weights."""
        saved = checkpoint.get("compression_plan")
        if saved is None:
            if self.compression_plan is not None:
                raise PlanError(
                    "this module is compressed but the checkpoint holds a dense model (no 'compression_plan'): "
                    "load it into a fresh, uncompressed PARModule"
                )
            return
        plan = CompressionPlan.from_dict(saved)
        have = self.compression_plan.layers if self.compression_plan is not None else {}
        stale = sorted(n for n, lp in have.items() if plan.layers.get(n) != lp)
        if stale:
            raise PlanError(
                f"the module's factorized layers {stale} differ from the checkpoint's compression plan"
            )
        todo = CompressionPlan({n: lp for n, lp in plan.layers.items() if n not in have})
        apply_plan(self.model, todo, decompose=False)
        self.model.to(memory_format=self.memory_format)
        self.compression_plan = plan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attribute logits ``(B, A)``; several model outputs are merged by max voting."""
        return merge_outputs(self.model(x.contiguous(memory_format=self.memory_format)))

    def _loss_and_heads(self, batch: Batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
        images, targets = batch
        outputs = self.model(images.contiguous(memory_format=self.memory_format))
        heads = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
        mask = targets <= 1  # value 2 marks an uncertain label: no loss, no metric
        # Deep supervision: the same loss on every output (ALM's four heads), summed with equal weights.
        loss = torch.stack([self.criterion(h, targets.clamp(max=1), mask) for h in heads]).sum()
        return loss, heads

    def compute_loss(self, batch: Batch) -> torch.Tensor:
        """The training loss of one batch, without logging (used by rank-search calibration passes)."""
        return self._loss_and_heads(batch)[0]

    def _shared_step(self, batch: Batch, stage: Stage) -> torch.Tensor:
        images, targets = batch
        loss, heads = self._loss_and_heads(batch)
        self.log(
            f"{stage}/loss",
            loss,
            on_step=stage == "train",
            on_epoch=True,
            prog_bar=True,
            batch_size=images.shape[0],
            sync_dist=stage != "train",
        )
        if stage != "train":
            k = self.num_eval
            self._metric(stage).update(torch.sigmoid(merge_outputs(heads))[:, :k], targets[:, :k])
        return loss

    # A batch is None when every image in it was undecodable and ``skip_corrupt`` dropped them all.
    def training_step(self, batch: Batch | None, batch_idx: int) -> torch.Tensor | None:
        return None if batch is None else self._shared_step(batch, "train")

    def validation_step(self, batch: Batch | None, batch_idx: int) -> None:
        if batch is not None:
            self._shared_step(batch, "val")

    def test_step(self, batch: Batch | None, batch_idx: int) -> None:
        if batch is not None:
            self._shared_step(batch, "test")

    def predict_step(self, batch: Batch | None, batch_idx: int) -> torch.Tensor | None:
        """Attribute probabilities ``(B, A)``."""
        return None if batch is None else torch.sigmoid(self(batch[0]))

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def _log_epoch_metrics(self, stage: Stage) -> None:
        """Log mA, Acc, Prec, Rec, F1 and the per-attribute mA; states are already summed across ranks."""
        metric = self._metric(stage)
        result = metric.compute()
        per_attr = result.pop("mA_per_attribute")
        self.log_dict({f"{stage}/{k}": v.float() for k, v in result.items()}, prog_bar=stage == "val")
        self.log_dict(
            {
                f"{stage}/mA_attr/{n}": v.float()
                for n, v in zip(self.attribute_names[: self.num_eval], per_attr, strict=True)
            }
        )
        metric.reset()

    def _metric(self, stage: Stage) -> PARMetrics:
        return self.val_metrics if stage == "val" else self.test_metrics

    def configure_optimizers(self) -> Any:
        """Build the optimizer (and scheduler) over the parameters present *now*."""
        backbone: list[nn.Parameter] = []
        head: list[nn.Parameter] = []
        for name, param in self.named_parameters():
            if param.requires_grad:
                (backbone if name.startswith("model.backbone.") else head).append(param)
        groups = [{"params": p, "name": n} for n, p in (("backbone", backbone), ("head", head)) if p]
        optimizer = self.optimizer_factory(groups)
        for group in optimizer.param_groups:
            if group.get("name") == "head":
                group["lr"] *= self.head_lr_scale
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        config: dict[str, Any] = {"scheduler": scheduler, "interval": self.scheduler_interval}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = self.scheduler_monitor
        return {"optimizer": optimizer, "lr_scheduler": config}
