"""Write ``lightning predict`` results as ``predictions.csv`` and ``predictions.json``, one row per image.

Rows are named by the file each prediction came from. Folder batches (``predict_dir``) carry their
dataset indices, so rows stay right when undecodable images are dropped from a batch; for a split's
batches ``(images, targets)`` Lightning's sampler indices are used. Under DDP every rank keeps its rows,
rank 0 gathers them (``all_gather_object``), drops the sampler's padding duplicates and writes the files
atomically: no rank ever writes a shared file.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from torchvision.io import encode_png
from typing_extensions import override

from data_modules.predict_folder import PredictFolderDataset
from par_lightning.atomic_io import atomic_write_text, atomic_writer
from par_lightning.visualize import denormalize, draw_attribute_boxes

__all__ = ["PredictionWriter", "resolve_thresholds"]

CSV_NAME = "predictions.csv"
JSON_NAME = "predictions.json"
BOXES_DIR = "boxes"


def _check_probability(value: Any, what: str) -> float:
    """``value`` as a float, if it is a number in [0, 1] (NaN and booleans are refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"PredictionWriter: {what} must be a number in [0, 1], got {value!r}")
    return float(value)


def resolve_thresholds(
    threshold: float | Mapping[str, float], default_threshold: float, names: Sequence[str]
) -> dict[str, float]:
    """Per-attribute thresholds: one number for all, or a dict of some names (the rest ``default_threshold``).

    Raises:
        ValueError: a value outside [0, 1], or dict keys that are not attribute names (all listed, with
            the valid names).
    """
    default = _check_probability(default_threshold, "default_threshold")
    if not isinstance(threshold, Mapping):
        value = _check_probability(threshold, "threshold")
        return dict.fromkeys(names, value)
    unknown = [k for k in threshold if k not in names]
    if unknown:
        raise ValueError(
            f"PredictionWriter: threshold names unknown attributes {unknown}; valid names: {', '.join(names)}"
        )
    given = {k: _check_probability(v, f"threshold[{k!r}]") for k, v in threshold.items()}
    return {n: given.get(n, default) for n in names}


def _format(p: float) -> float:
    """9 significant digits: enough to get the float32 probability back exactly, and short."""
    return float(f"{p:.9g}")


class PredictionWriter(BasePredictionWriter):
    """Per-image attribute probabilities and 0/1 decisions (``probability >= threshold``) to CSV and JSON.

    ``predictions.csv`` has the columns ``path``, ``prob_<attribute>`` ... and ``pred_<attribute>`` ...;
    ``predictions.json`` holds the attribute names, the thresholds, the checkpoint, the folder, and per
    image ``path``, ``probabilities`` and ``decisions`` keyed by attribute name. Paths are relative to
    ``predict_dir`` (a split's images keep their full paths).

    Args:
        output_dir: folder for the files; ``None`` = ``trainer.default_root_dir``.
        threshold: one threshold for every attribute, or ``{attribute: threshold}`` for some of them.
        default_threshold: threshold of the attributes a ``threshold`` dict does not name.
        draw_boxes: also write each image with its present attributes' ALM boxes to
            ``<output_dir>/boxes/<path>.png`` (models with ``localize``: ``alm``, ``alm_tiny``).
        box_level: ALM pyramid level whose boxes are drawn (0 = finest, 2 = coarsest).
        max_boxes: at most this many boxes per image (the most probable present attributes; the most
            probable attribute when none is present).
    """

    def __init__(
        self,
        output_dir: str | None = None,
        threshold: float | dict[str, float] = 0.5,
        default_threshold: float = 0.5,
        draw_boxes: bool = False,
        box_level: int = 0,
        max_boxes: int = 3,
    ) -> None:
        super().__init__(write_interval="batch")
        _check_probability(default_threshold, "default_threshold")
        if isinstance(threshold, Mapping):
            for name, value in threshold.items():
                _check_probability(value, f"threshold[{name!r}]")
        else:
            _check_probability(threshold, "threshold")
        if box_level not in (0, 1, 2):
            raise ValueError(
                f"PredictionWriter: box_level must be 0, 1 or 2 (finest to coarsest), got {box_level}"
            )
        if max_boxes < 1:
            raise ValueError(f"PredictionWriter: max_boxes must be >= 1, got {max_boxes}")
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.threshold, self.default_threshold = threshold, default_threshold
        self.draw_boxes, self.box_level, self.max_boxes = draw_boxes, box_level, max_boxes
        self.names: list[str] = []
        self.thresholds: dict[str, float] = {}
        self._threshold_row = torch.zeros(0, dtype=torch.float64)  # thresholds in attribute order
        self._files: list[str] = []  # row names of the predict dataset, by dataset index
        self._indices: list[torch.Tensor] = []
        self._probs: list[torch.Tensor] = []

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        names = getattr(pl_module, "attribute_names", None)
        if names is None:
            raise ValueError(
                "PredictionWriter needs a module with `attribute_names` (PARModule); "
                f"{type(pl_module).__name__} has none"
            )
        self.names = list(names)
        self.thresholds = resolve_thresholds(self.threshold, self.default_threshold, self.names)
        self._threshold_row = torch.tensor([self.thresholds[n] for n in self.names], dtype=torch.float64)
        model = getattr(pl_module, "model", None)
        if self.draw_boxes and not callable(getattr(model, "localize", None)):
            raise ValueError(
                f"PredictionWriter: draw_boxes needs a model with `localize` (arch: alm or alm_tiny); "
                f"{type(model).__name__} has none. Set draw_boxes: false or use an ALM checkpoint."
            )

    def out_dir(self, trainer: Trainer) -> Path:
        """Where the files go: ``output_dir``, else the run folder ``trainer.default_root_dir``."""
        return self.output_dir if self.output_dir is not None else Path(trainer.default_root_dir)

    @override
    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._indices, self._probs = [], []
        self._files = _row_names(_dataset(trainer))

    @override
    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        if dataloader_idx != 0:
            raise ValueError("PredictionWriter writes one predict dataloader; got a second one")
        if prediction is None or batch is None:  # every image of the batch was undecodable and skipped
            return
        probs = prediction.detach().float().cpu()
        if probs.ndim != 2 or probs.shape[1] != len(self.names):
            raise ValueError(
                f"PredictionWriter: predict_step returned shape {tuple(probs.shape)}; expected "
                f"(batch, {len(self.names)}) probabilities, one per attribute"
            )
        indices = self._batch_indices(batch, batch_indices, len(probs))
        self._indices.append(indices)
        self._probs.append(probs)
        if self.draw_boxes:
            self._write_boxes(trainer, pl_module, batch[0], probs, indices)

    @staticmethod
    def _batch_indices(batch: Any, sampler_indices: Sequence[int] | None, rows: int) -> torch.Tensor:
        """Dataset indices of the batch's rows: carried by folder batches, else the sampler's."""
        carried = batch[1] if isinstance(batch, list | tuple) and len(batch) == 2 else None
        if isinstance(carried, torch.Tensor) and carried.ndim == 1 and not carried.is_floating_point():
            indices = carried.detach().cpu().long()
        elif sampler_indices is not None:
            indices = torch.as_tensor(list(sampler_indices), dtype=torch.long)
        else:
            raise ValueError("PredictionWriter: the batch carries no dataset indices and Lightning gave none")
        if len(indices) != rows:
            raise ValueError(
                f"PredictionWriter: {rows} predictions but {len(indices)} dataset indices in a batch (images "
                "skipped by skip_corrupt cannot be matched in a split's batches; predict with predict_dir)"
            )
        return indices

    @override
    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        empty = (torch.zeros(0, dtype=torch.long), torch.zeros(0, len(self.names)))
        local = (torch.cat(self._indices), torch.cat(self._probs)) if self._indices else empty
        parts = [local]
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            gathered: list[Any] = [None] * trainer.world_size
            dist.all_gather_object(gathered, local)
            parts = gathered
        if trainer.is_global_zero:
            self._write_files(trainer, *_merge(parts))
        trainer.strategy.barrier("prediction_writer")
        self._indices, self._probs = [], []

    def _write_files(self, trainer: Trainer, indices: torch.Tensor, probs: torch.Tensor) -> None:
        dataset, files = _dataset(trainer), self._files
        decisions = (probs.double() >= self._threshold_row).int()
        rows = [
            (files[i], [_format(p) for p in row.tolist()], d.tolist())
            for i, row, d in zip(indices.tolist(), probs, decisions, strict=True)
        ]
        out = self.out_dir(trainer)
        with atomic_writer(out / CSV_NAME) as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["path", *(f"prob_{n}" for n in self.names), *(f"pred_{n}" for n in self.names)])
            writer.writerows([path, *p, *d] for path, p, d in rows)
        done = set(indices.tolist())
        header = {
            "attributes": self.names,
            "thresholds": self.thresholds,
            "checkpoint": str(trainer.ckpt_path) if trainer.ckpt_path is not None else None,
            "predict_dir": str(dataset.root) if isinstance(dataset, PredictFolderDataset) else None,
            "num_images": len(rows),
            "skipped": [*getattr(dataset, "skipped", []), *(f for i, f in enumerate(files) if i not in done)],
        }
        entries = [
            {
                "path": path,
                "probabilities": dict(zip(self.names, p, strict=True)),
                "decisions": dict(zip(self.names, d, strict=True)),
            }
            for path, p, d in rows
        ]
        atomic_write_text(out / JSON_NAME, _json_text(header, "predictions", entries))

    def _write_boxes(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        images: torch.Tensor,
        probs: torch.Tensor,
        indices: torch.Tensor,
    ) -> None:
        """Each image of the batch, as the model saw it, with its chosen attributes' boxes, as PNG."""
        module = cast(Any, pl_module)
        with torch.no_grad():
            boxes = module.model.localize(images.contiguous(memory_format=module.memory_format))
        pixels = denormalize(images.float().cpu())
        files = self._files
        for k, index in enumerate(indices.tolist()):
            order = [int(j) for j in torch.argsort(probs[k], descending=True)]
            present = [j for j in order if float(probs[k, j]) >= float(self._threshold_row[j])]
            chosen = present[: self.max_boxes] or order[:1]
            drawn = draw_attribute_boxes(
                pixels[k : k + 1], boxes[k : k + 1, self.box_level], [chosen], self.names
            )
            name = (
                files[index] if not os.path.isabs(files[index]) else f"{index:06d}_{Path(files[index]).name}"
            )
            with atomic_writer(self.out_dir(trainer) / BOXES_DIR / f"{name}.png", "wb") as f:
                f.write(encode_png(drawn).numpy().tobytes())


def _json_text(header: dict[str, Any], key: str, entries: list[dict[str, Any]]) -> str:
    """``header`` plus ``key: entries`` as JSON, one line per entry (readable and grep-able for many images)."""
    lines = ",\n".join(f"  {json.dumps(e)}" for e in entries)
    head = json.dumps(header, indent=1)[:-2]  # without the closing "\n}"
    return f'{head},\n "{key}": [\n{lines}\n ]\n}}\n'


def _merge(parts: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """All ranks' rows, sorted by dataset index, each index once (DDP samplers pad with repeats)."""
    indices = torch.cat([p[0] for p in parts])
    probs = torch.cat([p[1] for p in parts])
    order = torch.argsort(indices, stable=True)
    indices, probs = indices[order], probs[order]
    first = torch.ones(len(indices), dtype=torch.bool)
    first[1:] = indices[1:] != indices[:-1]
    return indices[first], probs[first]


def _dataset(trainer: Trainer) -> Any:
    """The dataset behind the (first) predict dataloader; DDP re-wraps loaders but keeps the dataset."""
    loaders = trainer.predict_dataloaders
    loader = loaders[0] if isinstance(loaders, list | tuple) else loaders
    dataset = getattr(loader, "dataset", None)
    if dataset is None or not hasattr(dataset, "paths"):
        raise ValueError(
            "PredictionWriter needs a predict dataset with image paths "
            "(PARDataModule with predict_dir or predict_split)"
        )
    return dataset


def _row_names(dataset: Any) -> list[str]:
    """Folder images by their path relative to the folder; a split's images by their full path."""
    return list(dataset.files) if isinstance(dataset, PredictFolderDataset) else list(dataset.paths)
