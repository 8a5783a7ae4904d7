"""Exceptions raised while locating, parsing and reading PAR datasets.

Every dataset problem derives from :class:`DatasetFormatError` (a ``ValueError``) so a caller can catch
one type; the subclasses let tests and tools tell *what kind* of problem occurred. Messages always name
the file, the field, what was expected and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "CorruptImageError",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "MissingImageError",
]


class DatasetFormatError(ValueError):
    """An annotation file or image set does not match the documented dataset format."""


class DatasetNotFoundError(DatasetFormatError, FileNotFoundError):
    """The dataset root, annotation file or image folder does not exist where it was looked for."""


class MissingImageError(DatasetFormatError, FileNotFoundError):
    """Images listed in the annotation are absent from the image folder."""


class CorruptImageError(DatasetFormatError):
    """An image file exists but cannot be decoded as an image."""
