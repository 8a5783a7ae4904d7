"""Image dataset over (paths, labels) and the fast pre-flight image checks the DataModules run.

Checking images up front (existence, then a header-level decode) turns a crash hours into an epoch
into an error at ``setup()`` that lists the offending files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate

from data_modules.errors import CorruptImageError, MissingImageError

__all__ = ["PARImageDataset", "collate_skip_none", "find_corrupt_images", "find_missing_images"]

log = logging.getLogger(__name__)

# What PIL raises for undecodable files: UnidentifiedImageError / truncation are OSError, some plugins
# raise SyntaxError or ValueError, and the decompression-bomb guard raises its own Exception subclass.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class PARImageDataset(Dataset):
    """Images with multi-label targets: item ``i`` is ``(FloatTensor[3, H, W], FloatTensor[L])``.

    Args:
        paths: image files, one per label row.
        labels: ``[n, L]`` integer labels (0/1, possibly 2 = uncertain; passed through unchanged).
        transform: PIL RGB image → tensor; ``None`` gives an un-normalised ``[0, 1]`` tensor.
        skip_corrupt: return ``None`` for undecodable images (dropped by :func:`collate_skip_none`)
            instead of raising :class:`CorruptImageError`.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        labels: np.ndarray,
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        skip_corrupt: bool = False,
    ) -> None:
        if len(paths) != len(labels):
            raise ValueError(f"PARImageDataset: {len(paths)} paths but {len(labels)} label rows")
        self.paths = [str(p) for p in paths]  # plain strings pickle cheaply into workers
        self.targets = torch.from_numpy(np.array(labels, dtype=np.float32)).reshape(len(paths), -1)  # a copy
        self.transform = transform
        self.skip_corrupt = skip_corrupt

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        path = self.paths[index]
        try:
            with Image.open(path) as img:
                image = img.convert("RGB")
        except FileNotFoundError as exc:
            raise MissingImageError(f"Image {path} (item {index}) does not exist.") from exc
        except _DECODE_ERRORS as exc:
            if self.skip_corrupt:
                log.warning("Skipping undecodable image %s (%s: %s)", path, type(exc).__name__, exc)
                return None
            raise CorruptImageError(
                f"Cannot decode image {path} (item {index}): {type(exc).__name__}: {exc}. "
                "Replace the file, or set skip_corrupt=True to drop such images."
            ) from exc
        tensor = self.transform(image) if self.transform is not None else _to_tensor(image)
        return tensor, self.targets[index]


def _to_tensor(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 255.0  # (H, W, 3)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()  # (3, H, W)


def collate_skip_none(batch: Sequence[Any]) -> Any:
    """``default_collate`` after dropping ``None`` items (skipped images); ``None`` if nothing is left."""
    kept = [item for item in batch if item is not None]
    if len(kept) < len(batch):
        log.warning("Dropped %d undecodable image(s) from a batch of %d", len(batch) - len(kept), len(batch))
    return default_collate(kept) if kept else None


def find_missing_images(paths: Sequence[Path]) -> list[Path]:
    """Paths that do not exist, in input order; lists each folder once instead of one stat per file."""
    listings: dict[Path, set[str]] = {}
    missing = []
    for path in paths:
        parent = path.parent
        if parent not in listings:
            try:
                listings[parent] = {e.name for e in os.scandir(parent) if not e.is_dir()}
            except OSError:
                listings[parent] = set()
        if path.name not in listings[parent]:
            missing.append(path)
    return missing


def _is_corrupt(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            img.verify()
    except _DECODE_ERRORS:
        return True
    return False


def find_corrupt_images(paths: Sequence[Path], workers: int | None = None) -> list[Path]:
    """Paths whose image header does not parse (``PIL.Image.verify``), in input order, using threads."""
    if not paths:
        return []
    workers = workers or min(32, (os.cpu_count() or 1) + 4)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        flags = list(pool.map(_is_corrupt, paths, chunksize=256))
    return [p for p, bad in zip(paths, flags, strict=True) if bad]


def check_images(paths: Sequence[Path], what: str, skip_corrupt: bool) -> list[int]:
    """Fail fast on missing images; on corrupt ones fail too, or (``skip_corrupt``) return kept indices.

    Args:
        paths: images to check.
        what: where the list comes from, for messages (e.g. "split 'train' of /data/annotation.mat").
        skip_corrupt: drop undecodable images (logged) instead of raising.

    Raises:
        MissingImageError: listing the count, the first 10 offenders and their folder(s).
        CorruptImageError: listing the count and the first 10 offenders (unless ``skip_corrupt``).
    """
    missing = find_missing_images(paths)
    if missing:
        folders = sorted({str(p.parent) for p in missing})
        raise MissingImageError(
            f"{len(missing)} of {len(paths)} images of {what} are missing from image dir "
            f"{', '.join(folders[:3])}; first: {[p.name for p in missing[:10]]}. Check the image_dir setting "
            "(and that the archive was fully extracted), or set check_images=False to skip this check."
        )
    corrupt = find_corrupt_images(paths)
    if corrupt and not skip_corrupt:
        raise CorruptImageError(
            f"{len(corrupt)} of {len(paths)} images of {what} cannot be decoded; first: "
            f"{[str(p) for p in corrupt[:10]]}. Replace them, or set skip_corrupt=True to drop them."
        )
    if corrupt:
        log.warning(
            "Dropping %d undecodable image(s) of %s (skip_corrupt=True); first: %s",
            len(corrupt),
            what,
            [p.name for p in corrupt[:10]],
        )
    bad = set(corrupt)
    return [i for i, p in enumerate(paths) if p not in bad]
