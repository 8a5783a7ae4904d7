"""Write a synthetic dataset in the DeepMAR-curated PETA layout (``PETA.mat`` + ``images/00001.png``…).

Images are the PA-100K renderer's pedestrians (image ``i`` from ``default_rng([seed, i])``); the 105 PETA
labels come from :func:`~data_modules.synthetic.vocab.peta_labels_from_pa100k` (see its module for which
columns the image shows and which are random). Atomic, locked and deterministic like the PA-100K writer.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from data_modules.synthetic.pa100k import GENERATOR_VERSION, split_counts
from data_modules.synthetic.vocab import PETA_ALL_ATTRIBUTES, peta_labels_from_pa100k
from data_modules.synthetic.writer import render_images, savemat_fixed_header, write_atomically

__all__ = ["synthesize_peta"]

logger = logging.getLogger(__name__)

MAT_NAME = "PETA.mat"
IMAGE_DIR = "images"
# PETA's partition sizes 9500/1900/7600 of 19000.
SPLIT_FRACTIONS = (9500 / 19000, 1900 / 19000, 7600 / 19000)
_LABEL_STREAM, _META_STREAM, _PARTITION_STREAM = 1_000_001, 1_000_002, 1_000_100


def _object_array(items: list, shape: tuple[int, int]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out.reshape(shape)


def synthesize_peta(
    root: str | os.PathLike[str],
    num_images: int = 2000,
    seed: int = 0,
    partitions: int = 5,
    workers: int | None = None,
    difficulty: float = 1.0,
) -> Path:
    """Generate a synthetic PETA-format dataset under ``root`` unless ``root/PETA.mat`` already exists.

    Layout (spec §1.2): ``PETA.mat`` holding struct ``peta`` (``data`` N×109 uint8 = 4 metadata columns +
    105 labels, ``attribute`` 105×1 cell, ``selected_attribute`` 1..35, ``partition_attribute``
    ``partitions``×1 cell of structs train/val/test with 1-based int32 column vectors in PETA's
    9500/1900/7600 proportions, each partition its own fixed-seed permutation) and
    ``images/{i+1:05d}.png``. Byte-identical per ``seed`` for any ``workers``.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    root = Path(root).expanduser().resolve()
    if not (root / MAT_NAME).is_file() and num_images < 3:
        raise ValueError(f"num_images must be >= 3 (one per split), got {num_images}")
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))

    def produce(tmp: Path) -> None:
        counts = split_counts(num_images, SPLIT_FRACTIONS)
        logger.info(
            "Synthesizing %d PETA-format images (train/val/test %d/%d/%d, %d partitions, seed %d) into %s "
            "with %d worker(s)",
            num_images, *counts, partitions, seed, root, workers,
        )  # fmt: skip
        (tmp / IMAGE_DIR).mkdir()
        names = [f"{IMAGE_DIR}/{i + 1:05d}.png" for i in range(num_images)]
        y26 = render_images(tmp, names, seed, workers, difficulty, "PNG", log=logger)
        labels = peta_labels_from_pa100k(y26, np.random.default_rng([seed, _LABEL_STREAM]))
        meta = np.random.default_rng([seed, _META_STREAM]).integers(1, 50, size=(num_images, 4))
        bounds = np.cumsum((0, *counts))
        structs = []
        for k in range(partitions):
            perm = np.random.default_rng([seed, _PARTITION_STREAM + k]).permutation(num_images)
            structs.append({
                split: (np.sort(perm[a:b]) + 1).astype(np.int32).reshape(-1, 1)
                for split, a, b in zip(("train", "val", "test"), bounds[:-1], bounds[1:], strict=True)
            })  # fmt: skip
        peta = {
            "data": np.hstack([meta, labels]).astype(np.uint8),
            "attribute": _object_array(list(PETA_ALL_ATTRIBUTES), (len(PETA_ALL_ATTRIBUTES), 1)),
            "selected_attribute": np.arange(1, 36, dtype=np.int32).reshape(1, -1),
            "partition_attribute": _object_array(structs, (partitions, 1)),
        }
        header = f"par-lightning synthetic PETA v{GENERATOR_VERSION}, seed {seed}, difficulty {difficulty:g}"
        savemat_fixed_header(tmp / MAT_NAME, {"peta": peta}, header)

    return write_atomically(root, MAT_NAME, produce, "PETA", log=logger)[0]
