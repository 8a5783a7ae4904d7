"""PETA: the DeepMAR-curated ``PETA.mat`` parser (datasets spec §1) and its DataModule.

Layout (spec §1.1 b)::

    <root>/PETA.mat                          # top-level struct `peta`
    <root>/images/00001.png ... 19000.png    # row i of `peta.data` is images/{i+1:05d}.png

``peta`` is a 1×1 struct with fields (by name, falling back to position) ``data`` (N×109: 4 metadata
columns, then 105 binary labels), ``attribute`` (105×1 cell of names), ``selected_attribute`` (unused)
and ``partition_attribute`` (5×1 cell; each a 1×1 struct of ``train``, ``val``, ``test`` column vectors of
1-based row indices). The standard protocol evaluates the first 35 attributes on partition 0.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from data_modules.annotation import PARAnnotation
from data_modules.attributes import PETA_EVAL_ATTRIBUTES
from data_modules.base import PARDataModule
from data_modules.detect import guess_dataset
from data_modules.errors import DatasetFormatError, DatasetNotFoundError
from data_modules.label_list import parse_label_lists, resolve_label_lists
from data_modules.matfile import cell_strings, describe, index_vector, label_matrix, load_mat, struct_field

__all__ = ["PETADataModule", "parse_peta"]

log = logging.getLogger(__name__)

VARIABLE = "peta"
SPLITS: tuple[str, ...] = ("train", "val", "test")
FIELDS: tuple[str, ...] = ("data", "attribute", "selected_attribute", "partition_attribute")
NUM_METADATA_COLUMNS = 4
NUM_ALL_ATTRIBUTES = 105
ATTRIBUTE_MODES: tuple[str, ...] = ("eval", "all")
MAT_NAME = "PETA.mat"
IMAGE_DIR_NAME = "images"


def _load_peta_struct(path: Path) -> Any:
    try:
        return load_mat(path, (VARIABLE,))[VARIABLE]
    except DatasetNotFoundError:
        raise
    except DatasetFormatError as exc:
        other = guess_dataset(path, exclude="PETA")
        if other is None:
            raise
        raise DatasetFormatError(f"{exc} This file looks like {other}, not PETA.") from exc


def _peta_field(struct: Any, path: Path, name: str, position: int) -> Any:
    """Field ``name`` of ``peta``; by position only when the file uses none of the known field names.

    A file that names some fields the standard way but lacks ``name`` is reported as missing it, rather
    than silently reading a different field at that position.
    """
    names = getattr(getattr(struct, "dtype", None), "names", None) or ()
    if name not in names and set(names) & set(FIELDS):
        raise DatasetFormatError(
            f"{path}: struct '{VARIABLE}' has no field '{name}'; it has fields {list(names)}, expected "
            f"{list(FIELDS)} (spec: DeepMAR PETA.mat)."
        )
    return struct_field(struct, path, VARIABLE, name, position)


def _unwrap_cell_item(item: Any) -> Any:
    """Unwrap singleton object arrays around a struct stored in a cell."""
    while isinstance(item, np.ndarray) and item.dtype == object and item.size == 1:
        item = item.reshape(-1)[0]
    return item


def _partition_indices(parts: Any, path: Path, partition: int, num_rows: int) -> dict[str, np.ndarray]:
    field = f"{VARIABLE}.partition_attribute"
    if not isinstance(parts, np.ndarray) or parts.dtype != object or parts.size == 0:
        raise DatasetFormatError(
            f"{path}: field '{field}' should be a K×1 cell array of 1×1 structs (train, val, test), "
            f"but found {describe(parts)}."
        )
    cells = parts.reshape(-1)
    if not 0 <= partition < len(cells):
        raise ValueError(
            f"partition={partition} is out of range: '{field}' of {path} holds {len(cells)} partition(s); "
            f"valid partition values are 0..{len(cells) - 1} (0-based; the standard protocol uses 0)."
        )
    struct = _unwrap_cell_item(cells[partition])
    where = f"{field}[{partition}]"
    out: dict[str, np.ndarray] = {}
    for pos, split in enumerate(SPLITS):
        split_field = f"{where}.{split}"
        value = struct_field(struct, path, where, split, pos)
        if isinstance(value, np.ndarray) and value.dtype.kind in "iuf" and value.size and value.min() == 0:
            raise DatasetFormatError(
                f"{path}: field '{split_field}' contains index 0, but PETA.mat row indices are 1-based "
                f"(MATLAB convention; valid range 1..{num_rows}). The file looks like it was written with "
                "0-based (Python) indices: add 1 to every index when writing it."
            )
        out[split] = index_vector(value, path, split_field, upper=num_rows)
    return out


def parse_peta(
    mat_path: str | os.PathLike,
    image_dir: str | os.PathLike,
    partition: int = 0,
    attributes: Literal["eval", "all"] = "eval",
) -> PARAnnotation:
    """Parse a DeepMAR-curated ``PETA.mat`` (spec §1.2) into train/val/test of one partition.

    Counts come from the array shapes, so full-size and tiny mock files parse alike. Images are not
    touched here (the DataModule checks them); row ``i`` maps to ``image_dir / f"{i + 1:05d}.png"``.

    Args:
        mat_path: the ``PETA.mat`` file.
        image_dir: folder holding ``00001.png`` ...
        partition: 0-based index into ``peta.partition_attribute`` (standard protocol: 0).
        attributes: ``"eval"`` keeps the 35 standard evaluated attributes (the first 35 columns, whose
            names must be the standard ones), ``"all"`` keeps all label columns (105).

    Raises:
        DatasetFormatError: naming the file and the field, for a missing variable/field, label columns
            that do not match the names, non-standard evaluated names, labels outside {0, 1}, indices
            that are 0-based or out of range.
        ValueError: ``partition`` out of the file's range or an unknown ``attributes`` mode.
    """
    if attributes not in ATTRIBUTE_MODES:
        raise ValueError(f"parse_peta: attributes={attributes!r}; valid: {list(ATTRIBUTE_MODES)}")
    if isinstance(partition, bool) or not isinstance(partition, int | np.integer):
        raise ValueError(f"parse_peta: partition must be an int, got {partition!r}")
    path = Path(mat_path)
    struct = _load_peta_struct(path)
    data = _peta_field(struct, path, "data", 0)
    names = tuple(cell_strings(_peta_field(struct, path, "attribute", 1), path, f"{VARIABLE}.attribute"))
    parts = _peta_field(struct, path, "partition_attribute", 3)

    data_field = f"{VARIABLE}.data"
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "biuf" or data.ndim != 2:
        raise DatasetFormatError(
            f"{path}: field '{data_field}' should be a 2-D numeric N×{NUM_METADATA_COLUMNS + len(names)} matrix "
            f"({NUM_METADATA_COLUMNS} metadata columns, then one label column per attribute), "
            f"but found {describe(data)}."
        )
    num_label_columns = data.shape[1] - NUM_METADATA_COLUMNS
    if num_label_columns != len(names):
        raise DatasetFormatError(
            f"{path}: field '{data_field}' has {data.shape[1]} columns = {NUM_METADATA_COLUMNS} metadata + "
            f"{num_label_columns} label columns, but '{VARIABLE}.attribute' has {len(names)} names; expected "
            f"{NUM_METADATA_COLUMNS} + {len(names)} = {NUM_METADATA_COLUMNS + len(names)} columns "
            f"(standard PETA.mat: {NUM_METADATA_COLUMNS + NUM_ALL_ATTRIBUTES})."
        )
    if len(names) != NUM_ALL_ATTRIBUTES:
        log.warning(
            "%s: '%s.attribute' has %d names, the standard PETA.mat has %d; using the file's columns",
            path,
            VARIABLE,
            len(names),
            NUM_ALL_ATTRIBUTES,
        )
    labels_all = label_matrix(
        data[:, NUM_METADATA_COLUMNS:],
        path,
        f"{data_field}[:, {NUM_METADATA_COLUMNS}:]",
        num_columns=len(names),
        columns_source=f"'{VARIABLE}.attribute'",
        allowed=(0, 1),
    )
    if attributes == "eval":
        num_eval = len(PETA_EVAL_ATTRIBUTES)
        if len(names) < num_eval:
            raise DatasetFormatError(
                f"{path}: '{VARIABLE}.attribute' has only {len(names)} names; attributes='eval' needs the "
                f"{num_eval} standard evaluated attributes first."
            )
        for j, (found, expected) in enumerate(zip(names[:num_eval], PETA_EVAL_ATTRIBUTES, strict=True)):
            if found != expected:
                raise DatasetFormatError(
                    f"{path}: '{VARIABLE}.attribute' entry {j} is {found!r}, but the standard PETA evaluated "
                    f"attribute {j} is {expected!r}; the first {num_eval} columns must be the standard "
                    "evaluated attributes in raw order. Use attributes='all' to keep the file's columns "
                    "as they are."
                )
        names, labels_all = PETA_EVAL_ATTRIBUTES, labels_all[:, :num_eval]

    indices = _partition_indices(parts, path, int(partition), num_rows=data.shape[0])
    image_root = Path(image_dir).absolute()
    image_paths = {
        split: tuple(image_root / f"{i + 1:05d}.png" for i in idx.tolist()) for split, idx in indices.items()
    }
    labels = {split: np.ascontiguousarray(labels_all[idx]) for split, idx in indices.items()}
    return PARAnnotation(
        attribute_names=names, image_paths=image_paths, labels=labels, source=path.absolute()
    )


class PETADataModule(PARDataModule):
    """PETA DataModule (partition 0: 9,500/1,900/7,600; standard protocol trains on ``trainval``).

    Args:
        root: dataset folder holding ``PETA.mat`` and ``images/``.
        mat_path: explicit ``PETA.mat`` path (default ``<root>/PETA.mat``).
        image_dir: explicit image folder (default ``<root>/images``).
        partition: which of the file's random partitions to use (0-based; standard: 0).
        attributes: ``"eval"`` (the 35 standard attributes) or ``"all"`` (all 105 columns).
        label_lists: split name → ALM-style label list (spec §6, e.g.
            ``{"train": "PETA_train_list.txt", "test": "PETA_test_list.txt"}``; relative paths are resolved
            against ``root``) to read instead of ``PETA.mat`` (35 evaluated attributes; ``partition`` and
            ``mat_path`` unused). Image paths in the lists (``PETA_dataset/<subset>/archive/<file>``) are
            relative to ``root``. Without a ``val`` list, ``*_split="val"`` is redirected to ``"test"``.
        synthesize: if ``PETA.mat`` is missing, first generate a synthetic PETA-format set in ``root``
            (``data_modules.synthetic.synthesize_peta``); logged, never silent.
        synth_num_images: images to synthesize.
        synth_seed: generator seed.
        synth_difficulty: generator clutter/occlusion/noise scale.
        kwargs: the shared options of :class:`PARDataModule` (batch size, input size, splits, ...).
    """

    def __init__(
        self,
        root: str = "data/PETA",
        mat_path: str | None = None,
        image_dir: str | None = None,
        partition: int = 0,
        attributes: str = "eval",
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
        if isinstance(partition, bool) or not isinstance(partition, int) or partition < 0:
            raise ValueError(f"PETADataModule: partition must be an integer >= 0, got {partition!r}")
        if attributes not in ATTRIBUTE_MODES:
            raise ValueError(f"PETADataModule: attributes={attributes!r}; valid: {list(ATTRIBUTE_MODES)}")
        self.root = Path(root)
        self.mat_path = Path(mat_path) if mat_path else self.root / MAT_NAME
        self.image_dir = Path(image_dir) if image_dir else self.root / IMAGE_DIR_NAME
        self.partition = partition
        self.attributes = attributes
        self.label_lists = dict(label_lists) if label_lists else None
        if self.label_lists is not None:
            if attributes != "eval":
                raise ValueError(
                    f"PETADataModule: attributes={attributes!r} with label_lists; the ALM PETA lists carry "
                    "only the 35 evaluated attributes, use attributes='eval'"
                )
            self._use_test_for_missing_val("val" in self.label_lists)

    @property
    def num_eval_attributes(self) -> int | None:
        """``attributes="all"`` trains on all 105 columns but reports metrics on the standard first 35."""
        return len(PETA_EVAL_ATTRIBUTES) if self.attributes == "all" else None

    def _parse(self) -> PARAnnotation:
        if self.label_lists is not None:
            return parse_label_lists(
                resolve_label_lists(self.label_lists, self.root),
                image_root=self.root,
                attribute_names=PETA_EVAL_ATTRIBUTES,
            )
        mat_path, image_dir = self._locate()
        return parse_peta(mat_path, image_dir, partition=self.partition, attributes=self.attributes)  # type: ignore[arg-type]

    def _locate(self) -> tuple[Path, Path]:
        layout = (
            f"expected the DeepMAR PETA layout {self.root}/{MAT_NAME} + {self.root}/{IMAGE_DIR_NAME}/00001.png ... "
            "19000.png, or pass mat_path/image_dir explicitly"
        )
        if self.synthesize and not self.mat_path.is_file() and self.mat_path == self.root / MAT_NAME:
            from data_modules.synthetic import synthesize_peta  # lazy: only needed here

            self._synthesize("PETA", self.root, synthesize_peta, **self.synth_options)
        if not self.mat_path.is_file():
            if not self.root.exists() and self.mat_path == self.root / MAT_NAME:
                what = f"PETA root {self.root} does not exist"
            else:
                what = f"PETA annotation file {self.mat_path} does not exist" + (
                    " (the path is a directory)" if self.mat_path.is_dir() else ""
                )
            other = guess_dataset(self.root, exclude="PETA") if self.root.is_dir() else None
            hint = f" {self.root} looks like {other}, not PETA." if other else ""
            raise DatasetNotFoundError(f"{what};{hint} {layout}.")
        if not self.image_dir.is_dir():
            raise DatasetNotFoundError(
                f"PETA image folder {self.image_dir} does not exist; {layout} (images are named by row: "
                "row i of peta.data is images/{i+1:05d}.png)."
            )
        return self.mat_path, self.image_dir
