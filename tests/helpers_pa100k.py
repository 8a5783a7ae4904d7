"""Write a tiny but format-faithful PA-100K set (datasets spec §2.2, §10) for tests.

Seven top-level variables, N×1 cells of ``str``, ``uint8`` label matrices, ``{i:06d}.jpg`` images of
varied small sizes. Tests corrupt it on purpose through ``overrides`` / ``drop``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from PIL import Image

from data_modules.attributes import PA100K_ATTRIBUTES

__all__ = ["TinyPA100K", "cell", "write_pa100k"]


def cell(items: Sequence[Any], shape: tuple[int, int] | None = None) -> np.ndarray:
    """An N×1 (or ``shape``) MATLAB cell as ``savemat`` expects it: an object array of ``str`` or ``dict``
    (struct) elements."""
    out = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        out[i, 0] = item
    return out.reshape(shape) if shape else out


@dataclass
class TinyPA100K:
    """Where the tiny set was written and what it contains (the expected parse result)."""

    root: Path
    annotation_path: Path
    image_dir: Path
    names: dict[str, list[str]] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)


def write_pa100k(
    root: str | Path,
    sizes: tuple[int, int, int] = (12, 4, 4),
    *,
    raw_layout: bool = False,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> TinyPA100K:
    """Write ``annotation.mat`` and JPEG images for train/val/test of the given sizes under ``root``.

    Args:
        root: dataset root (created).
        sizes: images per split (train, val, test).
        raw_layout: use ``annotation/annotation.mat`` + ``release_data/release_data/`` instead of
            ``annotation.mat`` + ``data/``.
        seed: RNG seed for labels and image content.
        overrides: variables to replace (or add) in the ``.mat`` file, e.g. a mistyped label matrix.
        drop: variables to leave out of the ``.mat`` file.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    ann = root / ("annotation/annotation.mat" if raw_layout else "annotation.mat")
    img_dir = root / ("release_data/release_data" if raw_layout else "data")
    ann.parent.mkdir(parents=True, exist_ok=True)
    img_dir.mkdir(parents=True, exist_ok=True)
    tiny = TinyPA100K(root=root, annotation_path=ann, image_dir=img_dir)
    variables: dict[str, Any] = {"attributes": cell(PA100K_ATTRIBUTES)}
    start = 1
    for split, n in zip(("train", "val", "test"), sizes, strict=True):
        names = [f"{i:06d}.jpg" for i in range(start, start + n)]
        start += n
        labels = (rng.random((n, len(PA100K_ATTRIBUTES))) < 0.4).astype(np.uint8)
        for name in names:
            w, h = int(rng.integers(30, 81)), int(rng.integers(80, 201))
            pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(img_dir / name, quality=90)
        variables[f"{split}_images_name"] = cell(names)
        variables[f"{split}_label"] = labels
        tiny.names[split], tiny.labels[split] = names, labels
    variables.update(overrides or {})
    for name in drop:
        variables.pop(name)
    scipy.io.savemat(ann, variables)
    return tiny
