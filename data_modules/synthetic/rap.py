"""Write synthetic datasets in the RAP v1 and RAP v2 layouts (``RAP_annotation/RAP_annotation.mat`` +
``RAP_dataset/CAM…png``).

Images are the PA-100K renderer's pedestrians (image ``i`` from ``default_rng([seed, i])``); the labels
come from :mod:`data_modules.synthetic.vocab` (see there which columns the image shows and which are
random). A few uncertain ``2`` values are added as in the real files: in the Female column for v1 (spec
§3.2), in random selected cells for v2 (spec §4.2). Atomic, locked and deterministic like the PA-100K
writer.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from data_modules.rap import RAP1_ATTRIBUTES, RAP2_SELECTED_ATTRIBUTE
from data_modules.synthetic.pa100k import GENERATOR_VERSION, split_counts
from data_modules.synthetic.vocab import RAP2_ATTRIBUTES, rap1_labels_from_pa100k, rap2_labels_from_pa100k
from data_modules.synthetic.writer import render_images, savemat_fixed_header, write_atomically

__all__ = ["RAP1_ATTRIBUTE_EXP", "rap_image_name", "synthesize_rap"]

logger = logging.getLogger(__name__)

ANNOTATION = "RAP_annotation/RAP_annotation.mat"
IMAGE_DIR = "RAP_dataset"
V1_SPLIT_FRACTIONS = (0.8, 0.0, 0.2)
V2_SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
V1_FEMALE_UNCERTAIN = 0.01  # share of rows whose Female label is 2
V2_UNCERTAIN_CELLS = 0.002  # share of selected binary cells set to 2
_LABEL_STREAM, _EXTRA_STREAM, _PARTITION_STREAM = 1_000_001, 1_000_002, 1_000_100

# RAP v1 `attribute_exp` (51 short names, spec §3.3).
RAP1_ATTRIBUTE_EXP: tuple[str, ...] = (
    "Female", "AgeLess16", "Age17-30", "Age31-45", "BodyFat", "BodyNormal", "BodyThin", "Customer",
    "Clerk", "BaldHead", "LongHair", "BlackHair", "Hat", "Glasses", "Muffler", "Shirt", "Sweater", "Vest",
    "TShirt", "Cotton", "Jacket", "Suit-Up", "Tight", "ShortSleeve", "LongTrousers", "Skirt", "ShortSkirt",
    "Dress", "Jeans", "TightTrousers", "LeatherShoes", "SportShoes", "Boots", "ClothShoes", "CasualShoes",
    "Backpack", "SSBag", "HandBag", "Box", "PlasticBag", "PaperBag", "HandTrunk", "OtherAttchment",
    "Calling", "Talking", "Gathering", "Holding", "Pusing", "Pulling", "CarryingbyArm", "CarryingbyHand",
)  # fmt: skip


def rap_image_name(i: int) -> str:
    """RAP-style name of image ``i`` (unique), e.g. ``CAM08_2014-02-15_20140215100000-20140215103000_tarid0_frame100_line1.png``."""
    day, hour = 15 + i % 10, 8 + (i // 10) % 12
    span = f"201402{day:02d}{hour:02d}0000-201402{day:02d}{hour:02d}3000"
    return (
        f"CAM{(7 * i) % 31 + 1:02d}_2014-02-{day:02d}_{span}_tarid{i}_frame{100 + 13 * i}_line{1 + i % 3}.png"
    )


def _object_array(items: list, shape: tuple[int, int]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out.reshape(shape)


def _cell(strings: tuple[str, ...] | list[str]) -> np.ndarray:
    return _object_array(list(strings), (len(strings), 1))


def _row(idx_0based: np.ndarray) -> np.ndarray:
    return (np.sort(idx_0based) + 1).astype(np.int32).reshape(1, -1)


def _splits(
    num_images: int, fractions: tuple[float, float, float], seed: int, k: int
) -> dict[str, np.ndarray]:
    counts = split_counts(num_images, fractions)
    perm = np.random.default_rng([seed, _PARTITION_STREAM + k]).permutation(num_images)
    bounds = np.cumsum((0, *counts))
    return {s: perm[a:b] for s, a, b in zip(("train", "val", "test"), bounds[:-1], bounds[1:], strict=True)}


def _v1_struct(y26: np.ndarray, names: list[str], seed: int, partitions: int) -> dict:
    n = len(names)
    label = rap1_labels_from_pa100k(y26, np.random.default_rng([seed, _LABEL_STREAM])).astype(np.int32)
    rng = np.random.default_rng([seed, _EXTRA_STREAM])
    uncertain = rng.permutation(n)[: max(1, round(V1_FEMALE_UNCERTAIN * n))]
    label[uncertain, 0] = 2
    parts = []
    for k in range(partitions):
        s = _splits(n, V1_SPLIT_FRACTIONS, seed, k)
        parts.append({"train": _row(s["train"]), "test": _row(s["test"])})
    return {
        "partion": _object_array(parts, (partitions, 1)),
        "label": label,
        "attribute_chinese": _cell([f"属性{j + 1}" for j in range(len(RAP1_ATTRIBUTES))]),
        "attribute_eng": _cell(RAP1_ATTRIBUTES),
        "position": rng.integers(0, 300, size=(n, 16)).astype(np.int32),
        "imagesname": _cell(names),
        "attribute_exp": _cell(RAP1_ATTRIBUTE_EXP),
    }


def _v2_struct(y26: np.ndarray, names: list[str], seed: int, partitions: int) -> dict:
    n = len(names)
    data = rap2_labels_from_pa100k(y26, np.random.default_rng([seed, _LABEL_STREAM])).astype(np.int32)
    rng = np.random.default_rng([seed, _EXTRA_STREAM])
    data[:, 120:] = rng.integers(0, 400, size=(n, 32))  # boxes / coordinates
    selected = np.asarray(RAP2_SELECTED_ATTRIBUTE) - 1
    cells = n * len(selected)
    flat = rng.permutation(cells)[: max(1, round(V2_UNCERTAIN_CELLS * cells))]
    data[flat // len(selected), selected[flat % len(selected)]] = 2
    parts = []
    for k in range(partitions):
        s = _splits(n, V2_SPLIT_FRACTIONS, seed, k)
        parts.append({f"{split}_index": _row(ix) for split, ix in s.items()})
    identity = rng.integers(1, max(2, n // 4), size=(n, 1))
    identity[rng.random((n, 1)) < 0.5] = -2
    return {
        "name": _cell(names),
        "data": data,
        "attribute": _cell(RAP2_ATTRIBUTES),
        "selected_attribute": np.asarray(RAP2_SELECTED_ATTRIBUTE, dtype=np.int32).reshape(1, -1),
        "partition_attribute": _object_array(parts, (1, partitions)),
        "person_identity": identity.astype(np.int16),
        "partition_reid": {
            "train_identity": np.arange(1, 6, dtype=np.uint16).reshape(1, -1),
            "test_identity": np.arange(6, 11, dtype=np.uint16).reshape(1, -1),
        },
    }


def synthesize_rap(
    root: str | os.PathLike[str],
    version: int = 1,
    num_images: int = 2000,
    seed: int = 0,
    partitions: int = 5,
    workers: int | None = None,
    difficulty: float = 1.0,
) -> Path:
    """Generate a synthetic RAP v1 or v2 dataset under ``root`` unless its annotation file already exists.

    v1 (spec §3.2): struct ``RAP_annotation`` with ``partion`` (``partitions``×1 cell of train/test 1-based
    int32 row vectors, ≈ 80/20), ``label`` N×92 int32 (about 1% of Female values are 2),
    ``attribute_chinese`` (placeholders), ``attribute_eng``, ``position``, ``imagesname``, ``attribute_exp``.
    v2 (spec §4.2): ``name``, ``data`` N×152 int32 (viewpoint 1-4 in column 111, boxes in 120-151, ~0.2%
    of selected cells are 2), ``attribute`` (152), the real 54 ``selected_attribute`` indices,
    ``partition_attribute`` 1×``partitions`` cell of train_index/val_index/test_index (≈ 60/20/20),
    ``person_identity``, ``partition_reid``. Images ``RAP_dataset/<rap_image_name(i)>`` (PNG).
    Byte-identical per ``seed`` for any ``workers``.
    """
    if version not in (1, 2):
        raise ValueError(f"version must be 1 or 2, got {version!r}")
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    root = Path(root).expanduser().resolve()
    if not (root / ANNOTATION).is_file() and num_images < 3:
        raise ValueError(f"num_images must be >= 3, got {num_images}")
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))

    def produce(tmp: Path) -> None:
        logger.info(
            "Synthesizing %d RAP v%d-format images (%d partitions, seed %d) into %s with %d worker(s)",
            num_images, version, partitions, seed, root, workers,
        )  # fmt: skip
        (tmp / IMAGE_DIR).mkdir()
        (tmp / ANNOTATION).parent.mkdir()
        names = [rap_image_name(i) for i in range(num_images)]
        y26 = render_images(
            tmp, [f"{IMAGE_DIR}/{name}" for name in names], seed, workers, difficulty, "PNG", log=logger
        )
        build = _v1_struct if version == 1 else _v2_struct
        header = (
            f"par-lightning synthetic RAP v{version} (generator v{GENERATOR_VERSION}), seed {seed}, "
            f"difficulty {difficulty:g}"
        )
        savemat_fixed_header(
            tmp / ANNOTATION, {"RAP_annotation": build(y26, names, seed, partitions)}, header
        )

    return write_atomically(root, ANNOTATION, produce, f"RAP v{version}", log=logger)[0]
