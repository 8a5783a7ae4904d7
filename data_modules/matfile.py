"""Checked accessors over ``scipy.io.loadmat`` output (default options, see datasets spec §0.1).

MATLAB annotation files arrive as nested numpy arrays whose shapes depend on how the file was written;
these helpers turn them into plain Python/numpy values and, when the layout is not the documented one,
raise a :class:`DatasetFormatError` that names the file, the field, what was expected and what was found.
Dataset parsers (PA-100K, PETA, RAP) are meant to be written only in terms of these helpers.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from data_modules.errors import DatasetFormatError, DatasetNotFoundError

__all__ = [
    "cell_strings",
    "describe",
    "index_vector",
    "int_matrix",
    "label_matrix",
    "load_mat",
    "struct_field",
]


def describe(value: Any) -> str:
    """A short human description of a loaded MATLAB value, for error messages."""
    if isinstance(value, np.ndarray):
        kind = "cell array" if value.dtype == object else "struct" if value.dtype.names else "array"
        return f"{kind} of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r:.60}"


def _error(
    path: str | os.PathLike, field: str, expected: str, found: str, fix: str = ""
) -> DatasetFormatError:
    msg = f"{path}: field '{field}' should be {expected}, but found {found}."
    return DatasetFormatError(f"{msg} {fix}".rstrip())


def load_mat(path: str | os.PathLike, required: Sequence[str]) -> dict[str, Any]:
    """Load the ``required`` variables of a classic (v5-family) MAT file with default ``loadmat`` options.

    Only the required variables are read, which keeps 100k-row files quick to open.

    Raises:
        DatasetNotFoundError: the file does not exist.
        DatasetFormatError: the file is not a MAT file, is a v7.3 (HDF5) file, or lacks a variable.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"Annotation file {path} does not exist"
            + (" (the path is a directory)" if path.is_dir() else "")
            + ". Check the annotation path / dataset root, or download the dataset into that layout."
        )
    try:
        data = scipy.io.loadmat(str(path), variable_names=list(required))
    except NotImplementedError as exc:  # scipy's message for MATLAB v7.3 (HDF5) files
        raise DatasetFormatError(
            f"{path} is a MATLAB v7.3 (HDF5) file; the reference datasets are classic MAT files read with "
            f"scipy.io.loadmat. Re-save it in MATLAB with `save(..., '-v7')` ({exc})."
        ) from exc
    except Exception as exc:  # scipy raises ValueError/TypeError/MatReadError for non-MAT content
        raise DatasetFormatError(
            f"{path} is not a readable MATLAB .mat file ({type(exc).__name__}: {exc}). "
            "The file may be truncated or not an annotation file; re-download or regenerate it."
        ) from exc
    missing = [name for name in required if name not in data]
    if missing:
        present = sorted(name for name, _shape, _cls in scipy.io.whosmat(str(path)))
        raise DatasetFormatError(
            f"{path}: missing variable(s) {missing}; the file contains {present}. "
            f"Expected all of {list(required)} (see the dataset format spec)."
        )
    return {name: data[name] for name in required}


def _cell_item_to_str(item: Any) -> str | None:
    """Unwrap one cell element (``array(['name'])``, a ``str``, or a nested 1-element cell) to a string."""
    while isinstance(item, np.ndarray) and item.dtype == object and item.size == 1:
        item = item.reshape(-1)[0]
    if isinstance(item, str):
        return item
    if isinstance(item, np.ndarray) and item.dtype.kind == "U" and item.size == 1:
        return str(item.reshape(-1)[0])
    return None


def cell_strings(value: Any, path: str | os.PathLike, field: str) -> list[str]:
    """Convert an N×1 or 1×N cell array of char to ``list[str]``.

    A char matrix (loaded as an array of padded strings) is tolerated, with trailing blanks removed,
    because some tools save name lists that way.
    """
    expected = "an N×1 (or 1×N) cell array of strings"
    if isinstance(value, np.ndarray) and value.dtype.kind == "U":  # char matrix
        return [str(s).rstrip() for s in value.reshape(-1)]
    if not isinstance(value, np.ndarray) or value.dtype != object:
        raise _error(
            path, field, expected, describe(value), "Save the names as a MATLAB cell array (cellstr)."
        )
    if value.ndim != 2 or min(value.shape) > 1:
        raise _error(path, field, expected, describe(value))
    out: list[str] = []
    for i, item in enumerate(value.reshape(-1)):
        text = _cell_item_to_str(item)
        if not text:
            raise _error(path, f"{field}[{i}]", "a non-empty string", describe(item))
        out.append(text)
    return out


def int_matrix(
    value: Any,
    path: str | os.PathLike,
    field: str,
    *,
    num_columns: int | None = None,
    columns_source: str = "the attribute list",
) -> np.ndarray:
    """Check a 2-D integer-valued numeric matrix and return it as ``int64``.

    Float storage is accepted when every value is integral (MATLAB saves doubles by default).

    Args:
        value: the loaded variable.
        path: file it came from (for messages).
        field: variable / field name (for messages).
        num_columns: required column count, if known.
        columns_source: what ``num_columns`` was derived from (for messages).
    """
    expected = "a 2-D numeric matrix"
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        raise _error(path, field, expected, describe(value), "Store it as a numeric (e.g. uint8) matrix.")
    if value.ndim != 2:
        raise _error(path, field, expected, describe(value))
    if value.size == 0 and num_columns is not None:  # an empty MATLAB matrix loads as (0, 0)
        value = value.reshape(0, num_columns)
    if num_columns is not None and value.shape[1] != num_columns:
        raise DatasetFormatError(
            f"{path}: field '{field}' has {value.shape[1]} columns but {columns_source} has {num_columns} "
            f"entries; each column must correspond to one attribute (shape found {value.shape})."
        )
    if value.dtype.kind == "f":
        bad = ~np.isfinite(value) | (value != np.round(value))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            found = f"non-integer value {value[r, c]!r} at row {r}, column {c}"
            raise _error(path, field, "integer-valued entries", found)
    return value.astype(np.int64)


def label_matrix(
    value: Any,
    path: str | os.PathLike,
    field: str,
    *,
    num_columns: int | None = None,
    columns_source: str = "the attribute list",
    allowed: Collection[int] = (0, 1),
) -> np.ndarray:
    """Check an N×L label matrix (see :func:`int_matrix`) and return it as ``int8``.

    Args:
        value: the loaded variable.
        path: file it came from (for messages).
        field: variable / field name (for messages).
        num_columns: required column count, if known.
        columns_source: what ``num_columns`` was derived from (for messages).
        allowed: permitted label values, e.g. ``(0, 1)``, or ``(0, 1, 2)`` for RAP's "uncertain".
    """
    matrix = int_matrix(value, path, field, num_columns=num_columns, columns_source=columns_source)
    bad = ~np.isin(matrix, np.asarray(sorted(allowed)))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        offending = np.unique(matrix[bad])[:10].tolist()
        raise _error(
            path,
            field,
            f"labels in {sorted(allowed)}",
            f"{int(bad.sum())} entries with values {offending} (first at row {r}, column {c})",
            "Fix or regenerate the annotation file.",
        )
    return matrix.astype(np.int8)


def index_vector(value: Any, path: str | os.PathLike, field: str, *, upper: int | None = None) -> np.ndarray:
    """Convert a 1-based MATLAB index row/column vector to 0-based ``int64`` (spec §0.2).

    Casting to ``int64`` happens before subtracting 1 so unsigned classes cannot wrap around.
    """
    expected = "an integer 1×n or n×1 vector of 1-based indices"
    if (
        not isinstance(value, np.ndarray)
        or value.dtype.kind not in "iuf"
        or value.ndim != 2
        or min(value.shape) > 1
    ):
        raise _error(path, field, expected, describe(value))
    flat = value.reshape(-1)
    if flat.dtype.kind == "f" and not np.all(flat == np.round(flat)):
        raise _error(path, field, expected, "non-integer values")
    idx = flat.astype(np.int64)
    limit = upper if upper is not None else np.iinfo(np.int64).max
    if idx.size and (idx.min() < 1 or idx.max() > limit):
        raise _error(path, field, f"indices in [1, {limit}]", f"range [{idx.min()}, {idx.max()}]")
    return idx - 1


def struct_field(struct: Any, path: str | os.PathLike, field: str, name: str, position: int) -> Any:
    """Read field ``name`` of a loaded 1×1 struct, falling back to its position (spec §0.1)."""
    if not isinstance(struct, np.ndarray) or not struct.dtype.names or struct.size != 1:
        raise _error(path, field, "a 1×1 MATLAB struct", describe(struct))
    names = struct.dtype.names
    if name in names:
        return struct.reshape(-1)[0][name]
    if position < len(names):
        return struct.reshape(-1)[0][position]
    raise _error(
        path, f"{field}.{name}", f"a struct field (or field number {position})", f"fields {list(names)}"
    )
