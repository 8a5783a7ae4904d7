"""PAR models and the registry that names them in configs."""

from par_lightning.models import alm as _alm  # noqa: F401  (registers its builders)
from par_lightning.models import baseline as _baseline  # noqa: F401  (registers its builders)
from par_lightning.models import bninception as _bninception  # noqa: F401  (registers "bninception" with timm)
from par_lightning.models.alm import ALM
from par_lightning.models.backbones import create_backbone, create_feature_backbone
from par_lightning.models.baseline import StrongBaseline
from par_lightning.models.bninception import BNInception
from par_lightning.models.registry import create_model, list_models, register_model

__all__ = [
    "ALM",
    "BNInception",
    "StrongBaseline",
    "create_backbone",
    "create_feature_backbone",
    "create_model",
    "list_models",
    "register_model",
]
