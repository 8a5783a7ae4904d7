"""Write a tiny but format-faithful DeepMAR ``PETA.mat`` set (datasets spec §1.2, §10) for tests.

Written from the spec, independently of ``data_modules``: top-level struct ``peta`` (a ``dict``, field
order data / attribute / selected_attribute / partition_attribute), ``data`` = 4 metadata columns + 105
``uint8`` labels, 105×1 name cell (35 standard evaluated names, then placeholders), a K×1 cell of
partition structs with 1-based ``int32`` column vectors, and ``images/{i:05d}.png`` of varied sizes.
Tests corrupt it on purpose through ``overrides`` / ``drop`` / ``partition_overrides``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from PIL import Image

from tests.helpers_pa100k import cell

__all__ = ["EVAL_NAMES", "TinyPETA", "write_peta"]

# Spec §1.3, raw order (deliberately a separate copy from data_modules.attributes).
EVAL_NAMES: tuple[str, ...] = tuple(
    [
        "personalLess30",
        "personalLess45",
        "personalLess60",
        "personalLarger60",
        "carryingBackpack",
        "carryingOther",
        "lowerBodyCasual",
        "upperBodyCasual",
        "lowerBodyFormal",
        "upperBodyFormal",
        "accessoryHat",
        "upperBodyJacket",
        "lowerBodyJeans",
        "footwearLeatherShoes",
        "upperBodyLogo",
        "hairLong",
        "personalMale",
        "carryingMessengerBag",
        "accessoryMuffler",
        "accessoryNothing",
        "carryingNothing",
        "upperBodyPlaid",
        "carryingPlasticBags",
        "footwearSandals",
        "footwearShoes",
        "lowerBodyShorts",
        "upperBodyShortSleeve",
        "lowerBodyShortSkirt",
        "footwearSneaker",
        "upperBodyThinStripes",
        "accessorySunglasses",
        "lowerBodyTrousers",
        "upperBodyTshirt",
        "upperBodyOther",
        "upperBodyVNeck",
    ]
)
ALL_NAMES: tuple[str, ...] = EVAL_NAMES + tuple(f"extraAttribute{j:03d}" for j in range(35, 105))


@dataclass
class TinyPETA:
    """Where the tiny set was written and what it contains (the expected parse result)."""

    root: Path
    mat_path: Path
    image_dir: Path
    labels: np.ndarray  # (N, 105) uint8, all rows
    partitions: list[dict[str, np.ndarray]] = field(default_factory=list)  # 0-based row indices per split

    def rows(self, partition: int, split: str) -> np.ndarray:
        return self.partitions[partition][split]

    def names(self, partition: int, split: str) -> list[str]:
        return [f"{i + 1:05d}.png" for i in self.rows(partition, split)]


def write_peta(
    root: str | Path,
    sizes: tuple[int, int, int] = (10, 4, 6),
    partitions: int = 2,
    *,
    seed: int = 0,
    variable: str = "peta",
    overrides: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    partition_overrides: dict[str, Any] | None = None,
    write_images: bool = True,
) -> TinyPETA:
    """Write ``PETA.mat`` and PNG images under ``root``; N = sum(sizes) rows.

    Args:
        root: dataset root (created).
        sizes: rows per split (train, val, test) in every partition.
        partitions: number of random partitions (K×1 cell).
        seed: RNG seed for labels, permutations and image content.
        variable: top-level variable name (tests use a wrong one).
        overrides: ``peta`` fields to replace (or add).
        drop: ``peta`` fields to leave out.
        partition_overrides: fields of partition 0's struct to replace (e.g. 0-based indices).
        write_images: also write ``images/00001.png`` ...
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    mat_path, image_dir = root / "PETA.mat", root / "images"
    root.mkdir(parents=True, exist_ok=True)
    labels = (rng.random((n, 105)) < 0.4).astype(np.uint8)
    metadata = rng.integers(1, 50, size=(n, 4)).astype(np.uint8)
    tiny = TinyPETA(root=root, mat_path=mat_path, image_dir=image_dir, labels=labels)
    part_structs = []
    for k in range(partitions):
        perm = rng.permutation(n)
        bounds = np.cumsum((0, *sizes))
        rows = {s: perm[bounds[j] : bounds[j + 1]] for j, s in enumerate(("train", "val", "test"))}
        tiny.partitions.append(rows)
        struct = {s: (r + 1).astype(np.int32).reshape(-1, 1) for s, r in rows.items()}  # 1-based, column
        if k == 0:
            struct.update(partition_overrides or {})
        part_structs.append(struct)
    peta: dict[str, Any] = {
        "data": np.hstack([metadata, labels]),
        "attribute": cell(ALL_NAMES),
        "selected_attribute": np.arange(1, 36, dtype=np.int32).reshape(1, -1),
        "partition_attribute": cell(part_structs),
    }
    peta.update(overrides or {})
    for name in drop:
        peta.pop(name)
    scipy.io.savemat(mat_path, {variable: peta})
    if write_images:
        image_dir.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            w, h = int(rng.integers(30, 81)), int(rng.integers(80, 201))
            pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(image_dir / f"{i + 1:05d}.png")
    return tiny
