"""ALM-style plain-text label lists (datasets spec §6): one ``<image path> <l_0> ... <l_{K-1}>`` per line.

The ALM reference reader splits each line on whitespace, takes the first token as an image path relative
to the dataset root and the rest as integer labels, and skips (with a warning) entries whose image does
not exist. :func:`parse_label_lists` reads one such file per split into a :class:`PARAnnotation`, checking
what the reference reader silently assumes (label count, values, duplicates, empty files).

Tolerated: trailing spaces (PETA lines carry one), ``CRLF`` line endings, blank lines at the end of the
file. Everything else that deviates raises :class:`DatasetFormatError` naming the file and 1-based line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from data_modules.annotation import PARAnnotation
from data_modules.dataset import find_missing_images
from data_modules.errors import DatasetFormatError, DatasetNotFoundError, MissingImageError

__all__ = ["LIST_SPLITS", "parse_label_lists", "resolve_label_lists"]

log = logging.getLogger(__name__)

LIST_SPLITS: tuple[str, ...] = ("train", "val", "test")
MISSING_MODES: tuple[str, ...] = ("error", "skip")
_MAX_LISTED = 10


def _read_list(
    path: Path, image_root: Path, attribute_names: Sequence[str], allowed: tuple[int, ...]
) -> tuple[list[Path], np.ndarray, list[int]]:
    """Parse one list file into (absolute image paths, int8 labels [n, K], 1-based line numbers)."""
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise DatasetNotFoundError(f"Label list {path} {what}; expected an ALM-style list file.")
    num = len(attribute_names)
    expected = f"an image path followed by {num} integer labels separated by spaces"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetFormatError(
            f"{path}: not a UTF-8/ASCII text file ({exc}); expected {expected} per line."
        ) from exc
    lines = text.split("\n")
    while lines and not lines[-1].strip():  # blank lines at the end (a final newline gives one)
        lines.pop()
    if not lines:
        raise DatasetFormatError(f"{path}: the file is empty; expected one line per image with {expected}.")

    names: list[str] = []
    line_numbers: list[int] = []
    rows: list[list[int]] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            raise DatasetFormatError(f"{path}: line {lineno}: expected {expected}, found an empty line.")
        if len(tokens) - 1 != num:
            raise DatasetFormatError(
                f"{path}: line {lineno}: expected {num} labels after the image path "
                f"(one per attribute), found {len(tokens) - 1} (line starts {line[:60]!r})."
            )
        try:
            row = [int(t) for t in tokens[1:]]
        except ValueError:
            col = next((j for j, t in enumerate(tokens[1:]) if not t.lstrip("+-").isdigit()), 0)
            raise DatasetFormatError(
                f"{path}: line {lineno}: label {col} ({attribute_names[col]!r}) should be an integer in "
                f"{list(allowed)}, found {tokens[col + 1]!r}."
            ) from None
        name = tokens[0]
        if name in first_line:
            raise DatasetFormatError(
                f"{path}: image {name!r} is listed twice, on lines {first_line[name]} and {lineno}; "
                "each image must appear once per list."
            )
        first_line[name] = lineno
        names.append(name)
        line_numbers.append(lineno)
        rows.append(row)

    labels = np.asarray(rows, dtype=np.int64).reshape(len(rows), num)
    bad = ~np.isin(labels, np.asarray(allowed, dtype=np.int64))
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        raise DatasetFormatError(
            f"{path}: line {line_numbers[r]}: label {c} ({attribute_names[c]!r}) should be one of "
            f"{list(allowed)}, found {labels[r, c]} ({int(bad.sum())} such value(s) in the file)."
        )
    return [image_root / n for n in names], labels.astype(np.int8), line_numbers


def parse_label_lists(
    lists: Mapping[str, str | os.PathLike],
    image_root: str | os.PathLike,
    attribute_names: Sequence[str],
    allowed: Sequence[int] = (0, 1),
    missing: Literal["error", "skip"] = "error",
) -> PARAnnotation:
    """Parse ALM-style label lists (spec §6), one file per split, into a :class:`PARAnnotation`.

    Args:
        lists: split name (``train``, ``val``, ``test``) → list file. Without ``val`` the annotation has
            no ``val`` split (the standard ALM lists have none; ``trainval`` then equals ``train``).
        image_root: folder the first token of each line is relative to.
        attribute_names: names of the label columns; each line must carry exactly this many labels.
        allowed: accepted label values (``(0, 1, 2)`` for the RAP list, whose column 0 keeps 2).
        missing: images that do not exist: ``"error"`` raises :class:`MissingImageError`, ``"skip"``
            drops them with a logged warning giving the count (the ALM reference behaviour).

    Raises:
        ValueError: unknown split name or ``missing`` mode, no lists, no attribute names.
        DatasetNotFoundError: a list file does not exist.
        DatasetFormatError: naming file, 1-based line, expectation and finding: wrong label count,
            non-integer or disallowed label, an image listed twice in one file, an empty file.
        MissingImageError: ``missing="error"`` and images are absent (count and the first 10 named).
    """
    if missing not in MISSING_MODES:
        raise ValueError(f"parse_label_lists: missing={missing!r}; valid: {list(MISSING_MODES)}")
    if not lists:
        raise ValueError("parse_label_lists: no label lists given; pass e.g. {'train': ..., 'test': ...}")
    unknown = [s for s in lists if s not in LIST_SPLITS]
    if unknown:
        raise ValueError(
            f"parse_label_lists: unknown split name(s) {unknown}; valid: {list(LIST_SPLITS)} "
            "('trainval' is derived from train + val)"
        )
    if not attribute_names:
        raise ValueError("parse_label_lists: attribute_names is empty")
    allowed_values = tuple(int(v) for v in allowed)
    root = Path(image_root).absolute()
    image_paths: dict[str, tuple[Path, ...]] = {}
    labels: dict[str, np.ndarray] = {}
    list_paths = {s: Path(lists[s]) for s in LIST_SPLITS if s in lists}
    for split, list_path in list_paths.items():
        paths, y, _ = _read_list(list_path, root, attribute_names, allowed_values)
        absent = find_missing_images(paths)
        if absent:
            if missing == "error":
                shown = ", ".join(str(p) for p in absent[:_MAX_LISTED])
                more = f" (and {len(absent) - _MAX_LISTED} more)" if len(absent) > _MAX_LISTED else ""
                raise MissingImageError(
                    f"{list_path}: {len(absent)} of {len(paths)} listed image(s) do not exist under "
                    f"{root}: {shown}{more}. Check the image root, or pass missing='skip' to drop them "
                    "(the ALM reference reader skips them)."
                )
            gone = set(absent)
            keep = [i for i, p in enumerate(paths) if p not in gone]
            log.warning(
                "%s: skipping %d of %d listed image(s) that do not exist under %s (first: %s)",
                list_path,
                len(absent),
                len(paths),
                root,
                absent[0],
            )
            paths, y = [paths[i] for i in keep], y[keep]
        image_paths[split] = tuple(paths)
        labels[split] = np.ascontiguousarray(y, dtype=np.int8)
    source = next(iter(list_paths.values())).absolute()
    return PARAnnotation(
        attribute_names=tuple(attribute_names), image_paths=image_paths, labels=labels, source=source
    )


def resolve_label_lists(
    label_lists: Mapping[str, str | os.PathLike], root: str | os.PathLike
) -> dict[str, Path]:
    """A DataModule's ``label_lists`` with relative paths resolved against the dataset ``root``."""
    return {split: Path(root) / Path(path) for split, path in label_lists.items()}
