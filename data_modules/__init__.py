"""PAR datasets: pure annotation parsers, a shared DataModule base and per-dataset DataModules.

``data_modules.synthetic`` is deliberately not imported here; it is loaded only when synthesis runs.
"""

from __future__ import annotations

from data_modules.annotation import PARAnnotation, SplitData
from data_modules.attributes import PA100K_ATTRIBUTES, PETA_EVAL_ATTRIBUTES
from data_modules.base import PARDataModule
from data_modules.dataset import PARImageDataset, collate_skip_none
from data_modules.errors import CorruptImageError, DatasetFormatError, DatasetNotFoundError, MissingImageError
from data_modules.pa100k import PA100KDataModule, parse_pa100k
from data_modules.peta import PETADataModule, parse_peta
from data_modules.rap import RAPDataModule, parse_rap_v1, parse_rap_v2
from data_modules.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PA100K_ATTRIBUTES",
    "PETA_EVAL_ATTRIBUTES",
    "CorruptImageError",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "MissingImageError",
    "PA100KDataModule",
    "PARAnnotation",
    "PARDataModule",
    "PARImageDataset",
    "PETADataModule",
    "RAPDataModule",
    "SplitData",
    "build_transforms",
    "collate_skip_none",
    "parse_pa100k",
    "parse_peta",
    "parse_rap_v1",
    "parse_rap_v2",
]
