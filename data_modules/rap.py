"""RAP v1 and RAP v2: the ``RAP_annotation.mat`` parsers (datasets spec §3, §4, §5.1) and their DataModule.

Both versions ship the same layout (spec §3.1, §4.1)::

    <root>/RAP_dataset/<image>.png
    <root>/RAP_annotation/RAP_annotation.mat     (also accepted: <root>/RAP_annotation.mat)

Standard protocol (spec §0.2, §5.1): RAP v1 evaluates the first 51 label columns on partition 0 and has
no validation split (its ``train`` already is trainval); RAP v2 evaluates the 54 columns listed in
``selected_attribute`` and has train/val/test. Label value 2 means "uncertain": ``uncertain="negative"``
maps it to 0 (Rethinking), ``uncertain="ignore"`` keeps it, and the model masks it out of loss and metrics
(DeepMAR / official RAP scripts).

RAP v1 validation: storing ``val = test`` would make ``trainval`` (= train + val) contain the test set, so
the parser never does that. With ``val_fraction == 0`` the annotation has no ``val`` split (``trainval``
== ``train``), and :class:`RAPDataModule` points any role set to ``"val"`` at ``"test"`` instead (logged),
which is the standard protocol (validate on test). With ``val_fraction > 0`` a fixed-seed random subset
of the partition's train indices becomes ``val`` (``trainval`` is then the full original train set).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from data_modules.annotation import PARAnnotation
from data_modules.base import PARDataModule
from data_modules.detect import guess_dataset
from data_modules.errors import DatasetFormatError, DatasetNotFoundError
from data_modules.label_list import parse_label_lists, resolve_label_lists
from data_modules.matfile import cell_strings, describe, index_vector, int_matrix, label_matrix, load_mat

__all__ = [
    "RAP1_ATTRIBUTES",
    "RAP1_EVAL_ATTRIBUTES",
    "RAP2_EVAL_ATTRIBUTES",
    "RAP2_SELECTED_ATTRIBUTE",
    "RAPDataModule",
    "parse_rap_v1",
    "parse_rap_v2",
]

log = logging.getLogger(__name__)

VARIABLE = "RAP_annotation"
UNCERTAIN_MODES: tuple[str, ...] = ("negative", "ignore")
VERSIONS: tuple[int, ...] = (1, 2)
ANNOTATION_CANDIDATES: tuple[str, ...] = ("RAP_annotation/RAP_annotation.mat", "RAP_annotation.mat")
IMAGE_DIR = "RAP_dataset"

# RAP v1 `attribute_eng` (92 names, spec §3.3); the first 51 are evaluated.
RAP1_ATTRIBUTES: tuple[str, ...] = (
    "Female", "AgeLess16", "Age17-30", "Age31-45", "BodyFat", "BodyNormal", "BodyThin", "Customer",
    "Clerk", "hs-BaldHead", "hs-LongHair", "hs-BlackHair", "hs-Hat", "hs-Glasses", "hs-Muffler",
    "ub-Shirt", "ub-Sweater", "ub-Vest", "ub-TShirt", "ub-Cotton", "ub-Jacket", "ub-SuitUp",
    "ub-Tight", "ub-ShortSleeve", "lb-LongTrousers", "lb-Skirt", "lb-ShortSkirt", "lb-Dress",
    "lb-Jeans", "lb-TightTrousers", "shoes-Leather", "shoes-Sport", "shoes-Boots", "shoes-Cloth",
    "shoes-Casual", "attach-Backpack", "attach-SingleShoulderBag", "attach-HandBag", "attach-Box",
    "attach-PlasticBag", "attach-PaperBag", "attach-HandTrunk", "attach-Other", "action-Calling",
    "action-Talking", "action-Gathering", "action-Holding", "action-Pusing", "action-Pulling",
    "action-CarrybyArm", "action-CarrybyHand", "faceFront", "faceBack", "faceLeft", "faceRight",
    "occlusionLeft", "occlusionRight", "occlusionUp", "occlusionDown", "occlusion-Environment",
    "occlusion-Attachment", "occlusion-Person", "occlusion-Other", "up-Black", "up-White",
    "up-Gray", "up-Red", "up-Green", "up-Blue", "up-Yellow", "up-Brown", "up-Purple", "up-Pink",
    "up-Orange", "up-Mixture", "low-Black", "low-White", "low-Gray", "low-Red", "low-Green",
    "low-Blue", "low-Yellow", "low-Mixture", "shoes-Black", "shoes-White", "shoes-Gray",
    "shoes-Red", "shoes-Green", "shoes-Blue", "shoes-Yellow", "shoes-Brown", "shoes-Mixture",
)  # fmt: skip
RAP1_NUM_EVAL = 51
RAP1_EVAL_ATTRIBUTES: tuple[str, ...] = RAP1_ATTRIBUTES[:RAP1_NUM_EVAL]

# RAP v2 `selected_attribute` (1-based, spec §4.4) and the names of those columns, raw order.
RAP2_SELECTED_ATTRIBUTE: tuple[int, ...] = (
    1, 2, 3, 4, 5, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
    46, 48, 49, 51, 52, 53, 68, 69, 70, 71, 73, 74, 89, 90, 91, 93, 94, 95, 96, 98, 99, 101, 102,
    106, 107, 108, 109, 110, 111,
)  # fmt: skip
RAP2_EVAL_ATTRIBUTES: tuple[str, ...] = (
    "Femal", "AgeLess16", "Age17-30", "Age31-45", "Age46-60", "BodyFat", "BodyNormal", "BodyThin",
    "Customer", "Employee", "hs-BaldHead", "hs-LongHair", "hs-BlackHair", "hs-Hat", "hs-Glasses",
    "ub-Shirt", "ub-Sweater", "ub-Vest", "ub-TShirt", "ub-Cotton", "ub-Jacket", "ub-SuitUp",
    "ub-Tight", "ub-ShortSleeve", "ub-Others", "lb-LongTrousers", "lb-Skirt", "lb-ShortSkirt",
    "lb-Dress", "lb-Jeans", "lb-TightTrousers", "shoes-Leather", "shoes-Sports", "shoes-Boots",
    "shoes-Cloth", "shoes-Casual", "shoes-Other", "attachment-Backpack", "attachment-ShoulderBag",
    "attachment-HandBag", "attachment-Box", "attachment-PlasticBag", "attachment-PaperBag",
    "attachment-HandTrunk", "attachment-Other", "action-Calling", "action-Talking",
    "action-Gathering", "action-Holding", "action-Pushing", "action-Pulling",
    "action-CarryingByArm", "action-CarryingByHand", "action-Other",
)  # fmt: skip

# (field name, position) per version; positions are the documented field order (spec §3.2, §4.2).
V1_FIELDS: dict[str, int] = {"partion": 0, "label": 1, "attribute_eng": 3, "imagesname": 5}
V2_FIELDS: dict[str, int] = {
    "name": 0,
    "data": 1,
    "attribute": 2,
    "selected_attribute": 3,
    "partition_attribute": 4,
}
V1_MARKERS = frozenset({"partion", "imagesname", "attribute_eng", "attribute_exp"})
V2_MARKERS = frozenset({"partition_attribute", "selected_attribute", "person_identity", "partition_reid"})


# --- helpers --------------------------------------------------------------------------------------


def _check_uncertain(uncertain: str) -> None:
    if uncertain not in UNCERTAIN_MODES:
        raise ValueError(
            f"uncertain={uncertain!r} is not valid; use one of {list(UNCERTAIN_MODES)} "
            "('negative' maps label 2 to 0, 'ignore' keeps 2 so the model masks it out)"
        )


def _load_struct(path: Path, version: int) -> np.ndarray:
    """Load the top-level ``RAP_annotation`` 1×1 struct, explaining a wrong variable or version."""
    try:
        raw = load_mat(path, (VARIABLE,))
    except DatasetNotFoundError:
        raise
    except DatasetFormatError as exc:
        if "missing variable" not in str(exc):
            raise
        present = {name for name, _shape, _cls in scipy.io.whosmat(str(path))}
        hint = ""
        if "peta" in present:
            hint = " The file looks like PETA's PETA.mat (variable 'peta'); use the PETA DataModule."
        elif "train_images_name" in present or "attributes" in present:
            hint = " The file looks like PA-100K's annotation.mat; use PA100KDataModule."
        raise DatasetFormatError(
            f"{path}: expected the top-level struct variable '{VARIABLE}' of a RAP v{version} "
            f"RAP_annotation.mat, but the file contains {sorted(present)}.{hint}"
        ) from exc
    struct = raw[VARIABLE]
    if not isinstance(struct, np.ndarray) or not struct.dtype.names or struct.size != 1:
        raise DatasetFormatError(
            f"{path}: variable '{VARIABLE}' should be a 1×1 MATLAB struct, but found {describe(struct)}."
        )
    fields = set(struct.dtype.names)
    other, markers = (2, V2_MARKERS) if version == 1 else (1, V1_MARKERS)
    own = V1_MARKERS if version == 1 else V2_MARKERS
    if fields & markers and not fields & own:
        raise DatasetFormatError(
            f"{path}: '{VARIABLE}' has fields {list(struct.dtype.names)}, which is the RAP v{other} layout, "
            f"but RAP v{version} was requested; set version={other} (RAPDataModule(version={other}))."
        )
    return struct


def _field(struct: np.ndarray, path: Path, name: str, position: int, parent: str = VARIABLE) -> Any:
    """Field ``name`` of a 1×1 struct, else the field at ``position`` (logged); error if neither exists."""
    names = struct.dtype.names or ()
    if name in names:
        return struct.reshape(-1)[0][name]
    if position < len(names):
        log.warning(
            "%s: %s has no field '%s'; using field number %d ('%s') as the spec's positional fallback",
            path,
            parent,
            name,
            position,
            names[position],
        )
        return struct.reshape(-1)[0][position]
    raise DatasetFormatError(
        f"{path}: missing field '{parent}.{name}' (expected at position {position}); "
        f"'{parent}' has fields {list(names)}. See the RAP format spec for the expected fields."
    )


def _indices(value: Any, path: Path, field: str, upper: int) -> np.ndarray:
    """1-based MATLAB indices → 0-based ``int64``, explaining 0-based files and out-of-range values."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf" and value.size:
        flat = value.reshape(-1).astype(np.float64)
        if flat.min() == 0 and flat.max() <= upper - 1:
            raise DatasetFormatError(
                f"{path}: field '{field}' contains index 0 (range [0, {int(flat.max())}]); the RAP files "
                f"store 1-based MATLAB indices in [1, {upper}]. This file looks 0-based (written by Python?): "
                "add 1 to the indices and re-save it."
            )
    return index_vector(value, path, field, upper=upper)


def _check_unique(names: list[str], path: Path, field: str) -> None:
    if len(set(names)) != len(names):
        dups = [n for n, count in Counter(names).items() if count > 1]
        raise DatasetFormatError(
            f"{path}: field '{field}' should list each image once, but {len(dups)} names are duplicated "
            f"(e.g. {sorted(set(dups))[:5]})."
        )


def _partition(cells: Any, path: Path, field: str, partition: int) -> np.ndarray:
    """Element ``partition`` (0-based) of the partition cell, as a 1×1 struct."""
    if not isinstance(cells, np.ndarray) or cells.dtype != object or cells.ndim != 2 or min(cells.shape) > 1:
        raise DatasetFormatError(
            f"{path}: field '{field}' should be a 5×1 (or 1×5) cell array of structs, "
            f"but found {describe(cells)}."
        )
    count = cells.size
    if not 0 <= partition < count:
        raise DatasetFormatError(
            f"{path}: partition={partition} is out of range; '{field}' holds {count} partitions, "
            f"valid values are 0..{count - 1} (0 is the standard protocol)."
        )
    item = cells.reshape(-1)[partition]
    if not isinstance(item, np.ndarray) or not item.dtype.names or item.size != 1:
        raise DatasetFormatError(
            f"{path}: field '{field}[{partition}]' should be a 1×1 struct, but found {describe(item)}."
        )
    return item


def _warn_names(path: Path, field: str, names: tuple[str, ...], standard: tuple[str, ...]) -> None:
    if names != standard:
        diff = next((i for i, (a, b) in enumerate(zip(names, standard, strict=False)) if a != b), None)
        log.warning(
            "%s: %s differs from the standard list (%d names vs %d; first difference at %s); using the file's names",
            path,
            field,
            len(names),
            len(standard),
            f"index {diff}" if diff is not None else "the end",
        )


def _image_names(value: Any, field: str, label_field: str, num_rows: int, path: Path) -> list[str]:
    """The image-name cell, checked for one name per label row and no duplicates."""
    files = cell_strings(value, path, f"{VARIABLE}.{field}")
    if len(files) != num_rows:
        raise DatasetFormatError(
            f"{path}: '{VARIABLE}.{field}' lists {len(files)} images but '{VARIABLE}.{label_field}' has "
            f"{num_rows} rows; there must be exactly one label row per image name."
        )
    _check_unique(files, path, f"{VARIABLE}.{field}")
    return files


def _split_indices(
    cells: Any, field: str, partition: int, splits: tuple[str, ...], suffix: str, upper: int, path: Path
) -> dict[str, np.ndarray]:
    """0-based row indices of each split of partition ``partition`` (fields ``<split><suffix>`` in order)."""
    part_field = f"{VARIABLE}.{field}"
    part = _partition(cells, path, part_field, partition)
    where = f"{part_field}[{partition}]"
    return {
        split: _indices(
            _field(part, path, split + suffix, pos, where), path, f"{where}.{split}{suffix}", upper
        )
        for pos, split in enumerate(splits)
    }


def _apply_uncertain(labels: np.ndarray, uncertain: str) -> np.ndarray:
    if uncertain == "negative":
        labels = labels.copy()
        labels[labels == 2] = 0
    return labels


# --- parsers --------------------------------------------------------------------------------------


def parse_rap_v1(
    mat_path: str | os.PathLike,
    image_dir: str | os.PathLike,
    partition: int = 0,
    uncertain: str = "negative",
    val_fraction: float = 0.0,
    val_seed: int = 0,
) -> PARAnnotation:
    """Parse a RAP v1 ``RAP_annotation.mat`` (spec §3.2): 51 evaluated attributes, train/test per partition.

    Labels are ``label[:, 0:51]``, names ``attribute_eng[0:51]``, images ``imagesname``; all counts come
    from the array shapes. Fields are read by name with the documented positional fallback.

    Args:
        mat_path: the ``.mat`` file.
        image_dir: folder with the images (paths are ``image_dir / name``, absolute; not checked here).
        partition: 0-based partition number (the file has 5; 0 = standard protocol).
        uncertain: ``"negative"`` maps label 2 to 0, ``"ignore"`` keeps 2 (masked by the model).
        val_fraction: if > 0, this fraction of the partition's train images (fixed-seed random choice)
            becomes ``val``; if 0 the annotation has no ``val`` split (``trainval`` == ``train``).
        val_seed: seed of that choice.

    Raises:
        ValueError: invalid ``uncertain`` / ``val_fraction``.
        DatasetFormatError: naming file, field and expectation (wrong variable, missing field, partition
            out of range, 0-based or out-of-range indices, label columns, duplicate names, ...).
    """
    _check_uncertain(uncertain)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    path = Path(mat_path)
    struct = _load_struct(path, 1)
    f = {name: _field(struct, path, name, pos) for name, pos in V1_FIELDS.items()}
    attributes = cell_strings(f["attribute_eng"], path, f"{VARIABLE}.attribute_eng")
    if len(attributes) < RAP1_NUM_EVAL:
        raise DatasetFormatError(
            f"{path}: field '{VARIABLE}.attribute_eng' should list at least {RAP1_NUM_EVAL} names "
            f"(92 in the release), but found {len(attributes)}."
        )
    names = tuple(attributes[:RAP1_NUM_EVAL])
    _warn_names(path, "attribute_eng[0:51]", names, RAP1_EVAL_ATTRIBUTES)
    full = int_matrix(
        f["label"],
        path,
        f"{VARIABLE}.label",
        num_columns=len(attributes),
        columns_source=f"'{VARIABLE}.attribute_eng'",
    )
    labels = label_matrix(full[:, :RAP1_NUM_EVAL], path, f"{VARIABLE}.label[:, 0:51]", allowed=(0, 1, 2))
    files = _image_names(f["imagesname"], "imagesname", "label", labels.shape[0], path)
    labels = _apply_uncertain(labels, uncertain)
    idx = _split_indices(f["partion"], "partion", partition, ("train", "test"), "", len(files), path)
    if val_fraction > 0:
        n_train = len(idx["train"])
        n_val = round(n_train * val_fraction)
        if not 1 <= n_val < n_train:
            raise ValueError(
                f"val_fraction={val_fraction} of {n_train} train images gives {n_val} val images; "
                "choose a fraction that leaves at least one image in both train and val"
            )
        chosen = np.zeros(n_train, dtype=bool)
        chosen[np.random.default_rng(val_seed).permutation(n_train)[:n_val]] = True
        idx["train"], idx["val"] = idx["train"][~chosen], idx["train"][chosen]
    root = Path(image_dir).absolute()
    return PARAnnotation(
        attribute_names=names,
        image_paths={s: tuple(root / files[i] for i in ix) for s, ix in idx.items()},
        labels={s: labels[ix] for s, ix in idx.items()},
        source=path.absolute(),
    )


def parse_rap_v2(
    mat_path: str | os.PathLike,
    image_dir: str | os.PathLike,
    partition: int = 0,
    uncertain: str = "negative",
) -> PARAnnotation:
    """Parse a RAP v2 ``RAP_annotation.mat`` (spec §4.2): 54 selected attributes, train/val/test.

    Labels are ``data[:, selected_attribute - 1]``, names ``attribute[selected_attribute - 1]``, images
    ``name`` (a stored name whose file is missing but whose ``.png`` variant exists uses the ``.png``,
    spec §4.1), splits ``partition_attribute[partition].{train,val,test}_index``.

    Raises:
        ValueError: invalid ``uncertain``.
        DatasetFormatError: as :func:`parse_rap_v1`.
    """
    _check_uncertain(uncertain)
    path = Path(mat_path)
    struct = _load_struct(path, 2)
    f = {name: _field(struct, path, name, pos) for name, pos in V2_FIELDS.items()}
    attributes = cell_strings(f["attribute"], path, f"{VARIABLE}.attribute")
    data = int_matrix(
        f["data"],
        path,
        f"{VARIABLE}.data",
        num_columns=len(attributes),
        columns_source=f"'{VARIABLE}.attribute'",
    )
    selected = _indices(f["selected_attribute"], path, f"{VARIABLE}.selected_attribute", upper=data.shape[1])
    if len(set(selected.tolist())) != len(selected):
        raise DatasetFormatError(f"{path}: field '{VARIABLE}.selected_attribute' repeats a column index.")
    names = tuple(attributes[i] for i in selected)
    _warn_names(path, "attribute[selected_attribute-1]", names, RAP2_EVAL_ATTRIBUTES)
    labels = label_matrix(
        data[:, selected], path, f"{VARIABLE}.data[:, selected_attribute-1]", allowed=(0, 1, 2)
    )
    files = _image_names(f["name"], "name", "data", labels.shape[0], path)
    labels = _apply_uncertain(labels, uncertain)
    splits = ("train", "val", "test")
    idx = _split_indices(
        f["partition_attribute"], "partition_attribute", partition, splits, "_index", len(files), path
    )
    root = Path(image_dir).absolute()
    paths = []
    for name in files:
        p = root / name
        if not name.lower().endswith(".png") and not p.exists() and (root / (name[:-3] + "png")).exists():
            p = root / (name[:-3] + "png")
        paths.append(p)
    return PARAnnotation(
        attribute_names=names,
        image_paths={s: tuple(paths[i] for i in ix) for s, ix in idx.items()},
        labels={s: labels[ix] for s, ix in idx.items()},
        source=path.absolute(),
    )


# --- DataModule -----------------------------------------------------------------------------------


class RAPDataModule(PARDataModule):
    """RAP v1 (51 attributes, train/test) or RAP v2 (54 attributes, train/val/test) DataModule.

    Args:
        root: dataset folder holding ``RAP_dataset/`` and ``RAP_annotation/RAP_annotation.mat``.
        version: 1 or 2.
        mat_path: explicit annotation file (default: ``<root>/RAP_annotation/RAP_annotation.mat``, then
            ``<root>/RAP_annotation.mat``; the same name for both versions).
        image_dir: explicit image folder (default ``<root>/RAP_dataset``).
        partition: 0-based partition (5 in the release; 0 = standard protocol).
        uncertain: ``"negative"`` (label 2 → 0) or ``"ignore"`` (keep 2; the model masks it).
        val_fraction: RAP v1 only: fraction of train carved out as ``val`` (fixed seed). With 0 there is
            no ``val`` split, and any ``*_split="val"`` is redirected to ``"test"`` (logged), the standard
            protocol; ``trainval`` is then ``train``.
        val_seed: seed of the val carve-out.
        label_lists: RAP v1 only: split name → ALM-style label list (spec §6, e.g.
            ``{"train": "train.txt", "test": "test.txt"}``; relative paths are resolved against ``root``)
            to read instead of the ``.mat`` file. Image paths in the lists are relative to ``image_dir``
            if given, else ``root``; value 2 in a list follows ``uncertain``. Without a ``val`` list,
            ``*_split="val"`` is redirected to ``"test"`` (logged).
        synthesize: if no annotation is found in ``root``, first generate a synthetic RAP v``version`` set
            there (``data_modules.synthetic.synthesize_rap``); logged, never silent.
        synth_num_images: images to synthesize.
        synth_seed: generator seed.
        synth_difficulty: generator clutter/occlusion/noise scale.
        kwargs: the shared options of :class:`PARDataModule` (batch size, input size, splits, ...).
    """

    def __init__(
        self,
        root: str = "data/RAP",
        version: int = 1,
        mat_path: str | None = None,
        image_dir: str | None = None,
        partition: int = 0,
        uncertain: str = "negative",
        val_fraction: float = 0.0,
        val_seed: int = 0,
        label_lists: dict[str, str] | None = None,
        synthesize: bool = False,
        synth_num_images: int = 2000,
        synth_seed: int = 0,
        synth_difficulty: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.synthesize = synthesize
        self.synth_options = {
            "num_images": synth_num_images,
            "seed": synth_seed,
            "difficulty": synth_difficulty,
        }
        if version not in VERSIONS:
            raise ValueError(f"RAPDataModule: version={version!r}; valid versions: {list(VERSIONS)}")
        _check_uncertain(uncertain)
        if not isinstance(partition, int) or partition < 0:
            raise ValueError(f"RAPDataModule: partition must be an integer >= 0 (0..4), got {partition!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"RAPDataModule: val_fraction must be in [0, 1), got {val_fraction}")
        if version == 2 and val_fraction > 0:
            raise ValueError(
                "RAPDataModule: val_fraction applies to RAP v1 only; RAP v2 has its own val split"
            )
        self.root = Path(root)
        self.version = version
        self.mat_path = Path(mat_path) if mat_path else None
        self.image_dir = Path(image_dir) if image_dir else None
        self.partition, self.uncertain = partition, uncertain
        self.val_fraction, self.val_seed = val_fraction, val_seed
        self.label_lists = dict(label_lists) if label_lists else None
        if self.label_lists is not None:
            if version != 1:
                raise ValueError(
                    "RAPDataModule: label_lists needs version=1; ALM has no RAP v2 label list (spec §6)"
                )
            if val_fraction > 0:
                raise ValueError(
                    "RAPDataModule: val_fraction does not apply to label_lists; pass a 'val' list"
                )
            self._use_test_for_missing_val("val" in self.label_lists)
        else:
            self._use_test_for_missing_val(version == 2 or val_fraction > 0)

    def _parse(self) -> PARAnnotation:
        if self.label_lists is not None:
            ann = parse_label_lists(
                resolve_label_lists(self.label_lists, self.root),
                image_root=self.image_dir if self.image_dir is not None else self.root,
                attribute_names=RAP1_EVAL_ATTRIBUTES,
                allowed=(0, 1, 2),
            )
            labels = {s: _apply_uncertain(y, self.uncertain) for s, y in ann.labels.items()}
            return PARAnnotation(ann.attribute_names, dict(ann.image_paths), labels, ann.source)
        mat_path, image_dir = self._locate()
        if self.version == 1:
            return parse_rap_v1(
                mat_path, image_dir, self.partition, self.uncertain, self.val_fraction, self.val_seed
            )
        return parse_rap_v2(mat_path, image_dir, self.partition, self.uncertain)

    def _locate(self) -> tuple[Path, Path]:
        mat: Path | None
        if self.mat_path is not None:
            mat = self.mat_path
            if not mat.is_file():
                raise DatasetNotFoundError(f"RAP annotation file {mat} (mat_path) does not exist.")
        else:
            mat = next((p for p in (self.root / c for c in ANNOTATION_CANDIDATES) if p.is_file()), None)
            if mat is None and self.synthesize:
                from data_modules.synthetic import synthesize_rap  # lazy: only needed here

                name = f"RAP v{self.version}"
                self._synthesize(name, self.root, synthesize_rap, version=self.version, **self.synth_options)
                mat = next((p for p in (self.root / c for c in ANNOTATION_CANDIDATES) if p.is_file()), None)
            if mat is None:
                raise self._not_found_error()
        image_dir = self.image_dir if self.image_dir is not None else self.root / IMAGE_DIR
        if not image_dir.is_dir():
            raise DatasetNotFoundError(
                f"RAP v{self.version} image folder {image_dir} does not exist. Put the images "
                f"(CAM01_..._line1.png, ...) in {self.root / IMAGE_DIR} or pass image_dir=<folder with the .png files>."
            )
        return mat, image_dir

    def _not_found_error(self) -> DatasetNotFoundError:
        layout = (
            f"expected layout: {self.root}/{IMAGE_DIR}/<image>.png and {self.root}/{ANNOTATION_CANDIDATES[0]} "
            "(or pass mat_path/image_dir explicitly)"
        )
        if not self.root.exists():
            return DatasetNotFoundError(f"RAP v{self.version} root {self.root} does not exist; {layout}.")
        tried = [str(self.root / c) for c in ANNOTATION_CANDIDATES]
        other = guess_dataset(self.root, exclude="RAP")
        hint = f" The folder looks like {other}." if other else ""
        return DatasetNotFoundError(
            f"No RAP v{self.version} annotation file under {self.root} (tried {tried}); {layout}.{hint}"
        )
