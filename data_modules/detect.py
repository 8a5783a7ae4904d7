"""Recognise which PAR dataset a folder or MAT file belongs to, so a wrong root gets a helpful error."""

from __future__ import annotations

from pathlib import Path

import scipy.io

# dataset -> (files or folders that mark its root, top-level MAT variables that mark its annotation, DataModule)
_MARKERS: dict[str, tuple[tuple[str, ...], frozenset[str], str]] = {
    "PETA": (("PETA.mat",), frozenset({"peta"}), "PETADataModule"),
    "PA-100K": (
        ("annotation.mat", "annotation/annotation.mat"),
        frozenset({"train_images_name", "train_label"}),
        "PA100KDataModule",
    ),
    "RAP": (("RAP_annotation", "RAP_annotation.mat"), frozenset({"RAP_annotation"}), "RAPDataModule"),
}


def guess_dataset(path: Path, exclude: str) -> str | None:
    """Describe the dataset other than ``exclude`` that ``path`` (a folder or a MAT file) looks like.

    Returns e.g. ``"PA-100K (it has annotation.mat; use PA100KDataModule)"``, or ``None``.
    """
    path = Path(path)
    for name, (files, variables, module) in _MARKERS.items():
        if name == exclude:
            continue
        if path.is_dir():
            found = next((f for f in files if (path / f).exists()), None)
            if found:
                return f"{name} (it has {found}; use {module})"
        elif path.is_file():
            try:
                present = {v for v, _shape, _cls in scipy.io.whosmat(str(path))}
            except Exception:  # not a MAT file: the loader's own message says so
                return None
            if variables & present:
                return f"{name} (it holds {sorted(variables & present)}; use {module})"
    return None
