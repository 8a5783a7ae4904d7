"""Shared LightningDataModule for PAR datasets: a dataset adds only its ``_parse()``.

The base turns a :class:`PARAnnotation` into image datasets, checks images before training starts and
exposes ``num_attributes`` / ``attribute_names`` / ``pos_ratios`` *before* ``setup()``, because the CLI
links them into the model's ``__init__`` right after instantiating the DataModule.
"""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from data_modules.annotation import PARAnnotation, SplitData
from data_modules.dataset import PARImageDataset, check_images, collate_skip_none
from data_modules.errors import CorruptImageError
from data_modules.predict_folder import PredictFolderDataset, check_predict_dir, list_images
from data_modules.transforms import build_transforms

__all__ = ["PARDataModule"]

log = logging.getLogger(__name__)

# One lock for all instances: cheap, and unlike a per-instance lock it never has to be pickled.
_PARSE_LOCK = threading.RLock()

# stage -> the dataset roles it needs; each role reads its split name from `<role>_split`, and only the
# "train" role gets augmentation.
_STAGE_ROLES: dict[str, tuple[str, ...]] = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("predict",),
}


class PARDataModule(L.LightningDataModule, abc.ABC):
    """Base DataModule: batches are ``(images FloatTensor[B, 3, H, W], targets FloatTensor[B, L])``.

    Args:
        batch_size: training batch size.
        eval_batch_size: batch size for val/test/predict; ``None`` uses ``batch_size``.
        num_workers: DataLoader worker processes (workers persist between epochs when > 0).
        height: input height H after resizing.
        width: input width W after resizing.
        pad: train-time padding before the random crop (0 disables pad + crop).
        hflip: train-time random horizontal flip.
        pin_memory: pin host memory; ``None`` means "if CUDA is available".
        train_split: split used for training and for ``pos_ratios`` (standard protocol: ``trainval``).
        val_split: split used for validation (standard protocol: ``test``).
        test_split: split used by ``trainer.test``.
        predict_split: split used by ``trainer.predict`` (no augmentation, no shuffling) when ``predict_dir``
            is not set.
        predict_dir: predict on the images in this folder instead (recursive; jpg/jpeg/png/bmp, sorted);
            batches are then ``(images, dataset indices)``, see :class:`PredictFolderDataset`.
        check_images: at ``setup()``, verify every image exists and has a decodable header.
        skip_corrupt: drop (and log) undecodable images instead of failing.
    """

    SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test", "trainval")

    def __init__(
        self,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        height: int = 256,
        width: int = 128,
        pad: int = 10,
        hflip: bool = True,
        pin_memory: bool | None = None,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        predict_split: str = "test",
        check_images: bool = True,
        skip_corrupt: bool = False,
        predict_dir: str | None = None,
    ) -> None:
        super().__init__()
        for name, value, low in [
            ("batch_size", batch_size, 1),
            ("eval_batch_size", eval_batch_size, 1),
            ("num_workers", num_workers, 0),
            ("height", height, 1),
            ("width", width, 1),
            ("pad", pad, 0),
        ]:
            if value is not None and (not isinstance(value, int) or value < low):
                raise ValueError(f"{type(self).__name__}: {name} must be an integer >= {low}, got {value!r}")
        self.splits = {"train": train_split, "val": val_split, "test": test_split, "predict": predict_split}
        for role, split in self.splits.items():
            if split not in self.SPLIT_NAMES:
                raise ValueError(
                    f"{type(self).__name__}: {role}_split={split!r}; valid splits: {list(self.SPLIT_NAMES)}"
                )
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.height, self.width, self.pad, self.hflip = height, width, pad, hflip
        self.pin_memory = pin_memory
        self.check_images = check_images
        self.skip_corrupt = skip_corrupt
        self.predict_dir = check_predict_dir(predict_dir) if predict_dir is not None else None
        self._annotation: PARAnnotation | None = None
        self._checked: dict[str, SplitData] = {}  # split name -> data after image checks
        self.datasets: dict[str, PARImageDataset] = {}  # role -> dataset, filled by setup()

    def _use_test_for_missing_val(self, has_val: bool) -> None:
        """Without a ``val`` split, point every role set to ``"val"`` at ``"test"`` (logged).

        The standard protocol for datasets without a validation split (RAP v1, the ALM label lists) is to
        validate on test; storing ``val = test`` instead would leak test into ``trainval``.
        """
        if has_val:
            return
        redirected = [role for role, split in self.splits.items() if split == "val"]
        for role in redirected:
            self.splits[role] = "test"
        if redirected:
            log.info("%s: no val split; using 'test' for %s", type(self).__name__, redirected)

    @staticmethod
    def _synthesize(dataset: str, root: Path, synthesize_fn: Callable[..., Path], **options: Any) -> None:
        """Generate a synthetic set in ``dataset``'s format at ``root``, saying so loudly (never silent)."""
        settings = ", ".join(f"{k}={v}" for k, v in options.items())
        msg = (
            f"{dataset} annotation not found under {root}: synthesizing a SYNTHETIC {dataset}-format set there "
            f"({settings})"
        )
        log.info(msg)
        rank_zero_info(msg)
        synthesize_fn(root, **options)

    @abc.abstractmethod
    def _parse(self) -> PARAnnotation:
        """Locate (or synthesize) the dataset files and parse them; called once, lazily."""

    @property
    def annotation(self) -> PARAnnotation:
        """The parsed annotation, parsed on first access (every DDP rank parses its own copy)."""
        if self._annotation is None:
            with _PARSE_LOCK:
                if self._annotation is None:
                    self._annotation = self._parse()
                    log.info("%s: loaded %r", type(self).__name__, self._annotation)
        return self._annotation

    @property
    def num_attributes(self) -> int:
        """Number of attributes L (model output size); available before ``setup()``."""
        return self.annotation.num_attributes

    @property
    def num_eval_attributes(self) -> int | None:
        """How many leading attributes the metrics evaluate; ``None`` = all (e.g. PETA trains on 105, reports 35)."""
        return None

    @property
    def attribute_names(self) -> list[str]:
        """Attribute names in label-column order; available before ``setup()``."""
        return list(self.annotation.attribute_names)

    @property
    def pos_ratios(self) -> list[float]:
        """Per-attribute positive ratio of ``train_split`` (weighted-BCE input); available before ``setup()``."""
        return self.annotation.positive_ratios(self.splits["train"]).tolist()

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets ``stage`` needs (all of them for ``None``), checking their images first."""
        if stage is not None and stage not in _STAGE_ROLES:
            raise ValueError(
                f"{type(self).__name__}.setup: unknown stage {stage!r}; valid: {list(_STAGE_ROLES)}"
            )
        for role in _STAGE_ROLES[stage] if stage is not None else tuple(self.splits):
            transform = build_transforms(
                self.height, self.width, train=role == "train", pad=self.pad, hflip=self.hflip
            )
            if role == "predict" and self.predict_dir is not None:
                self.datasets[role] = self._predict_folder(self.predict_dir, transform)
                continue
            paths, labels = self._checked_split(self.splits[role])
            self.datasets[role] = PARImageDataset(paths, labels, transform, skip_corrupt=self.skip_corrupt)

    def _predict_folder(self, folder: Path, transform: Callable) -> PredictFolderDataset:
        """The folder's images with the evaluation transform, after the same image checks as a split's."""
        files = list_images(folder)
        skipped: list[Path] = []
        if self.check_images:
            keep = check_images([folder / f for f in files], f"predict_dir {folder}", self.skip_corrupt)
            if not keep:
                raise CorruptImageError(
                    f"predict_dir {folder}: none of its {len(files)} images can be decoded"
                )
            kept = set(keep)
            skipped = [f for i, f in enumerate(files) if i not in kept]
            files = [files[i] for i in keep]
        return PredictFolderDataset(folder, files, transform, skip_corrupt=self.skip_corrupt, skipped=skipped)

    def _checked_split(self, name: str) -> SplitData:
        """The split's data, after (once per split) the image checks and dropping skipped images."""
        if name not in self._checked:
            data = self.annotation.split(name)
            if len(data.paths) == 0:
                raise ValueError(
                    f"{type(self).__name__}: split '{name}' of {self.annotation.source} is empty; "
                    "set train_split/val_split/test_split/predict_split to non-empty splits"
                )
            if self.check_images:
                keep = check_images(
                    data.paths, f"split '{name}' of {self.annotation.source}", self.skip_corrupt
                )
                if len(keep) < len(data.paths):
                    data = SplitData(tuple(data.paths[i] for i in keep), data.labels[keep])
            self._checked[name] = data
        return self._checked[name]

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False, batch_size=self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, batch_size=self.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False, batch_size=self.eval_batch_size)

    def calibration_dataloader(self, batch_size: int | None = None, seed: int = 0) -> DataLoader:
        """Training images with the *evaluation* transform, in a seeded random order.

        For compression calibration and BatchNorm re-estimation: training data without random
        augmentation (spec compression §4.1), the same batches for the same seed on every call.
        """
        if "train" not in self.datasets:
            raise RuntimeError(f"{type(self).__name__}: call setup('fit') before calibration_dataloader()")
        train = self.datasets["train"]
        dataset = PARImageDataset(
            train.paths,
            train.targets.numpy(),
            build_transforms(self.height, self.width, train=False, pad=self.pad, hflip=self.hflip),
            skip_corrupt=self.skip_corrupt,
        )
        return DataLoader(
            dataset,
            batch_size=batch_size or self.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
            num_workers=self.num_workers,
            collate_fn=collate_skip_none,
        )

    def _loader(self, role: str, shuffle: bool, batch_size: int) -> DataLoader:
        if role not in self.datasets:
            stage = {"train": "fit", "val": "fit' or 'validate"}.get(role, role)
            raise RuntimeError(f"{type(self).__name__}: call setup('{stage}') before {role}_dataloader()")
        pin = torch.cuda.is_available() if self.pin_memory is None else self.pin_memory
        return DataLoader(
            self.datasets[role],
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=pin,
            persistent_workers=self.num_workers > 0,
            # a last training batch of one sample breaks BatchNorm; eval keeps every sample
            drop_last=shuffle and len(self.datasets[role]) > batch_size,
            collate_fn=collate_skip_none,
        )
