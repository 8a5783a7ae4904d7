"""Log the boxes ALM localises per attribute, drawn on validation images, at the end of validation.

Goes to W&B (``val/attribute_boxes``) when a W&B logger is attached, and always to PNG files under
``<log dir>/attribute_boxes/`` so CSV-only and offline runs can look at them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from torchvision.io import write_png
from typing_extensions import override

from par_lightning.visualize import denormalize, draw_attribute_boxes, pick_attributes


class AttributeBoxes(Callback):
    """Draw ``ALM.localize`` boxes on the first validation images every ``every_n_epochs`` epochs.

    Args:
        num_images: how many images of the first validation batch to draw.
        level: pyramid level whose boxes are drawn (0 = finest, 2 = coarsest).
        attributes: attribute names to always draw; ``None`` = each image's most probable present ones.
        max_boxes: at most this many boxes per image when ``attributes`` is ``None``.
        every_n_epochs: draw every this-many validation epochs.
    """

    def __init__(
        self,
        num_images: int = 8,
        level: int = 0,
        attributes: list[str] | None = None,
        max_boxes: int = 3,
        every_n_epochs: int = 1,
    ) -> None:
        for name, value in (
            ("num_images", num_images),
            ("max_boxes", max_boxes),
            ("every_n_epochs", every_n_epochs),
        ):
            if value < 1:
                raise ValueError(f"AttributeBoxes: {name} must be >= 1, got {value}")
        if level not in (0, 1, 2):
            raise ValueError(f"AttributeBoxes: level must be 0, 1 or 2 (finest to coarsest), got {level}")
        self.num_images, self.level, self.attributes = num_images, level, attributes
        self.max_boxes, self.every_n_epochs = max_boxes, every_n_epochs
        self._images: torch.Tensor | None = None

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        module = cast(Any, pl_module)
        if not callable(getattr(module.model, "localize", None)):
            raise ValueError(
                f"AttributeBoxes needs a model with `localize` (arch: alm or alm_tiny); "
                f"{type(module.model).__name__} has none. Remove the callback or change model.init_args.arch."
            )
        names = list(module.attribute_names)
        unknown = [a for a in self.attributes or [] if a not in names]
        if unknown:
            raise ValueError(f"AttributeBoxes: unknown attributes {unknown}; valid names: {', '.join(names)}")

    @override
    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx == 0 and dataloader_idx == 0 and batch is not None:
            self._images = batch[0][: self.num_images].detach()

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self._images is None or not trainer.is_global_zero:
            return
        if trainer.current_epoch % self.every_n_epochs:
            return
        grid = self._draw(pl_module, self._images)
        self._images = None
        self._save(trainer, grid)

    def _draw(self, pl_module: LightningModule, images: torch.Tensor) -> torch.Tensor:
        module = cast(Any, pl_module)
        names = list(module.attribute_names)
        with torch.no_grad():
            boxes = module.model.localize(images.contiguous(memory_format=module.memory_format))
            probs = torch.sigmoid(pl_module(images))
        fixed = [names.index(a) for a in self.attributes] if self.attributes else None
        chosen = pick_attributes(probs, self.max_boxes, fixed)
        return draw_attribute_boxes(denormalize(images.float().cpu()), boxes[:, self.level], chosen, names)

    def _save(self, trainer: Trainer, grid: torch.Tensor) -> None:
        out_dir = Path(trainer.log_dir or trainer.default_root_dir) / "attribute_boxes"
        out_dir.mkdir(parents=True, exist_ok=True)
        write_png(grid, str(out_dir / f"epoch_{trainer.current_epoch:03d}.png"))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key="val/attribute_boxes",
                    images=[grid.permute(1, 2, 0).numpy()],
                    caption=[f"epoch {trainer.current_epoch}, level {self.level}"],
                    step=trainer.global_step,
                )
