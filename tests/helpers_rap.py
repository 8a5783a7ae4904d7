"""Write tiny but format-faithful RAP v1 / v2 sets (datasets spec §3, §4, §10) for tests.

Written from the spec, independently of ``data_modules.rap``: a top-level ``RAP_annotation`` 1×1 struct
with the real field names in file order, N×1 cells of ``str``, 1-based integer index row vectors, int32
labels (v1: 92 columns, some 2s in column 0; v2: 152 columns with viewpoint and box columns, a few 2s),
and tiny PNGs named like the real ones. Tests corrupt it on purpose through ``overrides`` / ``drop`` /
``partition_overrides``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from PIL import Image

from tests.helpers_pa100k import cell

__all__ = [
    "RAP1_ENG",
    "RAP1_EXP",
    "RAP2_EVAL",
    "RAP2_SELECTED",
    "TinyRAP",
    "cell",
    "image_name",
    "write_rap_v1",
    "write_rap_v2",
]

# spec §3.3, attribute_eng (92)
RAP1_ENG = [
    "Female",
    "AgeLess16",
    "Age17-30",
    "Age31-45",
    "BodyFat",
    "BodyNormal",
    "BodyThin",
    "Customer",
    "Clerk",
    "hs-BaldHead",
    "hs-LongHair",
    "hs-BlackHair",
    "hs-Hat",
    "hs-Glasses",
    "hs-Muffler",
    "ub-Shirt",
    "ub-Sweater",
    "ub-Vest",
    "ub-TShirt",
    "ub-Cotton",
    "ub-Jacket",
    "ub-SuitUp",
    "ub-Tight",
    "ub-ShortSleeve",
    "lb-LongTrousers",
    "lb-Skirt",
    "lb-ShortSkirt",
    "lb-Dress",
    "lb-Jeans",
    "lb-TightTrousers",
    "shoes-Leather",
    "shoes-Sport",
    "shoes-Boots",
    "shoes-Cloth",
    "shoes-Casual",
    "attach-Backpack",
    "attach-SingleShoulderBag",
    "attach-HandBag",
    "attach-Box",
    "attach-PlasticBag",
    "attach-PaperBag",
    "attach-HandTrunk",
    "attach-Other",
    "action-Calling",
    "action-Talking",
    "action-Gathering",
    "action-Holding",
    "action-Pusing",
    "action-Pulling",
    "action-CarrybyArm",
    "action-CarrybyHand",
    "faceFront",
    "faceBack",
    "faceLeft",
    "faceRight",
    "occlusionLeft",
    "occlusionRight",
    "occlusionUp",
    "occlusionDown",
    "occlusion-Environment",
    "occlusion-Attachment",
    "occlusion-Person",
    "occlusion-Other",
    "up-Black",
    "up-White",
    "up-Gray",
    "up-Red",
    "up-Green",
    "up-Blue",
    "up-Yellow",
    "up-Brown",
    "up-Purple",
    "up-Pink",
    "up-Orange",
    "up-Mixture",
    "low-Black",
    "low-White",
    "low-Gray",
    "low-Red",
    "low-Green",
    "low-Blue",
    "low-Yellow",
    "low-Mixture",
    "shoes-Black",
    "shoes-White",
    "shoes-Gray",
    "shoes-Red",
    "shoes-Green",
    "shoes-Blue",
    "shoes-Yellow",
    "shoes-Brown",
    "shoes-Mixture",
]
# spec §3.3, attribute_exp (51)
RAP1_EXP = [
    "Female",
    "AgeLess16",
    "Age17-30",
    "Age31-45",
    "BodyFat",
    "BodyNormal",
    "BodyThin",
    "Customer",
    "Clerk",
    "BaldHead",
    "LongHair",
    "BlackHair",
    "Hat",
    "Glasses",
    "Muffler",
    "Shirt",
    "Sweater",
    "Vest",
    "TShirt",
    "Cotton",
    "Jacket",
    "Suit-Up",
    "Tight",
    "ShortSleeve",
    "LongTrousers",
    "Skirt",
    "ShortSkirt",
    "Dress",
    "Jeans",
    "TightTrousers",
    "LeatherShoes",
    "SportShoes",
    "Boots",
    "ClothShoes",
    "CasualShoes",
    "Backpack",
    "SSBag",
    "HandBag",
    "Box",
    "PlasticBag",
    "PaperBag",
    "HandTrunk",
    "OtherAttchment",
    "Calling",
    "Talking",
    "Gathering",
    "Holding",
    "Pusing",
    "Pulling",
    "CarryingbyArm",
    "CarryingbyHand",
]
_COLORS14 = [
    "Black",
    "White",
    "Gray",
    "Red",
    "Green",
    "Blue",
    "Silver",
    "Yellow",
    "Brown",
    "Purple",
    "Pink",
    "Orange",
    "Mixture",
    "Other",
]
# spec §4.3, columns 0-110 (real), 111-151 (111 viewpoint, 119 occlustion-TypeOther real; others placeholders)
RAP2_COLUMNS = [
    "Femal",
    "AgeLess16",
    "Age17-30",
    "Age31-45",
    "Age46-60",
    "AgeBiger60",
    "BodyFatter",
    "BodyFat",
    "BodyNormal",
    "BodyThin",
    "BodyThiner",
    "Customer",
    "Employee",
    "hs-BaldHead",
    "hs-LongHair",
    "hs-BlackHair",
    "hs-Hat",
    "hs-Glasses",
    "hs-Sunglasses",
    "hs-Muffler",
    "hs-Mask",
    "ub-Shirt",
    "ub-Sweater",
    "ub-Vest",
    "ub-TShirt",
    "ub-Cotton",
    "ub-Jacket",
    "ub-SuitUp",
    "ub-Tight",
    "ub-ShortSleeve",
    "ub-Others",
    "ub-ColorBlack",
    "ub-ColorWhite",
    "ub-ColorGray",
    "up-ColorRed",
    "ub-ColorGreen",
    "ub-ColorBlue",
    "ub-ColorSilver",
    "ub-ColorYellow",
    "ub-ColorBrown",
    "ub-ColorPurple",
    "ub-ColorPink",
    "ub-ColorOrange",
    "ub-ColorMixture",
    "ub-ColorOther",
    "lb-LongTrousers",
    "lb-Shorts",
    "lb-Skirt",
    "lb-ShortSkirt",
    "lb-LongSkirt",
    "lb-Dress",
    "lb-Jeans",
    "lb-TightTrousers",
]
RAP2_COLUMNS += [f"lb-Color{c}" for c in _COLORS14]
RAP2_COLUMNS += [
    "shoes-Leather",
    "shoes-Sports",
    "shoes-Boots",
    "shoes-Cloth",
    "shoes-Sandals",
    "shoes-Casual",
    "shoes-Other",
]
RAP2_COLUMNS += [f"shoes-Color{c}" for c in _COLORS14]
RAP2_COLUMNS += [
    "attachment-Backpack",
    "attachment-ShoulderBag",
    "attachment-HandBag",
    "attachment-WaistBag",
    "attachment-Box",
    "attachment-PlasticBag",
    "attachment-PaperBag",
    "attachment-HandTrunk",
    "attachment-Baby",
    "attachment-Other",
    "action-Calling",
    "action-StrechOutArm",
    "action-Talking",
    "action-Gathering",
    "action-LyingCounter",
    "action-Squatting",
    "action-Running",
    "action-Holding",
    "action-Pushing",
    "action-Pulling",
    "action-CarryingByArm",
    "action-CarryingByHand",
    "action-Other",
    "viewpoint",
]
RAP2_COLUMNS += [f"occlusion-Pos{i}" for i in range(4)] + [f"occlusion-Type{i}" for i in range(3)]
RAP2_COLUMNS += ["occlustion-TypeOther"] + [f"box-{i}" for i in range(120, 152)]
assert len(RAP1_ENG) == 92 and len(RAP1_EXP) == 51 and len(RAP2_COLUMNS) == 152
# spec §4.4
RAP2_SELECTED = [
    1, 2, 3, 4, 5, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
    46, 48, 49, 51, 52, 53, 68, 69, 70, 71, 73, 74, 89, 90, 91, 93, 94, 95, 96, 98, 99, 101, 102,
    106, 107, 108, 109, 110, 111,
]  # fmt: skip
RAP2_EVAL = [
    "Femal",
    "AgeLess16",
    "Age17-30",
    "Age31-45",
    "Age46-60",
    "BodyFat",
    "BodyNormal",
    "BodyThin",
    "Customer",
    "Employee",
    "hs-BaldHead",
    "hs-LongHair",
    "hs-BlackHair",
    "hs-Hat",
    "hs-Glasses",
    "ub-Shirt",
    "ub-Sweater",
    "ub-Vest",
    "ub-TShirt",
    "ub-Cotton",
    "ub-Jacket",
    "ub-SuitUp",
    "ub-Tight",
    "ub-ShortSleeve",
    "ub-Others",
    "lb-LongTrousers",
    "lb-Skirt",
    "lb-ShortSkirt",
    "lb-Dress",
    "lb-Jeans",
    "lb-TightTrousers",
    "shoes-Leather",
    "shoes-Sports",
    "shoes-Boots",
    "shoes-Cloth",
    "shoes-Casual",
    "shoes-Other",
    "attachment-Backpack",
    "attachment-ShoulderBag",
    "attachment-HandBag",
    "attachment-Box",
    "attachment-PlasticBag",
    "attachment-PaperBag",
    "attachment-HandTrunk",
    "attachment-Other",
    "action-Calling",
    "action-Talking",
    "action-Gathering",
    "action-Holding",
    "action-Pushing",
    "action-Pulling",
    "action-CarryingByArm",
    "action-CarryingByHand",
    "action-Other",
]
assert len(RAP2_SELECTED) == 54 and [RAP2_COLUMNS[i - 1] for i in RAP2_SELECTED] == RAP2_EVAL


def _struct_cell(structs: list[dict], shape: tuple[int, int]) -> np.ndarray:
    out = np.empty(len(structs), dtype=object)
    for i, s in enumerate(structs):
        out[i] = s
    return out.reshape(shape)


def _row(indices_0based: np.ndarray, dtype=np.int32) -> np.ndarray:
    """1-based integer row vector (1, n)."""
    return (np.asarray(indices_0based) + 1).astype(dtype).reshape(1, -1)


def image_name(i: int) -> str:
    """A RAP-style image name, e.g. ``CAM01_2014-02-15_20140215161032-20140215162620_tarid0_frame218_line1.png``."""
    return (
        f"CAM{i % 25 + 1:02d}_2014-02-15_20140215161032-20140215162620_tarid{i}_frame{218 + 7 * i}_line1.png"
    )


@dataclass
class TinyRAP:
    """Where the tiny set was written and what it contains (expected parse result, raw order)."""

    root: Path
    mat_path: Path
    image_dir: Path
    names: list[str] = field(default_factory=list)
    labels: np.ndarray | None = None  # evaluated columns, raw values (with 2s)
    splits: list[dict[str, np.ndarray]] = field(default_factory=list)  # per partition, 0-based indices


def _write_images(image_dir: Path, names: list[str], rng: np.random.Generator) -> None:
    image_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        w, h = int(rng.integers(30, 81)), int(rng.integers(80, 201))
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(image_dir / name)


def write_rap_v1(
    root: str | Path,
    num_images: int = 20,
    num_test: int = 5,
    *,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    partition_overrides: dict[str, Any] | None = None,
    variable: str = "RAP_annotation",
    images: bool = True,
) -> TinyRAP:
    """Write ``RAP_annotation/RAP_annotation.mat`` (v1, 5 partitions) and PNGs under ``root``.

    ``overrides``/``drop`` act on the struct fields; ``partition_overrides`` on partition 0's fields.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    mat = root / "RAP_annotation" / "RAP_annotation.mat"
    mat.parent.mkdir(parents=True, exist_ok=True)
    image_dir = root / "RAP_dataset"
    names = [image_name(i) for i in range(num_images)]
    labels = (rng.random((num_images, 92)) < 0.4).astype(np.int32)
    labels[[1, 4, 7], 0] = 2  # uncertain gender (spec §3.2)
    partitions, splits = [], []
    for k in range(5):
        perm = rng.permutation(num_images)
        split = {"train": np.sort(perm[num_test:]), "test": np.sort(perm[:num_test])}
        fields = {"train": _row(split["train"]), "test": _row(split["test"])}
        if k == 0:
            fields.update(partition_overrides or {})
        partitions.append(fields)
        splits.append(split)
    struct = {
        "partion": _struct_cell(partitions, (5, 1)),
        "label": labels,
        "attribute_chinese": cell([f"属性{i}" for i in range(92)]),
        "attribute_eng": cell(RAP1_ENG),
        "position": rng.integers(0, 300, size=(num_images, 16)).astype(np.int32),
        "imagesname": cell(names),
        "attribute_exp": cell(RAP1_EXP),
    }
    struct.update(overrides or {})
    for name in drop:
        struct.pop(name)
    scipy.io.savemat(mat, {variable: struct})
    if images:
        _write_images(image_dir, names, rng)
    return TinyRAP(root, mat, image_dir, names, labels[:, :51].astype(np.int8), splits)


def write_rap_v2(
    root: str | Path,
    num_images: int = 24,
    sizes: tuple[int, int] = (5, 5),
    *,
    seed: int = 1,
    overrides: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    partition_overrides: dict[str, Any] | None = None,
    images: bool = True,
) -> TinyRAP:
    """Write a RAP v2 ``RAP_annotation/RAP_annotation.mat`` (5 partitions, val/test of ``sizes``) and PNGs."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    mat = root / "RAP_annotation" / "RAP_annotation.mat"
    mat.parent.mkdir(parents=True, exist_ok=True)
    image_dir = root / "RAP_dataset"
    names = [image_name(1000 + i) for i in range(num_images)]
    data = (rng.random((num_images, 152)) < 0.4).astype(np.int32)
    data[:, 111] = rng.integers(1, 5, size=num_images)  # viewpoint 1-4
    data[:, 120:] = rng.integers(0, 400, size=(num_images, 32))  # boxes
    data[2, 0] = data[5, 13] = data[9, 110] = 2  # a few uncertain cells in selected columns
    data[3, 6] = 2  # and one in a non-selected column
    n_val, n_test = sizes
    partitions, splits = [], []
    for k in range(5):
        perm = rng.permutation(num_images)
        split = {
            "train": np.sort(perm[n_val + n_test :]),
            "val": np.sort(perm[:n_val]),
            "test": np.sort(perm[n_val : n_val + n_test]),
        }
        fields = {f"{s}_index": _row(ix, np.uint32) for s, ix in split.items()}
        if k == 0:
            fields.update(partition_overrides or {})
        partitions.append(fields)
        splits.append(split)
    struct = {
        "name": cell(names),
        "data": data,
        "attribute": cell(RAP2_COLUMNS),
        "selected_attribute": np.asarray(RAP2_SELECTED, dtype=np.int32).reshape(1, 54),
        "partition_attribute": _struct_cell(partitions, (1, 5)),
        "person_identity": rng.integers(-2, 50, size=(num_images, 1)).astype(np.int16),
        "partition_reid": {
            "train_identity": np.arange(1, 6, dtype=np.uint16).reshape(1, -1),
            "test_identity": np.arange(6, 10, dtype=np.uint16).reshape(1, -1),
        },
    }
    struct.update(overrides or {})
    for name in drop:
        struct.pop(name)
    scipy.io.savemat(mat, {"RAP_annotation": struct})
    if images:
        _write_images(image_dir, names, rng)
    sel = np.asarray(RAP2_SELECTED) - 1
    return TinyRAP(root, mat, image_dir, names, data[:, sel].astype(np.int8), splits)
