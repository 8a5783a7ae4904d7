"""PA-100K: the ``annotation.mat`` parser (datasets spec §2) and its DataModule.

Layouts found on disk (spec §2.1), tried in this order unless paths are given explicitly:

- annotation: ``<root>/annotation.mat``, then ``<root>/annotation/annotation.mat``;
- images: ``<root>/data/`` (DeepMAR / Rethinking layout), then ``<root>/release_data/release_data/``
  (how the raw archive extracts).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from data_modules.annotation import PARAnnotation
from data_modules.attributes import PA100K_ATTRIBUTES
from data_modules.base import PARDataModule
from data_modules.detect import guess_dataset
from data_modules.errors import DatasetFormatError, DatasetNotFoundError
from data_modules.label_list import parse_label_lists, resolve_label_lists
from data_modules.matfile import cell_strings, label_matrix, load_mat

__all__ = ["PA100KDataModule", "parse_pa100k"]

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
VARIABLES: tuple[str, ...] = (
    "attributes",
    *(f"{s}_images_name" for s in SPLITS),
    *(f"{s}_label" for s in SPLITS),
)
ANNOTATION_CANDIDATES: tuple[str, ...] = ("annotation.mat", "annotation/annotation.mat")
IMAGE_DIR_CANDIDATES: tuple[str, ...] = ("data", "release_data/release_data")


def parse_pa100k(annotation_path: str | os.PathLike, image_dir: str | os.PathLike) -> PARAnnotation:
    """Parse a PA-100K ``annotation.mat`` (seven top-level variables, spec §2.2).

    Counts come from the array shapes, so full-size and tiny mock files parse alike. Images are not
    touched here (the DataModule checks them); paths are ``image_dir / name``, made absolute.

    Raises:
        DatasetFormatError: naming the file, the variable and what was expected, for a missing or
            mistyped variable, a label matrix whose column count differs from ``attributes``, labels
            outside {0, 1}, or a names/labels row-count mismatch.
    """
    path = Path(annotation_path)
    raw = load_mat(path, VARIABLES)
    names = tuple(cell_strings(raw["attributes"], path, "attributes"))
    if names != PA100K_ATTRIBUTES:
        diff = next(
            (i for i, (a, b) in enumerate(zip(names, PA100K_ATTRIBUTES, strict=False)) if a != b), None
        )
        log.warning(
            "%s: 'attributes' differs from the standard PA-100K list (%d names vs %d; first difference at %s); "
            "using the file's names",
            path,
            len(names),
            len(PA100K_ATTRIBUTES),
            f"index {diff}" if diff is not None else "the end",
        )
    image_root = Path(image_dir).absolute()
    image_paths, labels = {}, {}
    for split in SPLITS:
        name_field, label_field = f"{split}_images_name", f"{split}_label"
        files = cell_strings(raw[name_field], path, name_field) if raw[name_field].size else []
        y = label_matrix(
            raw[label_field],
            path,
            label_field,
            num_columns=len(names),
            columns_source="'attributes'",
            allowed=(0, 1),
        )
        if len(files) != y.shape[0]:
            raise DatasetFormatError(
                f"{path}: '{name_field}' lists {len(files)} images but '{label_field}' has {y.shape[0]} rows; "
                "there must be exactly one label row per image name."
            )
        image_paths[split] = tuple(image_root / f for f in files)
        labels[split] = y
    return PARAnnotation(
        attribute_names=names, image_paths=image_paths, labels=labels, source=path.absolute()
    )


class PA100KDataModule(PARDataModule):
    """PA-100K DataModule (80k/10k/10k train/val/test; standard protocol trains on ``trainval``).

    Args:
        root: dataset folder; see the module docstring for the layouts searched inside it.
        annotation_path: explicit ``annotation.mat`` path (overrides the search in ``root``).
        image_dir: explicit image folder (overrides the search in ``root``).
        synthesize: if no annotation is found under ``root``, generate a synthetic PA-100K-format set there
            first (``data_modules.synthetic.synthesize_pa100k``); logged, never silent.
        synth_num_images: images to synthesize.
        synth_seed: generator seed.
        synth_difficulty: generator difficulty (see the generator).
        label_lists: split name → ALM-style label list (spec §6, e.g.
            ``{"train": "train_val.txt", "test": "test.txt"}``; relative paths are resolved against
            ``root``) to read instead of ``annotation.mat``. Image paths in the lists are relative to
            ``image_dir`` if given, else ``root``. Without a ``val`` list, ``*_split="val"`` is redirected
            to ``"test"`` (logged).
        kwargs: the shared options of :class:`PARDataModule` (batch size, input size, splits, ...).
    """

    def __init__(
        self,
        root: str = "data/pa100k",
        annotation_path: str | None = None,
        image_dir: str | None = None,
        synthesize: bool = False,
        synth_num_images: int = 10_000,
        synth_seed: int = 0,
        synth_difficulty: float = 1.0,
        label_lists: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if synth_num_images < 1:
            raise ValueError(f"PA100KDataModule: synth_num_images must be >= 1, got {synth_num_images}")
        self.root = Path(root)
        self.annotation_path = Path(annotation_path) if annotation_path else None
        self.image_dir = Path(image_dir) if image_dir else None
        self.synthesize = synthesize
        self.synth_num_images, self.synth_seed, self.synth_difficulty = (
            synth_num_images,
            synth_seed,
            synth_difficulty,
        )
        self.label_lists = dict(label_lists) if label_lists else None
        if self.label_lists is not None:
            if synthesize:
                raise ValueError(
                    "PA100KDataModule: synthesize writes annotation.mat, which label_lists mode does not read; "
                    "set only one of them"
                )
            self._use_test_for_missing_val("val" in self.label_lists)

    def prepare_data(self) -> None:
        """Synthesize the data if requested and absent (rank 0; the generator is lock-protected anyway)."""
        if self.label_lists is None:
            self._locate()

    def _parse(self) -> PARAnnotation:
        if self.label_lists is not None:
            return parse_label_lists(
                resolve_label_lists(self.label_lists, self.root),
                image_root=self.image_dir if self.image_dir is not None else self.root,
                attribute_names=PA100K_ATTRIBUTES,
            )
        annotation_path, image_dir = self._locate()
        return parse_pa100k(annotation_path, image_dir)

    def _locate(self) -> tuple[Path, Path]:
        """Resolve (annotation file, image folder), synthesizing first when asked to and needed."""
        annotation = self._find_annotation()
        if annotation is None and self.synthesize:
            if self.annotation_path is not None:
                raise DatasetNotFoundError(
                    f"annotation_path {self.annotation_path} does not exist, and synthesize=True writes to "
                    f"{self.root / 'annotation.mat'}; unset annotation_path to use synthesized data."
                )
            self._run_synthesis()
            annotation = self._find_annotation()
        if annotation is None:
            raise self._not_found_error()
        return annotation, self._find_image_dir()

    def _find_annotation(self) -> Path | None:
        if self.annotation_path is not None:
            return self.annotation_path if self.annotation_path.is_file() or not self.synthesize else None
        return next((p for p in (self.root / c for c in ANNOTATION_CANDIDATES) if p.is_file()), None)

    def _find_image_dir(self) -> Path:
        candidates = (
            [self.image_dir] if self.image_dir is not None else [self.root / c for c in IMAGE_DIR_CANDIDATES]
        )
        found = next((p for p in candidates if p.is_dir()), None)
        if found is None:
            raise DatasetNotFoundError(
                f"PA-100K image folder not found; tried {[str(p) for p in candidates]}. Put the images "
                f"(000001.jpg, ...) in {self.root / 'data'} or pass image_dir=<folder with the .jpg files>."
            )
        return found

    def _not_found_error(self) -> DatasetNotFoundError:
        layout = (
            f"download PA-100K and lay it out as {self.root}/annotation.mat + {self.root}/data/000001.jpg ... "
            f"(or the raw archive layout {self.root}/annotation/annotation.mat + "
            f"{self.root}/release_data/release_data/*.jpg), or pass annotation_path/image_dir explicitly"
        )
        if not self.root.exists():
            what = f"PA-100K root {self.root} does not exist"
        else:
            tried = [str(self.root / c) for c in ANNOTATION_CANDIDATES]
            what = f"No PA-100K annotation file under {self.root} (tried {tried})"
            other = guess_dataset(self.root, exclude="PA-100K")
            if other:
                what += f"; the folder looks like {other}"
        return DatasetNotFoundError(
            f"{what}. Either set `synthesize: true` (PA100KDataModule(synthesize=True)) to generate a synthetic "
            f"PA-100K-format set there, or {layout}."
        )

    def _run_synthesis(self) -> None:
        from data_modules.synthetic import synthesize_pa100k  # lazy: heavy, and only needed here

        self._synthesize(
            "PA-100K",
            self.root,
            synthesize_pa100k,
            num_images=self.synth_num_images,
            seed=self.synth_seed,
            difficulty=self.synth_difficulty,
        )
