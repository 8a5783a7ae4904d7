"""ALM-style plain-text label lists (datasets spec §6): ``<path> <l0> … <lK-1>`` per line."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["write_label_list"]


def write_label_list(path: str | os.PathLike[str], image_names: Sequence[str], labels: np.ndarray) -> Path:
    """Write one line per image, ``<name> <l0> … <lK-1>``, single spaces, LF endings, no trailing space.

    ``labels`` is an ``(N, K)`` integer matrix (0/1, or 2 where a dataset keeps uncertain values);
    names must not contain whitespace. Returns ``path`` as a ``Path``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[0] != len(image_names):
        raise ValueError(f"labels must be (N={len(image_names)}, K), got shape {labels.shape}")
    if labels.dtype.kind not in "biu":
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    lines = []
    for name, row in zip(image_names, labels, strict=True):
        if not name or any(ch.isspace() for ch in name):
            raise ValueError(f"image name {name!r} is empty or contains whitespace")
        lines.append(" ".join([name, *map(str, row.tolist())]) + "\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.writelines(lines)
    return path
