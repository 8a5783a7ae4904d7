"""Write a synthetic dataset in PA-100K's real distribution layout (``annotation.mat`` + ``data/*.jpg``).

Loaders, DataModules and CLIs can then be exercised end to end on exactly the files they will meet
with the real download. Generation is deterministic per (seed, image index), parallel, atomic
(build in a sibling temp folder, then rename) and guarded by a sibling lock file so that several
processes (e.g. DDP ranks) asking for the same root generate it only once.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data_modules.attributes import PA100K_ATTRIBUTES
from data_modules.synthetic.writer import render_images, savemat_fixed_header, write_atomically

__all__ = ["synthesize_pa100k", "split_counts"]

logger = logging.getLogger(__name__)

ANNOTATION = "annotation.mat"
IMAGE_DIR = "data"
# Bump when the renderer or label sampler changes what a seed produces (recorded in the .mat header).
GENERATOR_VERSION = 1
_SPLITS = ("train", "val", "test")


def split_counts(num_images: int, split_fractions: Sequence[float]) -> tuple[int, int, int]:
    """Train/val/test sizes; rounding leftovers go to test so the three always sum to ``num_images``."""
    fr = tuple(float(f) for f in split_fractions)
    if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6:
        raise ValueError(
            f"split_fractions must be 3 non-negative numbers summing to 1, got {split_fractions}"
        )
    n_train = round(num_images * fr[0])
    n_val = min(round(num_images * fr[1]), num_images - n_train)
    return n_train, n_val, num_images - n_train - n_val


def _cell(strings: Sequence[str]) -> np.ndarray:
    """N×1 MATLAB cell of char (loads back as ``cell[i][0][0] == str``)."""
    cell = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        cell[i, 0] = s
    return cell


def _write_annotation(path: Path, labels: np.ndarray, counts: tuple[int, int, int], provenance: str) -> None:
    """Save the seven variables in the real file's order, with a fixed header text instead of the date."""
    names = [f"{i + 1:06d}.jpg" for i in range(len(labels))]
    bounds = np.cumsum((0, *counts))
    content: dict[str, np.ndarray] = {"attributes": _cell(PA100K_ATTRIBUTES)}
    for split, a, b in zip(_SPLITS, bounds[:-1], bounds[1:], strict=True):
        content[f"{split}_images_name"] = _cell(names[a:b])
    for split, a, b in zip(_SPLITS, bounds[:-1], bounds[1:], strict=True):
        content[f"{split}_label"] = np.ascontiguousarray(labels[a:b], dtype=np.uint8)
    savemat_fixed_header(path, content, f"par-lightning synthetic PA-100K {provenance}")


def synthesize_pa100k(
    root: str | os.PathLike[str],
    num_images: int = 10_000,
    seed: int = 0,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    workers: int | None = None,
    difficulty: float = 1.0,
) -> Path:
    """Generate a synthetic PA-100K-format dataset under ``root`` unless one is already there.

    Layout: ``root/annotation.mat`` (the seven variables of the real file) and ``root/data/000001.jpg``…
    numbered train, then val, then test. The same ``seed`` gives byte-identical files for any
    ``workers``. Returns ``root`` as a ``Path``; if ``root/annotation.mat`` exists nothing is done
    (its size/seed are not checked).

    Args:
        root: dataset folder; must not exist, be empty, or already hold a generated set.
        num_images: total images over the three splits.
        seed: generator seed; image ``i`` depends only on ``(seed, i)``.
        split_fractions: train/val/test fractions (PA-100K uses 0.8/0.1/0.1).
        workers: processes used for rendering; ``None`` means ``os.cpu_count()``.
        difficulty: clutter/occlusion/noise scale passed to the renderer (0 = clean).
    """
    root = Path(root).expanduser().resolve()
    if (root / ANNOTATION).is_file():
        logger.info("Synthetic PA-100K already present at %s; not regenerating", root)
        return root
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    counts = split_counts(num_images, split_fractions)
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))

    def produce(tmp: Path) -> None:
        logger.info(
            "Synthesizing %d PA-100K-format images (train/val/test %d/%d/%d, seed %d, difficulty %g) into %s "
            "with %d worker(s)",
            num_images, *counts, seed, difficulty, root, workers,
        )  # fmt: skip
        t0 = time.perf_counter()
        (tmp / IMAGE_DIR).mkdir(parents=True)
        names = [f"{i + 1:06d}.jpg" for i in range(num_images)]
        labels = render_images(tmp / IMAGE_DIR, names, seed, workers, difficulty, "JPEG", log=logger)
        provenance = f"v{GENERATOR_VERSION}, seed {seed}, difficulty {difficulty:g}"
        _write_annotation(tmp / ANNOTATION, labels, counts, provenance)
        dt = time.perf_counter() - t0
        logger.info(
            "Synthesized %d images into %s in %.1f s (%.0f images/s)", num_images, root, dt, num_images / dt
        )

    return write_atomically(root, ANNOTATION, produce, "PA-100K", log=logger)[0]
