"""The strong ResNet baseline of PAR, on any timm backbone: pooled features -> Linear -> BatchNorm1d."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from par_lightning.models.backbones import create_backbone
from par_lightning.models.registry import register_model


class StrongBaseline(nn.Module):
    """Backbone + linear classifier (+ BatchNorm1d on the logits, as the 2020 strong baseline).

    The BN on the logits re-centres them per attribute, which helps the rare attributes that a
    positive-ratio weighted loss would otherwise leave biased towards "absent".
    """

    def __init__(
        self,
        num_attributes: int,
        backbone: str = "resnet50",
        pretrained: bool = False,
        pretrained_path: str | None = None,
        bn_head: bool = True,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = create_backbone(backbone, pretrained, pretrained_path, **(backbone_kwargs or {}))
        self.classifier = nn.Linear(self._feature_dim(self.backbone), num_attributes)
        self.logit_bn: nn.Module = nn.BatchNorm1d(num_attributes) if bn_head else nn.Identity()

    @staticmethod
    def _feature_dim(backbone: nn.Module) -> int:
        dim = getattr(backbone, "num_features", None)
        if not isinstance(dim, int):
            raise TypeError(f"{type(backbone).__name__} has no integer `num_features`; is it a timm model?")
        return dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)  # (B, C)
        return self.logit_bn(self.classifier(feats))  # (B, A)


@register_model("baseline")
def baseline(num_attributes: int, **kwargs: Any) -> StrongBaseline:
    """The strong baseline; ``backbone`` picks the timm model (default resnet50)."""
    return StrongBaseline(num_attributes=num_attributes, **kwargs)


@register_model("tiny")
def tiny(num_attributes: int, **kwargs: Any) -> StrongBaseline:
    """A few-thousand-parameter baseline on timm's ``test_resnet`` for fast tests and smoke runs."""
    kwargs.setdefault("backbone", "test_resnet")
    return StrongBaseline(num_attributes=num_attributes, **kwargs)
