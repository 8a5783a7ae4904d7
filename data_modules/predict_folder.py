"""Images in a folder (no annotation) for ``lightning predict --data.init_args.predict_dir DIR``.

Items are ``(image, index)``: the index into :attr:`PredictFolderDataset.files` travels with the image
through the collate (which may drop undecodable images) and every DDP sampler, so the prediction writer
can name each row by its file without trusting the sampler's batch indices.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data_modules.dataset import PARImageDataset
from data_modules.errors import DatasetNotFoundError

__all__ = ["IMAGE_EXTENSIONS", "PredictFolderDataset", "check_predict_dir", "list_images"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")


def check_predict_dir(folder: str | os.PathLike) -> Path:
    """``folder`` as a Path, after checking that it is an existing directory (cheap: no listing)."""
    path = Path(folder)
    if not path.exists():
        raise DatasetNotFoundError(
            f"predict_dir {path} does not exist; pass a folder of images to predict on."
        )
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"predict_dir {path} is not a folder; pass the folder that holds the images."
        )
    return path


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursive), relative to it, sorted by their POSIX path.

    Extensions are matched case-insensitively (``IMAGE_EXTENSIONS``); sorting the relative paths makes
    the row order independent of the file system's listing order.

    Raises:
        DatasetNotFoundError: the folder is missing, not a folder, or holds no image file.
    """
    root = check_predict_dir(folder)
    files = sorted(
        (
            p.relative_to(root)
            for p in root.rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        ),
        key=lambda p: p.as_posix(),
    )
    if not files:
        raise DatasetNotFoundError(
            f"predict_dir {root} holds no image files (searched recursively for extensions "
            f"{', '.join(IMAGE_EXTENSIONS)}, any case)."
        )
    return files


class PredictFolderDataset(PARImageDataset):
    """Unlabelled images: item ``i`` is ``(FloatTensor[3, H, W], LongTensor[] = i)``, or ``None`` if skipped.

    Decoding and the transform are :class:`PARImageDataset`'s, so a folder image goes through exactly
    the code a validation image does.

    Args:
        root: the folder the relative ``files`` are under.
        files: image paths relative to ``root`` (``None``: :func:`list_images` of ``root``).
        transform: PIL RGB image -> tensor (the DataModule passes its evaluation transform).
        skip_corrupt: return ``None`` for undecodable images instead of raising ``CorruptImageError``.
        skipped: files under ``root`` left out before this dataset was built (undecodable), for the report.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        files: Sequence[str | os.PathLike] | None = None,
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        skip_corrupt: bool = False,
        skipped: Sequence[str | os.PathLike] = (),
    ) -> None:
        self.root = Path(root).absolute()
        relative = [Path(f) for f in files] if files is not None else list_images(self.root)
        if not relative:
            raise DatasetNotFoundError(f"PredictFolderDataset: no image files given under {self.root}")
        self.files = [f.as_posix() for f in relative]
        self.skipped = [Path(f).as_posix() for f in skipped]
        # one dummy label column: the parent stores targets, and a (n, 0) array cannot be reshaped to (n, -1)
        super().__init__(
            [self.root / f for f in relative], np.zeros((len(relative), 1)), transform, skip_corrupt
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        item = super().__getitem__(index)
        return None if item is None else (item[0], torch.tensor(index, dtype=torch.long))
