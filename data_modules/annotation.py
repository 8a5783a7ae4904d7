"""The parsed, dataset-independent form of a PAR annotation.

Each dataset parser (PA-100K, PETA, RAP) returns a :class:`PARAnnotation`; everything downstream
(DataModules, positive ratios, reports) only ever sees this structure, so adding a dataset means
writing one parser and nothing else.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = ["PARAnnotation", "SplitData"]

TRAINVAL = "trainval"


class SplitData(NamedTuple):
    """Image paths and their ``int8`` label rows for one split (unpackable as ``paths, labels``)."""

    paths: tuple[pathlib.Path, ...]
    labels: np.ndarray


@dataclass(frozen=True, eq=False, repr=False)
class PARAnnotation:
    """Attribute names plus per-split image paths and labels of one dataset.

    Attributes:
        attribute_names: attribute names in label-column order.
        image_paths: absolute image paths per split name (``train``, ``val``, ``test``; a dataset
            without a validation split, such as RAP v1, simply has no ``val`` key).
        labels: ``int8`` ``[n, L]`` label matrix per split, rows aligned with ``image_paths``; values are
            0/1, and 2 (= uncertain) where the dataset uses it.
        source: the annotation file this was parsed from (for messages).
    """

    attribute_names: tuple[str, ...]
    image_paths: dict[str, tuple[pathlib.Path, ...]]
    labels: dict[str, np.ndarray]
    source: pathlib.Path

    def __post_init__(self) -> None:
        """Check internal consistency, so a buggy parser fails here rather than mid-training."""
        if set(self.image_paths) != set(self.labels):
            raise ValueError(
                f"{self.source}: image_paths splits {sorted(self.image_paths)} != labels splits {sorted(self.labels)}"
            )
        if TRAINVAL in self.image_paths:
            raise ValueError(f"{self.source}: '{TRAINVAL}' is derived from train and val; do not store it")
        num_attributes = len(self.attribute_names)
        for name, labels in self.labels.items():
            expected = (len(self.image_paths[name]), num_attributes)
            if labels.ndim != 2 or labels.shape != expected or labels.dtype != np.int8:
                raise ValueError(
                    f"{self.source}: split '{name}' labels must be int8 of shape {expected} "
                    f"(paths x attributes), got {labels.dtype} {labels.shape}"
                )
            labels.setflags(write=False)  # the dataclass is frozen; keep its arrays that way too

    @property
    def num_attributes(self) -> int:
        """Number of label columns."""
        return len(self.attribute_names)

    @property
    def split_names(self) -> tuple[str, ...]:
        """Names accepted by :meth:`split`: the stored splits plus ``trainval`` when ``train`` exists."""
        names = tuple(self.image_paths)
        return (*names, TRAINVAL) if "train" in names else names

    def split(self, name: str) -> SplitData:
        """Paths and labels of split ``name``; ``trainval`` is train followed by val (spec §0.2).

        Without a ``val`` split, ``trainval`` equals ``train`` (RAP v1's train set already is trainval).
        """
        if name == TRAINVAL and "train" in self.image_paths:
            parts = [s for s in ("train", "val") if s in self.image_paths]
            paths = tuple(p for s in parts for p in self.image_paths[s])
            labels = np.concatenate([self.labels[s] for s in parts], axis=0)
            labels.setflags(write=False)
            return SplitData(paths, labels)
        if name not in self.image_paths:
            raise ValueError(
                f"Unknown split '{name}' for {self.source}; valid splits: {list(self.split_names)}"
            )
        return SplitData(self.image_paths[name], self.labels[name])

    def num_images(self, name: str) -> int:
        """Number of images in split ``name``."""
        return len(self.split(name).paths)

    def positive_ratios(self, split: str) -> np.ndarray:
        """Per-attribute fraction of entries equal to 1 in ``split`` (spec §5.2), as ``float64`` ``[L]``.

        Entries equal to 2 (uncertain) count as not positive, matching both reference conventions.
        """
        labels = self.split(split).labels
        if labels.shape[0] == 0:
            raise ValueError(f"{self.source}: split '{split}' is empty; positive ratios are undefined")
        return (labels == 1).mean(axis=0, dtype=np.float64)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={len(paths)}" for name, paths in self.image_paths.items())
        return (
            f"PARAnnotation(source={str(self.source)!r}, attributes={self.num_attributes}, splits: {sizes})"
        )
