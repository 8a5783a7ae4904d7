"""par-lightning: pedestrian attribute recognition with gradient-aligned low-rank compression.

``PARModule`` is resolved lazily (PEP 562) so that the Lightning-free parts, such as
``par_lightning.compression`` and ``par_lightning.models``, import without pulling in Lightning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from par_lightning.module import PARModule

__all__ = ["PARModule"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "PARModule":
        from par_lightning.module import PARModule  # noqa: PLC0415  (lazy on purpose, see the docstring)

        return PARModule
    raise AttributeError(f"module 'par_lightning' has no attribute {name!r}")
