"""The Attribute Localization Model (Tang et al., ICCV 2019) on any timm backbone.

Backbone taps (3 levels, strides 8/16/32) -> :class:`ConcatPyramid` -> one ALM head per level, plus
the main branch (global pool of the coarsest tap -> Linear). ``forward`` returns the four logit
tensors ``(ALM@fine, ALM@mid, ALM@coarse, main)``: training sums the loss over them (deep
supervision) and prediction takes their element-wise max (``PARModule`` does both).

With ``backbone="bninception"`` at 256x128 this is the reference network: 10,770,720 + 125,040 * N
parameters. Pooling is adaptive, so other input sizes work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, cast

import torch
from torch import nn

from par_lightning.models.alm_heads import Sampling, build_alm_head
from par_lightning.models.backbones import create_feature_backbone
from par_lightning.models.box_sampling import box_corners
from par_lightning.models.pyramid import ConcatPyramid
from par_lightning.models.registry import register_model


class ALM(nn.Module):
    """Attribute Localization Model.

    Args:
        num_attributes: N, outputs per head.
        backbone: timm model name with ``features_only`` support (``bninception`` is the reference).
        out_indices: backbone feature levels to tap, fine to coarse; ``None`` = the last three.
        pretrained, pretrained_path: backbone weights (a local file; nothing is downloaded).
        pyramid_channels: lateral width of the pyramid (256 in ALM).
        reduction: SE bottleneck reduction in the attribute modules (16 in ALM).
        heads: ``batched`` (all attributes at once) or ``loop`` (the per-attribute reference).
        sampling: box pooling of the batched heads, ``separable`` or ``grid_sample``.
        align_corners: sampling convention of the box resampling (True = the reference's PyTorch 0.4).
        backbone_kwargs: extra ``timm.create_model`` arguments.
    """

    def __init__(
        self,
        num_attributes: int,
        backbone: str = "bninception",
        out_indices: Sequence[int] | None = None,
        pretrained: bool = False,
        pretrained_path: str | None = None,
        pyramid_channels: int = 256,
        reduction: int = 16,
        heads: Literal["batched", "loop"] = "batched",
        sampling: Sampling = "separable",
        align_corners: bool = True,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = create_feature_backbone(
            backbone, out_indices, pretrained, pretrained_path, **(backbone_kwargs or {})
        )
        tap_channels: list[int] = cast(Any, self.backbone).feature_info.channels()
        if len(tap_channels) != 3:
            raise ValueError(
                f"ALM needs 3 backbone levels, out_indices gave {len(tap_channels)}: {tap_channels}"
            )
        self.pyramid = ConcatPyramid(tap_channels, pyramid_channels)
        self.heads = nn.ModuleList(
            build_alm_head(c, num_attributes, reduction, align_corners, heads, sampling)
            for c in self.pyramid.out_channels
        )
        self.classifier = nn.Linear(tap_channels[-1], num_attributes)

    def _run(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        taps = self.backbone(x)  # fine to coarse
        level_out = [head(p) for head, p in zip(self.heads, self.pyramid(taps), strict=True)]
        main = self.classifier(taps[-1].mean((2, 3)))  # (B, N)
        return [logits for logits, _ in level_out] + [main], [box for _, box in level_out]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Images ``(B, 3, H, W)`` -> four logit tensors ``(B, N)``: three ALM levels, then the main branch."""
        return tuple(self._run(x)[0])

    def localize(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted attribute boxes ``(B, levels, N, 4)`` as ``(x1, y1, x2, y2)`` fractions of the image."""
        return box_corners(torch.stack(self._run(x)[1], dim=1))


@register_model("alm")
def alm(num_attributes: int, **kwargs: Any) -> ALM:
    """ALM; ``backbone`` picks the timm model (default ``bninception``, the reference)."""
    kwargs.setdefault("backbone", "bninception")
    return ALM(num_attributes=num_attributes, **kwargs)


@register_model("alm_tiny")
def alm_tiny(num_attributes: int, **kwargs: Any) -> ALM:
    """A small ALM (timm ``test_resnet`` backbone, 32-channel pyramid) for tests and CPU smoke runs."""
    kwargs.setdefault("backbone", "test_resnet")
    kwargs.setdefault("pyramid_channels", 32)
    kwargs.setdefault("reduction", 8)
    return ALM(num_attributes=num_attributes, **kwargs)
