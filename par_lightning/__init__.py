"""par-lightning: pedestrian attribute recognition with gradient-aligned low-rank compression."""

from par_lightning.module import PARModule

__all__ = ["PARModule"]
__version__ = "0.1.0"
